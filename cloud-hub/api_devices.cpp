#include "cloud-hub/api_devices.hpp"

#include "cloud-hub/api_reply.hpp"

#include <optional>
#include <string>

#include "common/twin.hpp"

namespace flotilla::hub {
namespace {

using json = nlohmann::json;

// The request body as a JSON object; nullopt after answering 400.
std::optional<json> body_object(const httplib::Request& req, httplib::Response& res) {
  // A body holds at most one document or patch of text (twin::kMaxTextBytes) and a few keys.
  if (req.body.size() > twin::kMaxTextBytes + 1024) {
    send_error(res, 400,
               "request body of " + std::to_string(req.body.size()) + " bytes is over the " +
                   std::to_string(twin::kMaxTextBytes) + " byte limit");
    return std::nullopt;
  }
  json body = json::parse(req.body, nullptr, /*allow_exceptions=*/false);
  if (body.is_discarded() || !body.is_object()) {
    send_error(res, 400, "request body: want a JSON object");
    return std::nullopt;
  }
  return body;
}

void send_outcome(httplib::Response& res, const Expected<DeviceOutcome>& done) {
  if (!done) return send_error(res, 500, done.error().message());
  switch (done->code) {
    case DeviceOutcome::Code::kOk:
      return send_json(res, 200, done->view);
    case DeviceOutcome::Code::kCreated:
      return send_json(res, 201, done->view);
    case DeviceOutcome::Code::kNotFound:
      return send_error(res, 404, done->message);
    case DeviceOutcome::Code::kInvalid:
      return send_error(res, 400, done->message);
    case DeviceOutcome::Code::kConflict:
      return send_error(res, 409, done->message);
  }
}

}  // namespace

void install_device_routes(httplib::Server& server, Controller& controller) {
  server.Put(R"(/api/v1/devices/([^/]+))",
             [&controller](const httplib::Request& req, httplib::Response& res) {
               auto body = body_object(req, res);
               if (!body) return;
               send_outcome(res, controller.put_device(req.matches[1], *body));
             });
  auto set_desired = [&controller](const httplib::Request& req, httplib::Response& res) {
    auto body = body_object(req, res);
    if (!body) return;
    auto patch = body->find("desired");
    if (patch == body->end()) {
      return send_error(res, 400, "request body: want {\"desired\": {merge patch}}");
    }
    std::optional<uint64_t> if_version;
    if (auto v = body->find("ifVersion"); v != body->end() && !v->is_null()) {
      if (!v->is_number_unsigned()) {
        return send_error(res, 400, "ifVersion: want a whole number from 0, got " + v->dump());
      }
      if_version = v->get<uint64_t>();
    }
    send_outcome(res, controller.set_device_desired(req.matches[1], *patch, if_version));
  };
  server.Patch(R"(/api/v1/devices/([^/]+)/desired)", set_desired);
  server.Post(R"(/api/v1/devices/([^/]+)/desired)", set_desired);
  server.Delete(R"(/api/v1/devices/([^/]+))",
                [&controller](const httplib::Request& req, httplib::Response& res) {
                  const std::string name = req.matches[1];
                  auto found = controller.delete_device(name);
                  if (!found) return send_error(res, 500, found.error().message());
                  if (!*found) return send_error(res, 404, "device '" + name + "' not found");
                  send_json(res, 200, {{"name", name}, {"action", "deleted"}});
                });
}

}  // namespace flotilla::hub
