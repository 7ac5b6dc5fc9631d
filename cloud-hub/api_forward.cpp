#include "cloud-hub/api_forward.hpp"

#include <algorithm>
#include <memory>
#include <mutex>
#include <regex>

#include "cloud-hub/api_reply.hpp"
#include "cloud-hub/watch_stream.hpp"
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

namespace {

httplib::Client client_for(const std::string& url, const std::string& ca_file) {
  httplib::Client client(url);
  client.set_url_encode(false);  // the target is sent exactly as it came
  client.set_connection_timeout(std::chrono::seconds(2));
  client.set_read_timeout(std::chrono::seconds(60));  // a watch's keepalives come far more often
  client.set_write_timeout(std::chrono::seconds(60));
  if (!ca_file.empty()) client.set_ca_cert_path(ca_file.c_str());
  return client;
}

std::string target_of(const httplib::Request& req) {
  return req.target.empty() ? req.path : req.target;
}

}  // namespace

void forward_request(const httplib::Request& req, httplib::Response& res, const std::string& url,
                     const std::string& from, const std::string& ca_file) {
  httplib::Client client = client_for(url, ca_file);
  httplib::Request out;
  out.method = req.method;
  out.path = target_of(req);
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

void forward_watch(const httplib::Request& req, httplib::Response& res, const std::string& url,
                   const std::string& from, const std::string& ca_file,
                   std::function<void()> on_end) {
  httplib::Headers headers = {{kForwardedBy, from}};
  for (const char* header : {"Authorization", "Last-Event-ID"}) {
    if (req.has_header(header)) headers.emplace(header, req.get_header_value(header));
  }
  res.set_header(kForwardedTo, url);
  res.set_header("Cache-Control", "no-cache");
  auto ended = std::make_shared<std::once_flag>();
  res.set_chunked_content_provider(
      "text/event-stream",
      [url, ca_file, headers, target = target_of(req)](size_t, httplib::DataSink& sink) {
        httplib::Client client = client_for(url, ca_file);
        int status = 0;
        std::string body;  // of an answer other than 200
        auto answer = client.Get(
            target, headers,
            [&status](const httplib::Response& up) {
              status = up.status;
              return true;
            },
            [&](const char* data, size_t n) {
              if (status != 200) {
                if (body.size() < 4096) body.append(data, std::min(n, 4096 - body.size()));
                return true;
              }
              return sink.write(data, n);  // false once our client is gone: the upstream ends
            });
        if (status != 200) {
          const std::string why = status == 0
                                      ? "did not answer: " + httplib::to_string(answer.error())
                                      : "answered " + std::to_string(status) + ": " + body;
          log::get("api")->warn("forwarded watch failed path={} to={} error='{}'", target, url,
                                why);
          const std::string frame =
              sse_error(status == 0 ? 503 : status, status == 0 ? "ServiceUnavailable" : "Failed",
                        "the hub instance that drives the rollouts (" + url + ") " + why);
          sink.write(frame.data(), frame.size());
        }
        sink.done();
        return true;
      },
      [ended, on_end = std::move(on_end)](bool) { std::call_once(*ended, on_end); });
}

}  // namespace flotilla::hub
