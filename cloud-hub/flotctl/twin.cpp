#include "cloud-hub/flotctl/twin.hpp"

#include <ostream>
#include <sstream>

#include "cloud-hub/flotctl/printers.hpp"

namespace flotilla::flotctl {
namespace {

using json = nlohmann::json;

constexpr int kOk = 0;
constexpr int kFailed = 1;
constexpr int kUsage = 2;

std::string device_text(const json& d) {
  std::ostringstream o;
  o << "Device:           " << d.value("name", "?") << "\n"
    << "Node:             " << d.value("node", "?") << "\n"
    << "Desired (v" << d.value("desiredVersion", 0) << "):     " << d["desired"].dump() << "\n"
    << "Reported (v" << d.value("reportedVersion", 0) << "):    " << d["reported"].dump() << "\n"
    << "Observed desired: " << d.value("observedDesired", 0) << "\n"
    << "Delta:            " << d["delta"].dump() << "\n";
  return o.str();
}

// The device the hub answers a request with; nullopt after printing why not.
std::optional<json> call(Client& client, const std::string& method, const std::string& path,
                         const std::string& body, std::ostream& err) {
  auto d = client.request_json(
      method, path, {.body = body, .content_type = body.empty() ? "" : "application/json"});
  if (!d) {
    err << "error: " << d.error().message() << "\n";
    return std::nullopt;
  }
  return std::move(*d);
}

int twin_get(Client& client, const std::string& device, const std::string& output,
             std::ostream& out, std::ostream& err) {
  auto found = call(client, "GET", "/api/v1/devices/" + url_escape(device), "", err);
  if (!found) return kFailed;
  const json& d = *found;
  if (output == "json") {
    out << d.dump(2) << "\n";
  } else if (output == "yaml") {
    out << to_yaml(d);
  } else {
    out << device_text(d);
  }
  return kOk;
}

int twin_set(Client& client, const std::string& device, const std::vector<std::string>& pairs,
             std::optional<uint64_t> if_version, std::ostream& out, std::ostream& err) {
  auto patch = twin_patch(pairs);
  if (!patch) {
    err << "flotctl: " << patch.error().message() << "\n";
    return kUsage;
  }
  json body{{"desired", *patch}};
  if (if_version) body["ifVersion"] = *if_version;
  auto d =
      call(client, "POST", "/api/v1/devices/" + url_escape(device) + "/desired", body.dump(), err);
  if (!d) return kFailed;
  out << "device/" << device << " desired version " << d->value("desiredVersion", 0) << "\n";
  return kOk;
}

}  // namespace

Expected<json> twin_patch(const std::vector<std::string>& assignments) {
  if (assignments.empty()) return Error("twin set needs at least one KEY=VALUE");
  json patch = json::object();
  for (const auto& a : assignments) {
    const size_t eq = a.find('=');
    if (eq == std::string::npos || eq == 0) {
      return Error("'" + a + "': want KEY=VALUE (KEY=null deletes KEY)");
    }
    const std::string key = a.substr(0, eq);
    const std::string text = a.substr(eq + 1);
    json value = json::parse(text, nullptr, /*allow_exceptions=*/false);
    if (value.is_discarded()) value = text;
    json* at = &patch;
    size_t start = 0;
    while (true) {
      const size_t dot = key.find('.', start);
      const std::string part = key.substr(start, dot == std::string::npos ? dot : dot - start);
      if (part.empty()) return Error("'" + a + "': empty property name in '" + key + "'");
      if (dot == std::string::npos) {
        (*at)[part] = value;
        break;
      }
      json& next = (*at)[part];
      if (!next.is_object()) next = json::object();
      at = &next;
      start = dot + 1;
    }
  }
  return patch;
}

int twin_command(Client& client, const std::vector<std::string>& args,
                 std::optional<uint64_t> if_version, const std::string& output, std::ostream& out,
                 std::ostream& err) {
  if (args.size() == 2 && args[0] == "get") return twin_get(client, args[1], output, out, err);
  if (args.size() >= 3 && args[0] == "set") {
    return twin_set(client, args[1], {args.begin() + 2, args.end()}, if_version, out, err);
  }
  err << "flotctl: usage: flotctl twin get DEVICE | twin set DEVICE KEY=VALUE... "
         "[--if-version N]\n";
  return kUsage;
}

}  // namespace flotilla::flotctl
