// agent::Store: the agent's durable state in SQLite (<data>/agent.db): which node it is, the
// desired workloads and revision last received from the hub, the instances it runs, and the
// status outbox waiting to be sent.
//
// Every state change is one transaction: an instance's new state, its status record in the
// outbox (with the next value of the persisted `seq` counter) and its event commit together,
// so a kill -9 at any point leaves a consistent store. The outbox keeps only the latest status
// per instance plus at most kMaxEvents events (oldest dropped and counted).
//
// Thread-safety: one thread (the agent's loop) uses a Store.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/expected.hpp"
#include "common/sqlite.hpp"
#include "common/twin.hpp"
#include "sync/flotilla.pb.h"
#include "sync/signed.hpp"

namespace flotilla::agent {

namespace v1 = ::flotilla::v1;

inline constexpr int64_t kMaxEvents = 1000;

// An instance of a workload, as persisted. The runtime handle (pid + start_ticks) lets the
// agent find the instance again after its own restart.
struct InstanceRecord {
  std::string instance_id;
  std::string workload;
  std::string spec_hash;
  int64_t pid = 0;
  uint64_t start_ticks = 0;
  v1::Phase phase = v1::PHASE_PENDING;
  uint32_t restarts = 0;
  int32_t exit_code = 0;
  std::string message;
  int64_t started_unix_ms = 0;
  // Backoff: consecutive crashes so far and when the next restart is due (wall ms; only a hint
  // after an agent restart, clamped to the maximum backoff).
  int32_t backoff_attempts = 0;
  int64_t next_restart_unix_ms = 0;
  // Stopping: SIGTERM -> SIGKILL delay and when the stop began (wall ms).
  int64_t grace_ms = -1;  // SIGTERM -> SIGKILL delay; -1: not recorded, use the default
  int64_t terminating_since_unix_ms = 0;
  uint64_t seq = 0;  // seq of the instance's latest status record
  // A short word for why the instance is in its phase: ImagePulling, ImagePullBackOff,
  // OOMKilled, LivenessFailed, ... (empty when there is nothing to add to the phase).
  std::string reason;
  // Running and passing its readiness probe (running is enough without one).
  bool ready = false;
};

struct EventRecord {
  std::string object;
  std::string reason;
  std::string message;
  int64_t unix_ms = 0;
};

struct OutboxStatus {
  std::string instance_id;
  uint64_t seq = 0;
  std::string record;  // encoded v1::InstanceStatus
};

struct OutboxEvent {
  uint64_t seq = 0;
  std::string record;  // encoded v1::Event
};

// A change of one device twin: the new twin, or its removal (nullopt). `report` queues the
// device in the twin outbox: its reported state (and the desired version held) goes to the hub.
struct TwinWrite {
  std::string device;
  std::optional<twin::Twin> twin;
  bool report = false;
};

// A device whose reported twin waits to be sent; `seq` changes whenever it is queued again.
struct OutboxTwin {
  std::string device;
  uint64_t seq = 0;
};

struct Meta {
  std::string node;
  uint64_t desired_revision = 0;
  uint64_t status_seq = 0;  // highest seq handed out
  uint64_t dropped_events = 0;
  uint64_t instance_counter = 0;
  std::string boot_id;  // of the agent process that last opened the store
};

class Store {
 public:
  // Opens (creating and migrating) the store at `path` for `node`. A store that belongs to
  // another node is refused. An empty `node` opens an existing store for reading whatever node
  // it holds (the `status` verb).
  static Expected<std::unique_ptr<Store>> open(const std::string& path, const std::string& node);

  const Meta& meta() const { return meta_; }
  Status set_boot_id(const std::string& boot_id);

  // Desired state. apply_desired replaces the set (snapshot) or applies upserts and deletes,
  // and stores the new revision, in one transaction.
  Expected<std::map<std::string, v1::WorkloadSpec>> load_desired();
  Status apply_desired(bool snapshot, const std::vector<v1::WorkloadSpec>& upserts,
                       const std::vector<std::string>& deletes, uint64_t to_revision);
  // Bumped by every successful apply_desired (not persisted): tells readers to reload.
  uint64_t desired_version() const { return desired_version_; }

  // Instances. create_instance names the instance ("<workload>-<n>"); every write records the
  // instance's status in the outbox with a new seq (stored back in rec.seq) and the event.
  Expected<std::vector<InstanceRecord>> load_instances();
  Status create_instance(InstanceRecord& rec, const EventRecord& event);
  Status save_instance(InstanceRecord& rec, const EventRecord& event);
  // Deletes the instance and queues its final status with removed = true.
  Status remove_instance(InstanceRecord& rec, const EventRecord& event);

  // Outbox, oldest first.
  Expected<std::vector<OutboxStatus>> outbox_statuses();
  Expected<std::vector<OutboxEvent>> outbox_events();
  // Deletes what the broker acknowledged: a status row only if its seq is still the one sent.
  Status delete_sent(const std::vector<std::pair<std::string, uint64_t>>& statuses,
                     const std::vector<uint64_t>& event_seqs);
  // Bumped whenever rows are added to the outbox (not persisted): tells the sender to look.
  uint64_t outbox_version() const { return outbox_version_; }

  // Device twins (store_twins.cpp). put_twins writes every change (and queues the reports)
  // in one transaction; the twin outbox keeps one row per device, so the newest wins.
  Expected<std::map<std::string, twin::Twin>> load_twins();
  Status put_twins(const std::vector<TwinWrite>& writes);
  Expected<std::vector<OutboxTwin>> outbox_twins();
  // Deletes what the broker acknowledged: a row only if its seq is still the one sent.
  Status delete_sent_twins(const std::vector<OutboxTwin>& sent);
  uint64_t twin_outbox_version() const { return twin_outbox_version_; }

  // The hub signing keys taken through key rotations, and the retired ones (sync/signed.hpp);
  // save replaces what was stored, in one transaction.
  Expected<sync::HubKeyState> load_hub_keys();
  Status save_hub_keys(const sync::HubKeyState& state);

 private:
  explicit Store(sql::Db db) : db_(std::move(db)) {}
  Status load_meta();
  Status claim_node(const std::string& node);
  enum class Write { kInsert, kUpdate, kRemove };
  Status write_instance(Write kind, InstanceRecord& rec, const EventRecord& event);
  Status put_status(const InstanceRecord& rec, bool removed);
  Status put_event(const EventRecord& event);
  Status save_counters();

  sql::Db db_;
  Meta meta_;
  uint64_t desired_version_ = 0;
  uint64_t outbox_version_ = 0;
  uint64_t twin_outbox_version_ = 0;
  uint64_t twin_seq_ = 0;  // highest outbox_twins seq handed out (from the table at open)
};

// The status record the hub sees for an instance.
v1::InstanceStatus to_status(const InstanceRecord& rec, bool removed = false);

}  // namespace flotilla::agent
