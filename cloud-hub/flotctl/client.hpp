// flotctl's HTTP client for the hub's REST API, over libcurl.
//
// A response with any HTTP status is a value; only failing to talk to the hub at all is an
// Error, worded for the user: "Failed to reach hub at http://127.0.0.1:8080: Connection refused".
//
// Thread-safety: one Client per thread. curl_global_init() is the caller's (main's) job.
#pragma once

#include <string>

#include "common/expected.hpp"

namespace flotilla::flotctl {

struct HttpResponse {
  long status = 0;
  std::string body;
};

class Client {
 public:
  explicit Client(std::string base_url, long timeout_ms = 30000);

  Expected<HttpResponse> request(const std::string& method, const std::string& path,
                                 const std::string& body = "",
                                 const std::string& content_type = "");
  const std::string& base_url() const { return base_url_; }

 private:
  std::string base_url_;
  long timeout_ms_;
};

}  // namespace flotilla::flotctl
