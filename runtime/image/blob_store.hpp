// BlobStore: content-addressed blobs under `<root>/blobs/sha256/<hex>`, shared by every image.
// A blob appears at its path only once verified (fetch_to_file renames after the digest check),
// so presence means valid. Concurrent requests for one digest run one download; the others wait
// for it and share its result.
//
// Ownership: owns nothing but the folder it is given.
// Thread-safety: every method may be called from any thread.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "common/expected.hpp"
#include "runtime/image/http_fetch.hpp"

namespace flotilla::runtime::image {

struct BlobResult {
  std::string path;
  uint64_t bytes_fetched = 0;  // by this call's download (0 when present or fetched by another)
  bool retryable = false;      // for errors
};

class BlobStore {
 public:
  explicit BlobStore(std::string root);

  // Creates the folders; call once before use.
  Status init();
  std::string path(const std::string& digest) const;
  bool has(const std::string& digest) const;

  // Makes blob `digest` present: `download(dest)` is called (by one caller at a time per digest)
  // when it is missing and must leave a verified file at dest.
  using Download = std::function<FetchOutcome(const std::string& dest)>;
  Expected<BlobResult> ensure(const std::string& digest, const Download& download,
                              bool* retryable = nullptr);

  // Stores small bytes (manifests) under their digest, atomically.
  Status put(const std::string& digest, const std::string& bytes);

  // Every complete blob present, with its size.
  std::map<std::string, uint64_t> list() const;
  // Removes a blob (and its partial download) unless a download of it is in flight.
  Status remove(const std::string& digest);

  // How many downloads ran (for tests and metrics).
  uint64_t downloads() const;

 private:
  std::string root_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::set<std::string> in_flight_;
  uint64_t downloads_ = 0;
};

}  // namespace flotilla::runtime::image
