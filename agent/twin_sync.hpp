// agent::TwinSync: the agent's side of device twins (docs/protocol.md, "Device twins").
//
// From the hub (down/twin, TwinDesired): adopts each device's newer desired document
// (twin::Twin::adopt_desired), persists it and only then publishes it to the local device
// bridge, and queues a report (which doubles as the ack). `full` messages (collected over their
// parts) also forget the devices they do not list.
// From devices, on the local broker under flotilla/local/devices/{device}/twin/: `reported`
// patches are validated and merged (twin::Twin::report), persisted with an outbox row (the
// reports of one loop iteration in one transaction) before the new delta is published, and
// queued for the hub; an invalid one is answered on `rejected` and changes nothing; `get`
// republishes `desired` and `delta` (retained). Every (re)connect to the local broker
// republishes every cached twin, so a device restarting while the hub is unreachable gets its
// desired state from the cache.
// To the hub (up/twin, TwinReported): the twin outbox, one row per device (newest wins), flushed
// in size-capped QoS 1 batches; a row leaves only after the broker acknowledged its batch and if
// it was not queued again meanwhile.
//
// Without a local transport (no --device-mqtt) twins are still cached and reported, but nothing
// is published to devices.
//
// Thread-safety: every method on the agent's loop thread (completions via post_done, like
// SyncClient).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "agent/config.hpp"
#include "agent/store.hpp"
#include "common/clock.hpp"
#include "common/twin.hpp"
#include "sync/transport.hpp"

namespace flotilla::agent {

inline constexpr std::string_view kLocalDevicesPrefix = "flotilla/local/devices/";
// flotilla/local/devices/{device}/twin/{leaf}
std::string local_twin_topic(std::string_view device, std::string_view leaf);

// The device bridge's client of the local broker: its own client id, clean session.
sync::TransportOptions make_device_transport_options(const AgentConfig& config);

struct TwinCounters {
  uint64_t rejected_messages = 0;  // undecodable or misaddressed TwinDesired, bad device entries
  uint64_t desired_adopted = 0;
  uint64_t reports_accepted = 0;
  uint64_t reports_rejected = 0;  // invalid device reports, answered on `rejected`
  uint64_t batches_sent = 0;
  uint64_t publish_failures = 0;
};

class TwinSync {
 public:
  using PostDone = std::function<void(uint64_t batch_id, Status status)>;

  // `local` may be null (no device bridge). Store, transports and clock outlive the TwinSync.
  TwinSync(const AgentConfig& config, Store& store, sync::Transport& hub, sync::Transport* local,
           const Clock& clock, PostDone post_done);

  // Loads the cached twins and subscribes to the device topics (before the transports start).
  Status start();

  static bool is_local_topic(std::string_view topic);
  void on_hub_message(const std::string& payload);
  void on_local_message(const sync::Message& message);
  void on_hub_connection(bool connected);
  void on_local_connection(bool connected);
  void on_publish_done(uint64_t batch_id, const Status& status);
  // Stores the device reports of this loop iteration (one transaction for all), then flushes
  // the twin outbox when something is new or a batch completed.
  void tick();

  const TwinCounters& counters() const { return counters_; }
  const std::map<std::string, twin::Twin>& twins() const { return twins_; }

 private:
  void publish_to_device(const std::string& device);
  void reject_report(const std::string& device, const std::string& why);
  void handle_report(const std::string& device, const std::string& payload);
  // Stores the reports accepted since the last call in one transaction, then publishes them.
  void store_reports();
  void flush();

  std::string node_;
  uint32_t shards_;
  int max_inflight_;
  Millis publish_retry_;
  Store& store_;
  sync::Transport& hub_;
  sync::Transport* local_;
  const Clock& clock_;
  PostDone post_done_;

  std::map<std::string, twin::Twin> twins_;  // as stored
  // Reports accepted in this loop iteration, newest per device; stored together by tick().
  std::map<std::string, twin::Twin> pending_reports_;
  bool hub_connected_ = false;
  bool local_connected_ = false;
  // A full TwinDesired in parts: the parts seen and the devices they listed.
  uint32_t full_parts_ = 0;
  std::set<uint32_t> full_seen_;
  std::set<std::string> full_listed_;

  bool rescan_ = true;
  uint64_t scanned_version_ = 0;
  TimePoint retry_at_{};
  uint64_t next_batch_id_ = 0;
  std::map<uint64_t, std::vector<OutboxTwin>> inflight_;
  std::map<uint64_t, std::vector<OutboxTwin>> stale_;  // sent before the last reconnect
  std::set<std::string> inflight_devices_;
  TwinCounters counters_;
};

}  // namespace flotilla::agent
