#include "cloud-hub/api_forward.hpp"

#include <regex>

#include "cloud-hub/api_reply.hpp"
#include "common/log.hpp"

namespace flotilla::hub {

bool is_rollout_call(const httplib::Request& req) {
  static const std::regex kRollouts(R"(/api/v1/rollouts(/.*)?)");
  static const std::regex kArtifact(R"(/api/v1/artifacts/[^/]+/[^/]+)");
  if (std::regex_match(req.path, kRollouts)) {
    const std::string watch = req.get_param_value("watch");
    return !(req.method == "GET" && (watch == "true" || watch == "1"));
  }
  return req.method == "DELETE" && std::regex_match(req.path, kArtifact);
}

void forward_request(const httplib::Request& req, httplib::Response& res, const std::string& url,
                     const std::string& from, const std::string& ca_file) {
  httplib::Client client(url);
  client.set_url_encode(false);  // the target is sent exactly as it came
  client.set_connection_timeout(std::chrono::seconds(2));
  client.set_read_timeout(std::chrono::seconds(60));
  client.set_write_timeout(std::chrono::seconds(60));
  if (!ca_file.empty()) client.set_ca_cert_path(ca_file.c_str());
  httplib::Request out;
  out.method = req.method;
  out.path = req.target.empty() ? req.path : req.target;
  for (const char* header : {"Authorization", "Content-Type", "Accept"}) {
    if (req.has_header(header)) out.set_header(header, req.get_header_value(header));
  }
  out.set_header(kForwardedBy, from);
  out.body = req.body;
  if (!req.body.empty() || req.method == "PUT" || req.method == "POST") {
    out.set_header("Content-Length", std::to_string(req.body.size()));
  }
  auto answer = client.send(out);
  res.set_header(kForwardedTo, url);
  if (!answer) {
    log::get("api")->warn("forward failed method={} path={} to={} error='{}'", req.method, req.path,
                          url, httplib::to_string(answer.error()));
    return send_error(res, 503,
                      "the hub instance that drives the rollouts (" + url +
                          ") did not answer: " + httplib::to_string(answer.error()) +
                          "; try again (another instance takes over within two lease periods)");
  }
  res.status = answer->status;
  res.set_content(answer->body, answer->get_header_value("Content-Type").empty()
                                    ? "application/json"
                                    : answer->get_header_value("Content-Type"));
}

}  // namespace flotilla::hub
