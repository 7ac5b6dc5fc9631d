// http_get: a small in-memory HTTP GET for registry manifests and auth tokens (bodies of a few
// MiB at most; blobs go through fetch_to_file instead).
//
// Thread-safety: reentrant.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace flotilla::runtime::image {

struct HttpResponse {
  long status = 0;
  std::map<std::string, std::string> headers;  // lowercased names; the last value wins
  std::string body;
};

struct HttpGetError {
  std::string cause;  // "connection refused", "response larger than 4194304 bytes"
  bool retryable = false;
};

struct HttpGetRequest {
  std::string url;
  std::vector<std::string> headers;
  uint64_t max_bytes = 4 << 20;
  std::chrono::seconds timeout{60};
  std::chrono::seconds connect_timeout{10};
  std::string basic_user;  // sent as HTTP basic auth when not empty
  std::string basic_password;
  const std::atomic<bool>* cancel = nullptr;  // set to abort the transfer
  std::string ca_file;                        // CA bundle for https; empty: the system's
};

// The response (any status) or why there was none.
struct HttpGetOutcome {
  bool ok = false;
  HttpResponse response;
  HttpGetError error;
};

HttpGetOutcome http_get(const HttpGetRequest& request);

}  // namespace flotilla::runtime::image
