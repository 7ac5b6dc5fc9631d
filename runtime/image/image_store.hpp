// ImageStore: the ImageSource over OCI registries. prepare() queues a pull for a background
// worker thread and reports on it (kInProgress "pulling 'ref': 3/5 blobs"; kFailed with the
// reason and when the next try is, backing off exponentially between backoff_min and
// backoff_max; kReady once unpacked). A reference resolved once is remembered (index.json) and
// is not pulled again, across restarts too. gc() (also run after each pull) removes the unpacked
// images and blobs of images not in use, oldest first, while the store is over its budget.
//
// Ownership: owns its worker thread, joined by the destructor; the Clock (if given) must
// outlive the store.
// Thread-safety: every method may be called from any thread.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>

#include "common/clock.hpp"
#include "runtime/image/blob_store.hpp"
#include "runtime/image/image_index.hpp"
#include "runtime/image/image_source.hpp"
#include "runtime/image/manifest.hpp"
#include "runtime/image/puller.hpp"
#include "runtime/image/registry_client.hpp"

namespace flotilla::runtime::image {

struct ImageStoreConfig {
  std::string root;  // holds blobs/, rootfs/ and index.json
  RegistryConfig registry;
  Platform platform = host_platform();
  uint64_t disk_budget_bytes = 0;  // blobs + unpacked images; 0: unlimited (gc removes nothing)
  Millis backoff_min{1000};        // wait after the first failure, doubled after each next one
  Millis backoff_max{60000};
  Millis worker_tick{1000};      // how often the worker looks for failed pulls due a retry
  const Clock* clock = nullptr;  // nullptr: the system clock
};

struct GcReport {
  uint64_t bytes_before = 0;
  uint64_t bytes_after = 0;
  int images_removed = 0;
  int blobs_removed = 0;
};

class ImageStore final : public ImageSource {
 public:
  explicit ImageStore(ImageStoreConfig config);
  ~ImageStore() override;
  ImageStore(const ImageStore&) = delete;
  ImageStore& operator=(const ImageStore&) = delete;

  // Creates the folders, loads the index, removes leftovers of interrupted unpacks and starts
  // the worker. Call once before anything else.
  Status start();

  Preparation prepare(const std::string& reference) override;
  Expected<UnpackedImage> unpacked(const std::string& reference) override;
  void set_in_use(const std::set<std::string>& references) override;

  GcReport gc();
  // Blob bytes downloaded since start (a measure of what pulls cost the network).
  uint64_t bytes_fetched() const { return bytes_fetched_.load(); }
  BlobStore& blobs() { return blobs_; }

 private:
  struct PullState {
    enum class Phase { kQueued, kPulling, kReady, kFailed } phase = Phase::kQueued;
    int done = 0;
    int total = 0;
    std::string error;
    TimePoint next_retry{};
    int failures = 0;
    std::string digest;
  };

  void worker();
  void run_pull(const std::string& reference);
  void enqueue_locked(const std::string& reference, PullState& state);
  GcReport gc_locked_pulls();  // with pull_mu_ held
  bool image_present(const std::string& digest) const;

  ImageStoreConfig config_;
  SystemClock system_clock_;
  const Clock* clock_;
  RegistryClient client_;
  BlobStore blobs_;
  Puller puller_;

  std::mutex pull_mu_;  // held by the worker during a pull and by gc(): gc never races a pull
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::string, PullState> pulls_;
  std::deque<std::string> queue_;
  IndexEntries index_;
  std::set<std::string> in_use_;
  bool stopping_ = false;
  std::atomic<bool> cancel_{false};
  std::atomic<uint64_t> bytes_fetched_{0};
  std::thread thread_;
};

}  // namespace flotilla::runtime::image
