// VirtualOta: the OTA side of the virtual agents (VirtualFleet), standing in for the agent's
// updater (ota/updater.hpp) without slots or SQLite.
//
// On down/ota (UpdateAssignment) a node takes a generation above the one it holds: an abort
// before the switch ends as ABORTED; otherwise it reports DOWNLOADING, really downloads the
// payload from the hub over HTTP (on a small pool of downloader threads, checking the manifest's
// sha256), then reports HEALTH_CHECK and COMMITTED (or ROLLED_BACK for the nodes picked to fail:
// fnv1a32(name) mod 1000 < fail_permille). An older or equal generation (the hub resends after
// every Hello) is answered with the node's current report, as the agent does. Reports go out at
// QoS 1 from the loop's idle hook, one per node per round (the newest state).
//
// Thread-safety: construct and use on the loop thread (through call_on_loop); counters() from
// any thread.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "bench/virtual_fleet.hpp"

namespace flotilla::bench {

struct OtaCounters {
  std::atomic<uint64_t> assignments{0};  // UpdateAssignment messages received
  std::atomic<uint64_t> started{0};      // updates started (new generations)
  std::atomic<uint64_t> downloaded_bytes{0};
  std::atomic<uint64_t> download_failures{0};
  std::atomic<uint64_t> committed{0};
  std::atomic<uint64_t> rolled_back{0};
  std::atomic<uint64_t> aborted{0};
  std::atomic<uint64_t> reports{0};
};

struct OtaOptions {
  uint32_t fail_permille = 0;  // nodes whose health check fails
  uint32_t download_threads = 8;
};

class VirtualOta {
 public:
  // Hooks itself into `fleet` (which it must not outlive); `loop` is the fleet's loop.
  VirtualOta(VirtualFleet& fleet, EventLoop& loop, OtaOptions options);
  ~VirtualOta();

  const OtaCounters& counters() const { return counters_; }
  // Whether node `index` is one the options make fail.
  bool fails(uint32_t index) const;
  // Nodes that received an assignment (any generation), and committed ones.
  uint32_t assigned_nodes() const;
  uint32_t committed_nodes() const;

 private:
  struct Node {
    uint64_t generation = 0;
    std::string rollout;
    std::string version;
    int phase = 0;  // flotilla::v1::UpdatePhase
    uint64_t seq = 0;
    uint64_t bytes_total = 0;
    std::string message;
    bool queued = false;
  };
  struct Download {
    uint32_t node;
    uint64_t generation;
    std::string url;
    std::string sha256;
  };

  void on_ota(uint32_t node, std::string_view payload);
  void on_idle();
  void queue_report(uint32_t node);
  void downloaded(uint32_t node, uint64_t generation, bool ok, const std::string& why);
  void download_worker();

  VirtualFleet& fleet_;
  EventLoop& loop_;
  OtaOptions options_;
  OtaCounters counters_;
  std::vector<Node> nodes_;
  std::vector<uint32_t> queued_;
  // Downloader pool.
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Download> downloads_;
  bool stopping_ = false;
  std::vector<std::thread> workers_;
};

}  // namespace flotilla::bench
