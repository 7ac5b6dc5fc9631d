// DiskCache: the VM disk images (and kernels, initrds) on this node, fetched once, verified by
// SHA-256 and kept under <root>/sha256/<hex>, so instances of the same image share one copy.
//
// prepare() never blocks: the first call starts a download on a background thread and returns
// kInProgress; later calls report it. A failed download (network error, HTTP error, digest
// mismatch) is reported as kFailed with its cause and is retried with exponential backoff once a
// prepare() call comes after the backoff has passed. Only verified files ever appear at a cache
// path (the fetcher writes <path>.partial and renames after the check).
//
// Sources: http(s):// and file:// URLs, and absolute paths. A digest is required for remote
// sources; a local file without one is used in place (the vm driver never writes to it: every
// instance boots from a copy-on-write overlay). A kernel or initrd URL carries its digest as a
// "#sha256=<hex>" suffix, since the spec has a digest field for the disk image only.
//
// Ownership: owns its download threads; the destructor cancels and joins them. Thread-safety:
// every method may be called from any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "common/clock.hpp"
#include "common/expected.hpp"
#include "runtime/driver.hpp"
#include "runtime/image/http_fetch.hpp"

namespace flotilla::runtime::vm {

using FetchFn = std::function<image::FetchOutcome(const image::FetchRequest&)>;

struct DiskSource {
  std::string location;  // as given (for messages)
  std::string url;       // what the fetcher gets; empty for a local file used in place
  std::string sha256;    // lowercase hex; empty only for a local file used in place
  std::string local_path;
};

// Reads an `image` / `kernel` / `initrd` field. `sha256` may be "<hex>", "sha256:<hex>" or empty.
Expected<DiskSource> parse_disk_source(const std::string& location, const std::string& sha256);

class DiskCache {
 public:
  struct Options {
    std::chrono::milliseconds first_retry{std::chrono::seconds(5)};
    std::chrono::milliseconds max_retry{std::chrono::minutes(5)};
    uint64_t max_bytes = 0;  // per file; 0: no limit
  };

  // `root`: the cache folder (<driver root>/images). `fetch`: downloads one file (the vm driver
  // passes image::fetch_to_file). `clock` must outlive the cache.
  DiskCache(std::string root, FetchFn fetch, const Clock& clock, Options options);
  ~DiskCache();
  DiskCache(const DiskCache&) = delete;
  DiskCache& operator=(const DiskCache&) = delete;

  Preparation prepare(const DiskSource& source);
  // The verified file of a prepared source; an Error when it is not on the node.
  Expected<std::string> path(const DiskSource& source) const;
  std::string path_for(const std::string& sha256) const { return root_ + "/sha256/" + sha256; }

 private:
  struct Download {
    std::thread worker;
    bool running = false;
    std::string error;  // of the last attempt; empty when none failed
    TimePoint next_attempt{};
    int failures = 0;
    std::atomic<bool> cancel{false};
  };

  void run(Download* download, DiskSource source);

  const std::string root_;
  const FetchFn fetch_;
  const Clock& clock_;
  const Options options_;
  mutable std::mutex mu_;
  std::map<std::string, std::unique_ptr<Download>> downloads_;  // by sha256
};

}  // namespace flotilla::runtime::vm
