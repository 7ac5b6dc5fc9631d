// VirtualTwins: the device-twin side of the virtual agents (VirtualFleet), standing in for
// agent/twin_sync.cpp plus its local device bridge and devices: no SQLite, no local broker.
//
// Devices are named device_name(i) and attached to node i mod nodes. On down/twin (TwinDesired)
// a device adopts a desired version above the one it holds (and records when), then the node
// queues a report for it, as the agent does: for every change, for every non-full message, and
// when the hub's versions are not ours. Queued reports go out once per loop round as the agent's
// twin outbox does: per node, one TwinReported with every queued device not already in flight,
// under the message cap (QoS 1; a device is queued again if it changed while in flight).
//
// The flood (reported ingest) makes each node's devices report: every message carries the next
// `per_message` devices of one node (at most the node's devices: as the agent's outbox sends
// every changed device of the node in one batch), each with its reported version bumped and a
// new document {"seq": version, "temp": ...}; a node has at most as many flood messages in flight
// as it has disjoint groups of devices, a connection at most `window`.
//
// Thread-safety: construct and use on the loop thread (through call_on_loop); counters() from
// any thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "bench/device_names.hpp"
#include "bench/virtual_fleet.hpp"

namespace flotilla::bench {

struct TwinCounters {
  std::atomic<uint64_t> desired_msgs{0};     // TwinDesired received
  std::atomic<uint64_t> desired_entries{0};  // DeviceDesired entries received
  std::atomic<uint64_t> adopted{0};          // entries with a newer desired version
  std::atomic<uint64_t> unknown{0};          // entries for a device not of that node
  std::atomic<uint64_t> report_msgs{0};      // TwinReported sent (acks and flood)
  std::atomic<uint64_t> report_records{0};
  std::atomic<uint64_t> flood_sent{0};
  std::atomic<uint64_t> flood_acked{0};  // PUBACKed by the broker
  std::atomic<uint64_t> flood_records{0};
};

class VirtualTwins {
 public:
  struct Device {
    uint64_t desired_version = 0;
    uint64_t reported_version = 0;
    uint64_t observed_desired = 0;
    SteadyTime desired_at{};  // when desired_version was adopted
    uint32_t desired_entries = 0;
    bool queued = false;
    bool inflight = false;
  };

  // Hooks itself into `fleet` (which it must not outlive).
  VirtualTwins(VirtualFleet& fleet, uint32_t devices);

  const TwinCounters& counters() const { return counters_; }
  const Device& device(uint32_t index) const { return devices_[index]; }
  uint32_t devices() const { return static_cast<uint32_t>(devices_.size()); }
  // Devices whose desired version is at least `version`.
  uint32_t count_desired_at_least(uint64_t version) const;
  // The reported document a device sends with reported version `version` (canonical JSON;
  // "{}" for 0, which no report made).
  static std::string reported_doc(uint64_t version);

  // Sends `messages` flood messages of up to `per_message` devices each (0: a node's all).
  void start_flood(uint64_t messages, uint32_t per_message, uint32_t window);
  // Payload bytes of one flood message of `per_message` devices (for the raw-broker comparison).
  size_t flood_payload_size(uint32_t per_message) const;
  // Records (device reports) per flood message for `per_message`.
  uint32_t records_per_message(uint32_t per_message) const;

 private:
  void on_twin(uint32_t node, std::string_view payload);
  void on_idle();
  void flush_reports(uint32_t node);
  void flood_step();
  void add_record(flotilla::v1::TwinReported& msg, uint32_t device) const;

  VirtualFleet& fleet_;
  uint32_t nodes_;
  std::vector<Device> devices_;
  std::vector<std::vector<uint32_t>> by_node_;  // device indices of each node
  std::vector<uint32_t> dirty_nodes_;           // nodes with queued reports
  std::vector<bool> node_dirty_;
  TwinCounters counters_;
  // Flood.
  uint64_t flood_left_ = 0;
  uint32_t per_message_ = 0;
  uint32_t window_ = 0;
  std::vector<uint32_t> flood_cursor_;    // next device (position in by_node_) per node
  std::vector<uint32_t> flood_inflight_;  // flood messages in flight per node
  uint32_t flood_node_ = 0;               // round-robin start
};

}  // namespace flotilla::bench
