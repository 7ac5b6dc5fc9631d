// flotctl's HTTP client for the hub's REST API, over libcurl.
//
// A response with any HTTP status is a value; only failing to talk to the hub at all is an
// Error, worded for the user: "Failed to reach hub at http://127.0.0.1:8080: Connection refused".
// stream() follows a long answer (a watch's server-sent events) as it arrives.
//
// Thread-safety: one Client per thread. curl_global_init() is the caller's (main's) job.
#pragma once

#include <functional>
#include <string>

#include <nlohmann/json.hpp>

#include "common/expected.hpp"

struct curl_slist;

namespace flotilla::flotctl {

struct HttpResponse {
  long status = 0;
  std::string body;
};

// How a stream() ended when it did not fail.
struct StreamEnd {
  long status = 0;       // the HTTP status
  std::string body;      // the body of an answer other than 200
  bool stopped = false;  // on_data or `stop` ended it; else the hub did
};

// How flotctl proves itself to the hub and checks the hub's HTTPS certificate.
struct ClientAuth {
  std::string token;    // sent as "Authorization: Bearer TOKEN"; empty: none
  std::string ca_file;  // PEM CA bundle for https:// hubs; empty: the system's
};

class Client {
 public:
  explicit Client(std::string base_url, long timeout_ms = 30000, ClientAuth auth = {});

  Expected<HttpResponse> request(const std::string& method, const std::string& path,
                                 const std::string& body = "",
                                 const std::string& content_type = "");
  // The JSON object of a 200 answer to `method path`; an Error worded for the user otherwise:
  // the hub's own error, "<not_found> not found" for a 404 when `not_found` is given, or that
  // the answer is not a JSON object.
  struct JsonRequest {
    std::string body;
    std::string content_type;
    std::string not_found;
  };
  Expected<nlohmann::json> request_json(const std::string& method, const std::string& path,
                                        const JsonRequest& req);
  Expected<nlohmann::json> request_json(const std::string& method, const std::string& path) {
    return request_json(method, path, JsonRequest{});
  }
  // GETs `path` and hands a 200 answer's body to `on_data` as it arrives, until the hub ends it,
  // on_data returns false, or `stop` returns true (asked about once a second). No data for
  // `idle_timeout_ms` (the hub sends keepalives) is a dead connection: an Error, as is losing it.
  Expected<StreamEnd> stream(const std::string& path,
                             const std::function<bool(const std::string&)>& on_data,
                             const std::function<bool()>& stop, long idle_timeout_ms = 30000);
  const std::string& base_url() const { return base_url_; }

 private:
  // Adds the Authorization header to `headers` and the CA to `curl`.
  curl_slist* apply_auth(void* curl, curl_slist* headers) const;

  std::string base_url_;
  long timeout_ms_;
  ClientAuth auth_;
};

// Percent-encodes everything but letters, digits and -_. (for a path segment or query value).
std::string url_escape(const std::string& s);
// The hub's {"error": ...}, or a description of an unexpected answer.
std::string hub_error(const HttpResponse& res);

}  // namespace flotilla::flotctl
