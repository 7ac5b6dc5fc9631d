// fetch_to_file: a resumable HTTP(S) download into a file, verified by SHA-256 as it streams.
// Shared by the OCI image puller (blobs), the vm driver (disk images) and, later, OTA.
//
// Bytes land in `<dest>.partial`; a call that finds a partial file resumes it with a Range
// request (the server's Content-Range is checked; a plain 200 restarts from zero), and the
// digest is computed over the whole file, so an interrupted download never fetches its finished
// bytes again. Only when the digest matches is the file fsynced and renamed to `dest`: a reader
// never sees a partial or unverified file at `dest`. A digest mismatch deletes the partial file.
//
// Errors say what failed: "Failed to fetch 'http://...': HTTP 404", "...: digest mismatch (want
// sha256:..., got sha256:...)", "...: connection refused". Whether a retry can help is in
// FetchError::retryable (network errors and 5xx: yes; 4xx, mismatch, oversize: no).
//
// Thread-safety: fetch_to_file is reentrant; two calls must not share a `dest`.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "common/expected.hpp"

namespace flotilla::runtime::image {

struct FetchRequest {
  std::string url;                   // http://, https:// (file:// for tests and local images)
  std::string dest;                  // final path; partial bytes in dest + ".partial"
  std::string sha256;                // lowercase hex the content must have; empty: not checked
  std::vector<std::string> headers;  // extra request headers ("Authorization: Bearer ...")
  uint64_t max_bytes = 0;            // 0: no limit; more is an error (not retryable)
  std::chrono::seconds connect_timeout{10};
  // A transfer slower than 1 KiB/s for this long is cut (and can be resumed).
  std::chrono::seconds low_speed_time{30};
  const std::atomic<bool>* cancel = nullptr;  // set to abort (the partial file is kept)
  std::string ca_file;  // extra CA bundle for https (added by the image module); empty: system's
  // Called on the fetching thread after each written chunk with the bytes in the file and the
  // bytes this call transferred (progress reports; OTA's fail point).
  std::function<void(uint64_t size, uint64_t fetched)> on_progress;
};

struct FetchResult {
  std::string sha256;          // of the whole file
  uint64_t size = 0;           // bytes in the file
  uint64_t bytes_fetched = 0;  // bytes this call transferred (size minus what was resumed)
  bool resumed = false;        // a partial file was continued
  long http_status = 0;        // last response code (0 for file://)
};

struct FetchError {
  Error error;
  bool retryable = false;
  long http_status = 0;
  std::string www_authenticate;  // the 401 challenge, for registry token auth
};

// A value or a FetchError.
class FetchOutcome {
 public:
  FetchOutcome(FetchResult r) : ok_(true), result_(std::move(r)) {}   // NOLINT
  FetchOutcome(FetchError e) : ok_(false), failure_(std::move(e)) {}  // NOLINT
  explicit operator bool() const { return ok_; }
  const FetchResult& operator*() const { return result_; }
  const FetchResult* operator->() const { return &result_; }
  const FetchError& failure() const { return failure_; }

 private:
  bool ok_;
  FetchResult result_;
  FetchError failure_;
};

FetchOutcome fetch_to_file(const FetchRequest& request);

// Hex SHA-256 of a file's content.
Expected<std::string> sha256_file(const std::string& path);

}  // namespace flotilla::runtime::image
