// Controller: the hub's state machine. It applies and deletes workloads, schedules them onto
// nodes, keeps each node's desired revision, and runs the hub side of the sync protocol
// (docs/protocol.md): hello, heartbeat, ack, status and will in; desired and resync out.
//
// State lives in a control store (workloads, the scheduler's placements, fleet-wide events) and
// one store per shard (node-scoped state: registration, revisions and change log, instances,
// node events); a node's shard is sync::shard_of(node). Each shard has its own lock, so the
// sync server's per-shard workers ingest in parallel. Anything that needs the whole fleet
// (apply, delete, scheduling, evictions, views across shards) takes the control lock and then
// every shard lock in order -- the only order in which any thread holds more than one.
//
// A state change commits in the control store first (workloads and placements: an apply is all
// or nothing there), then in each shard it touches (the per-node desired state that follows from
// the placements). A crash in between is repaired by start(), which derives every node's desired
// state from the placements again. Node state is a cache the agents rebuild: when a shard's
// store was lost (start() is told so), scheduling holds still until that shard's nodes have said
// hello again (or options.recovery_grace passed), so no placement moves for want of a node the
// hub merely forgot. Messages to agents are published after the commit and outside the locks. A
// message that is lost is recovered by the protocol's catch-up: a node whose acked revision is
// behind gets its desired state again on its next hello or heartbeat.
//
// Liveness is judged by the injected clock at receipt (never by agents' clocks): a node is
// NotReady when nothing arrived for `node_timeout`, or at once when its last will arrives.
//
// Thread-safety: every public method may be called from any thread. batch() groups many protocol
// messages of one shard into one lock hold and one commit. A protocol message that changes what
// the scheduler sees (a new node, a node back to Ready) asks for a scheduling pass, which runs
// when the handler or batch has let go of its shard: many such messages share one pass.
// Implementation: controller.cpp (workloads, scheduling, sending desired state),
// controller_nodes.cpp (protocol messages and liveness), controller_views.cpp (JSON views),
// controller_devices.cpp (device twins).
//
// Device twins (docs/protocol.md "Device twins", common/twin.hpp) are node-scoped: a device's row
// lives in its node's shard store. A device name is unique fleet-wide; the hub keeps no separate
// device -> node index: finding a device by name asks each shard store in turn (a primary-key
// lookup under that shard's lock alone). REST writes of devices are serialised by devices_mu_,
// taken before (never while holding) a shard lock, so a name cannot be created twice in two
// shards at once.
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <tuple>
#include <unordered_map>
#include <utility>
#include <vector>

#include <spdlog/logger.h>
#include <nlohmann/json.hpp>

#include "cloud-hub/change.hpp"
#include "cloud-hub/manifest.hpp"
#include "cloud-hub/metrics.hpp"
#include "cloud-hub/scheduler.hpp"
#include "cloud-hub/store.hpp"
#include "common/clock.hpp"
#include "common/expected.hpp"
#include "common/twin.hpp"
#include "sync/topics.hpp"
#include "sync/transport.hpp"

namespace flotilla::hub {

struct ControllerOptions {
  uint32_t shards = sync::kDefaultShards;
  Millis node_timeout{15000};    // NotReady after this long without any message
  Millis resend_interval{5000};  // least time between resends of desired state to a node
  // Blast radius: an apply or delete that would stop or replace more than this share (0..1) of
  // the running instances at once is refused unless forced.
  double max_disruption = 0.5;
  // How long scheduling waits for the nodes of a shard whose store was lost to say hello again.
  Millis recovery_grace{30000};
  // QoS of DesiredState messages. 0 by default: agents hold clean sessions, so QoS 1 never
  // carried a desired state across a reconnect (the hello's catch-up does), while inside a
  // connection TCP delivers in order; a message the broker drops under load is sent again by
  // the protocol (docs/protocol.md: the agent acks, heartbeats carry its acked revision, the
  // hub resends what is unacked). QoS 1 costs an acknowledgement per node for nothing more.
  int desired_qos = 0;
};

struct ApplyResult {
  std::string name;
  std::string action;  // created | configured | unchanged
};

// What an apply did. `refused` non-empty: the blast-radius guard held it back, nothing changed.
struct ApplyOutcome {
  std::vector<ApplyResult> results;
  std::string refused;
};

// What a REST change of a device did. kInvalid and kConflict changed nothing.
struct DeviceOutcome {
  enum class Code { kOk, kCreated, kNotFound, kInvalid, kConflict };
  Code code = Code::kOk;
  std::string message;   // kInvalid, kConflict, kNotFound: why
  nlohmann::json view;   // kOk, kCreated: the device afterwards
  bool changed = false;  // put_device: it stored something (else the device was as asked)
};

struct DeleteOutcome {
  bool found = false;   // false: there is no such workload
  std::string refused;  // non-empty: held back by the blast-radius guard, nothing changed
};

// A page of a list view: items whose labels match `selector`, names after `after`, at most
// `limit` of them (0: all). Nodes only: `ready` true lists Ready nodes, false NotReady ones.
struct ListOptions {
  std::map<std::string, std::string> selector;
  std::string after;
  int64_t limit = 0;
  std::optional<bool> ready;
};

class Controller {
 public:
  // One store for everything (tests and tools).
  Controller(Store& store, const Clock& clock, sync::Transport& transport, Metrics& metrics,
             ControllerOptions options);
  // A control store and one store per shard: options.shards of them, by shard number.
  Controller(Store& control, const std::vector<Store*>& shards, const Clock& clock,
             sync::Transport& transport, Metrics& metrics, ControllerOptions options);

  // Called after each commit that changed views, outside every lock, on the committing thread.
  // Set before start().
  void set_change_listener(ChangeListener listener) { listener_ = std::move(listener); }

  // Loads the registered nodes (they keep their stored readiness until the timeout decides) and
  // brings every node's desired state in line with the placements. `rebuilt_shards`: shards
  // whose store was lost and opened empty; their nodes are waited for (see above).
  Status start(const std::set<uint32_t>& rebuilt_shards = {});

  // Applies workloads in one transaction: all or nothing. Unless `force`, a change that would
  // stop too much of the fleet at once (options.max_disruption) is refused and changes nothing.
  Expected<ApplyOutcome> apply(const std::vector<WorkloadManifest>& manifests, bool force = false);
  // Deletes a workload, under the same guard as apply().
  Expected<DeleteOutcome> delete_workload(const std::string& name, bool force = false);

  // Views for the REST API; nullopt when the object does not exist.
  // Lists are {"items": [...], "continue": TOKEN}: TOKEN (empty on the last page) asks for the
  // next page (list_token_decode gives the name to start after).
  Expected<nlohmann::json> nodes_view(const ListOptions& options = {});
  Expected<std::optional<nlohmann::json>> node_view(const std::string& name);
  // A workload's status always counts its instances (desiredInstances, readyInstances,
  // placedNodes, instancesByPhase); kFull also lists them (status.nodes, status.instances: one
  // entry per placed node and per instance). kSummary, what watch events carry, does not, so an
  // everyNode workload's event stays small however large the fleet.
  enum class Detail { kFull, kSummary };
  Expected<nlohmann::json> workloads_view(const ListOptions& options = {},
                                          Detail detail = Detail::kFull);
  Expected<std::optional<nlohmann::json>> workload_view(const std::string& name,
                                                        Detail detail = Detail::kFull);
  Expected<nlohmann::json> events_view(const EventFilter& filter);
  // Gauges in Prometheus text: nodes by state, workloads, instances by phase.
  std::string gauges_text();

  // Device twins. put_device creates or replaces a device from {"node": N, "labels": {...},
  // "desired": {...}} (labels and desired optional: no labels means none, no desired leaves
  // desired as it is; a replace keeps versions, bumping desired's when it changed; the node of
  // an existing device cannot change). set_device_desired merges a patch into desired, guarded
  // by if_version. Each change commits in the node's shard, then a TwinDesired goes to the node.
  Expected<DeviceOutcome> put_device(const std::string& name, const nlohmann::json& body);
  Expected<DeviceOutcome> set_device_desired(const std::string& name, const nlohmann::json& patch,
                                             std::optional<uint64_t> if_version);
  Expected<std::optional<nlohmann::json>> device_view(const std::string& name);
  // {"items": [...], "continue": TOKEN}: the devices of `node`, or of every node when empty, by
  // name, selected by their labels and paged like the other lists.
  Expected<nlohmann::json> devices_view(const std::string& node = "",
                                        const ListOptions& options = {});
  // False when there is no such device; else the node is sent removed = true.
  Expected<bool> delete_device(const std::string& name);

  // Protocol messages, already decoded and checked against their topic's node.
  void on_hello(const flotilla::v1::Hello& hello);
  void on_heartbeat(const flotilla::v1::Heartbeat& hb);
  void on_ack(const flotilla::v1::Ack& ack);
  void on_status(const flotilla::v1::StatusBatch& batch);
  void on_will(const flotilla::v1::Offline& will);
  void on_twin_reported(const flotilla::v1::TwinReported& reported);
  // Runs `handle_all` (which calls the on_* handlers above) under one lock hold and one store
  // transaction: a burst of messages costs one commit instead of one each. Each handler still
  // keeps or undoes its own part whole (a nested transaction); what they queue to send is
  // published after the commit, and dropped if the commit fails (the protocol resends).
  void batch(const std::function<void()>& handle_all) { batch(0, handle_all); }
  // The same for the messages of one shard (the nodes the handlers are called for belong to it):
  // one commit in that shard's store.
  void batch(uint32_t shard, const std::function<void()>& handle_all);
  // Records an event for another component (OTA rollouts): a node's in its shard's store, a
  // fleet-wide one (node empty) in control. Takes a Controller lock: call with none held.
  Status record_event(const std::string& node, const std::string& object, const std::string& reason,
                      const std::string& message);
  // Nodes of rebuilt shards that scheduling still waits for (0 when it does not wait).
  size_t awaited_nodes();
  // Periodic: marks silent nodes NotReady, and places elsewhere the instances of workloads
  // whose evictAfterSeconds a NotReady node has passed. Call about once a second.
  void tick();
  // Several hub instances over one database (docs/multi-hub.md): whether this instance owns
  // shard `shard`, i.e. ingests its nodes' messages and judges their liveness (tick() leaves the
  // others alone). Every shard is owned until told otherwise. Taking a shard reloads its nodes
  // from the store with their liveness clocks started now (as start() does), so none turns
  // NotReady before it had node_timeout to be heard; letting it go forgets them.
  void set_shard_owned(uint32_t shard, bool owned);
  // Fencing, with several instances: `fence` runs inside every transaction of an owner's write to
  // a shard (a batch of its nodes' messages, a node turned NotReady) just before it commits, and
  // an error rolls the write back (flotilla_hub_fenced_writes_total): the hub checks there that
  // its lease of the shard is still the database's (Store::check_lease), so an owner that lost
  // its lease unawares (a pause) cannot overwrite what the new owner wrote. Set before start().
  using ShardFence = std::function<Status(uint32_t shard, Store& store)>;
  void set_shard_fence(ShardFence fence) { fence_ = std::move(fence); }
  // Forgets a node: its placements go at once (placed anew elsewhere), its record, desired
  // state and instances are deleted. An agent that comes back registers anew. False when there
  // is no such node.
  Expected<bool> delete_node(const std::string& name);

 private:
  // What the hub knows about a node only in memory (by the hub's monotonic clock).
  struct Live {
    TimePoint last_seen{};
    bool timed_out = false;  // tick() checked it after last_seen went stale: not again
    TimePoint last_sent{};   // last DesiredState sent
    uint64_t sent_to = 0;    // its to_revision
    uint64_t gap_seq = 0;    // status seq claimed by a heartbeat but not yet received
    std::string seq_boot;    // boot id of the agent process whose records last raised status_seq
    std::optional<TimePoint> not_ready_since;  // set while NotReady (evictAfterSeconds)
    Millis evict_checked{0};  // NotReady this long when evictions were last considered
    // Devices sent a desired change that the agent has not reported holding yet, and when a
    // TwinDesired last went out: heartbeats resend them (controller_devices.cpp).
    std::set<std::string> twin_unacked;
    TimePoint twin_sent{};
    // A full TwinDesired went to the node since this hub process started. Until then a change
    // committed by an earlier process (killed before it published) may never have gone out: a
    // heartbeat that comes before any hello (the agent missed HubOnline) gets the full list.
    bool twin_listed = false;
    // Hub messages the node's agent process dropped (forged, unsigned, malformed), as its last
    // heartbeat said (docs/security.md).
    uint64_t rejected_messages = 0;
    std::string rejected_boot;          // the agent process that counted them
    std::vector<std::string> hub_keys;  // hub signing keys the agent trusts, as its Hello said
  };
  // Takes a heartbeat's count of dropped hub messages: new drops are counted and logged.
  void note_rejections_locked(const std::string& node, Live& live,
                              const flotilla::v1::Heartbeat& hb);
  // Instance startup latency (flotilla_hub_instance_startup_seconds): a desired revision that
  // adds a workload to a node or gives it a new spec hash was issued at `issued`; the first
  // status record of that instance Running with that hash observes the time since.
  struct Startup {
    std::string spec_hash;
    TimePoint issued;
  };
  // One shard's node-scoped state: its store and what is known of its nodes in memory.
  struct Shard {
    std::recursive_mutex own_mu;
    std::recursive_mutex* mu = &own_mu;  // the control lock when the store is shared with it
    Store* store = nullptr;
    uint32_t number = 0;
    bool owned = true;  // set_shard_owned
    std::map<std::string, Live> live;
    // When each unknown node was last asked to resync (bounded; see resync_unknown_locked).
    std::unordered_map<std::string, TimePoint> unknown_resynced;
    // Startups awaited, by (node, workload). Memory only (an instance already Running when
    // the hub starts is never counted) and bounded: dropped when observed, when the workload
    // leaves the node or the node is deleted, after kStartupForget; at most kMaxStartups.
    std::map<std::pair<std::string, std::string>, Startup> startups;
    // No startup was issued before this (an entry observed since may have been older): ticks
    // skip the scan for stale startups until it is kStartupForget old.
    TimePoint oldest_startup{};
  };
  static constexpr const char* kStartupMetric = "flotilla_hub_instance_startup_seconds";
  static const std::vector<double>& startup_buckets();     // its bucket bounds
  static constexpr size_t kMaxStartups = 100000;           // per shard
  static constexpr Millis kStartupForget{60 * 60 * 1000};  // an hour
  // Takes the Running records of a status batch for the startups awaited on its node.
  void observe_startups_locked(Shard& shard, const flotilla::v1::StatusBatch& batch);
  // Drops the startups awaited longer than kStartupForget.
  void forget_stale_startups_locked(Shard& shard);
  // fence_ for a write to `shard` (Ok without one).
  Status fence_locked(Shard& shard);
  using Outbox = std::vector<sync::Message>;
  // The control lock, every shard's, and the control store's fleet lock (other hub instances
  // sharing the database wait for it: Store::lock_fleet), let go of in the reverse order.
  struct Locks {
    Locks() = default;
    Locks(Locks&& o) noexcept
        : mutexes(std::move(o.mutexes)), fleet(std::exchange(o.fleet, nullptr)) {}
    Locks& operator=(Locks&&) = delete;
    ~Locks() {
      if (fleet != nullptr) fleet->unlock_fleet();
    }
    std::vector<std::unique_lock<std::recursive_mutex>> mutexes;
    Store* fleet = nullptr;  // whose fleet lock is held
  };
  using Placements = std::map<std::string, std::set<std::string>>;
  // What a scheduling pass decided, before anything is written.
  struct Plan {
    std::vector<WorkloadRecord> workloads;
    Placements before;  // the stored placements it started from
    std::map<std::string, WorkloadPlacement> result;
    std::map<std::string, flotilla::v1::WorkloadSpec> specs;
    std::vector<std::vector<std::string>> nodes_by_shard;  // registered nodes, by shard index
  };

  Shard& shard_of(const std::string& node);
  // Gives each of `nodes` a Live entry heard from `now` (start, a shard taken).
  void start_liveness_locked(Shard& shard, const std::vector<NodeRecord>& nodes, TimePoint now);
  // The control lock, then every shard's, in order.
  Locks lock_all();
  // Distinct stores: control first, then the shards' (one when they share it).
  std::vector<Store*> all_stores();

  // Runs the scheduler (or, while waiting for the nodes of a rebuilt shard, keeps the stored
  // placements as they are). Needs every lock.
  Expected<Plan> plan_locked();
  // Writes the plan's placements and pending counts to the control store; call inside a
  // control transaction.
  Status write_placements_locked(const Plan& plan);
  // Rewrites the desired state of nodes whose placements or specs differ from the plan, one
  // transaction per shard, and adds them to `changed`. `specs_changed` false (a node came, went
  // or changed) lets it skip nodes whose set of placed workloads stayed the same.
  // `also`: nodes to look at in any case (back from a rebuilt shard, with nothing stored).
  // `shard_done` (apply), with `locks` the caller's lock_all(): once what needs every shard is
  // read, the shard locks are let go (the control and fleet locks stay held), each shard's lock
  // is taken for its own transaction only, and after it is released `shard_done` gets the nodes
  // that shard changed, so their desired state can leave while the next shard is written and
  // the shards already done go on ingesting.
  using ShardDone = std::function<void(const std::set<std::string>& changed_in_shard)>;
  Status materialize_locked(const Plan& plan, bool specs_changed, std::set<std::string>& changed,
                            const std::set<std::string>& also = {},
                            const ShardDone& shard_done = {}, Locks* locks = nullptr);
  // Rolling updates (spec.update): for each workload with an update policy whose new spec is
  // still on its way (or all of them when `specs_changed`), the nodes that may take it now
  // (rollout.hpp); adds those nodes to `visit`. Records each rollout's status for the views.
  Expected<std::map<std::string, std::set<std::string>>> rollout_gates_locked(
      const Plan& plan, bool specs_changed, std::set<std::string>& visit);
  // The rollout status of a workload ("" when none), for its view.
  std::string rollout_status(const std::string& workload);
  // plan, write, materialize: a whole scheduling pass. Needs every lock.
  Status reschedule_locked(std::set<std::string>& changed, bool specs_changed = true,
                           const std::set<std::string>& also = {});
  // Asks for a scheduling pass; reschedule_if_wanted() runs it once for all asks so far.
  void want_reschedule() { resched_wanted_.fetch_add(1); }
  void reschedule_if_wanted();  // takes every lock: call with none held
  // Whether this thread is inside batch() (whose end runs the scheduling pass).
  static bool in_batch();
  // Ends the wait for a rebuilt shard's nodes when they are all back or the grace has passed.
  void check_hold();
  // The validated manifest of a stored workload (parsed once, then cached).
  Expected<const WorkloadManifest*> manifest_locked(const WorkloadRecord& w);
  // Queues the node's DesiredState if its acked revision differs from its current one.
  void queue_desired_locked(Shard& shard, const NodeRecord& node, Outbox& out);
  // A node the hub does not know sent a heartbeat or status: asks it for a hello, at most once
  // per resend interval. Its answer (hello and a full status) would otherwise be answered again
  // at once whenever the hello is not taken (no protocol version in common), without end.
  void resync_unknown_locked(Shard& shard, const std::string& node, Outbox& out);
  // An ack of `revision` (an Ack, or a v3 StatusBatch's acked_revision): raises
  // node.acked_revision and returns true when it is newer and was issued; a revision above the
  // node's current one is logged and counted, and changes nothing. The caller stores the node.
  bool take_ack_locked(NodeRecord& node, uint64_t revision);
  // After a stored ack: a node still behind is sent the rest, unless a message covering it is
  // already on its way.
  void after_ack_locked(Shard& shard, const NodeRecord& node, const Live& live, Outbox& out);
  void queue_desired_for_locked(const std::set<std::string>& nodes, Outbox& out);
  void queue_resync_locked(const std::string& node, const std::string& reason, Outbox& out);
  // Records an event: a node's in its shard's store, a fleet-wide one (node empty) in control.
  Status event_locked(const std::string& node, const std::string& object, const std::string& reason,
                      const std::string& message);
  // Accepts a revision the agent claims: raises acked, or resets the node's history when the
  // claim is beyond anything issued. Call inside a transaction of the node's shard.
  Status accept_claimed_revision_locked(Shard& shard, NodeRecord& node, uint64_t claimed);
  // False when the write failed (logged; the node stays as stored).
  bool set_not_ready_locked(Shard& shard, NodeRecord& node, const std::string& why);
  // Reschedules when a NotReady node has just passed some workload's evictAfterSeconds.
  void evict_due_locked(Outbox& out);
  void mark_silent_not_ready(Shard& shard);
  void store_failed(const std::string& what, const Error& e);
  // The (workload, node) placements whose node reports the instance Running.
  Expected<std::set<std::pair<std::string, std::string>>> running_locked(
      const Placements& placements);
  // The guard's refusal of a change to `after`, or empty when it may commit.
  std::string check_disruption_locked(const std::string& verb,
                                      const std::set<std::pair<std::string, std::string>>& running,
                                      const Placements& after,
                                      const std::set<std::string>& replaced, bool force);
  nlohmann::json node_json_locked(Shard& shard, const NodeRecord& node, bool detail);
  // The instances of these workloads, from every shard (takes each shard's lock in turn).
  Expected<std::map<std::string, std::vector<InstanceRecord>>> instances_of_locked(
      const std::vector<const WorkloadRecord*>& workloads);
  void flush(Outbox& out);
  // Device twins: the stored device, asking each shard in turn (see above).
  Expected<std::optional<DeviceRecord>> find_device(const std::string& name);
  // Queues TwinDesired for `node` with `devices`, in parts under sync::kMaxMessageBytes.
  void queue_twin_locked(const std::string& node, std::vector<flotilla::v1::DeviceDesired> devices,
                         bool full, Outbox& out);
  // Writes a desired change of `rec` (now `t`) with its event in one transaction of the node's
  // shard, then queues its TwinDesired.
  Status commit_desired_locked(Shard& shard, DeviceRecord& rec, const twin::Twin& t,
                               const std::string& reason, Outbox& out);
  // On a heartbeat: sends again, at most every resend_interval, the devices of the node whose
  // desired change the agent has not acknowledged by a report; the full list when this hub
  // process has sent none to the node yet.
  void resend_twins_locked(Shard& shard, const std::string& node, Outbox& out);
  // The full TwinDesired of a node (after its hello).
  void queue_twin_full_locked(Shard& shard, const std::string& node, Outbox& out);
  // Notes a changed view; flush() hands the changes noted so far to the listener.
  void note_changed(Change::Kind kind, const std::string& name);

  Store& control_;
  const Clock& clock_;
  sync::Transport& transport_;
  Metrics& metrics_;
  ControllerOptions options_;
  std::shared_ptr<spdlog::logger> log_;

  ChangeListener listener_;
  ShardFence fence_;
  std::mutex changes_mu_;
  std::set<Change> changes_;  // noted, not yet handed to the listener

  std::recursive_mutex control_mu_;  // the control store, manifests_, resched_done_
  std::vector<std::unique_ptr<Shard>> shards_;
  // workload name -> (canonical JSON it was parsed from, parsed manifest)
  std::map<std::string, std::pair<std::string, WorkloadManifest>> manifests_;
  std::atomic<uint64_t> resched_wanted_{0};
  std::atomic<uint64_t> resched_done_{0};  // written under the control lock

  std::mutex hold_mu_;  // taken last, alone
  // The control store's counts as last read by gauges_text(): a scrape while an apply holds the
  // control lock shows these instead of waiting (the shards' counts are read live).
  std::mutex control_counts_mu_;  // taken last, alone
  StoreCounts control_counts_;
  std::set<std::string> awaited_;  // nodes of rebuilt shards that have not said hello yet
  std::optional<TimePoint> hold_until_;
  std::set<std::string> rematerialize_;  // awaited nodes that came back: their desired state

  struct Rollout {
    std::string status;
    bool complete = false;
  };
  std::mutex devices_mu_;                    // REST device writes; taken first, then one shard lock
  std::mutex rollouts_mu_;                   // taken last, alone
  std::map<std::string, Rollout> rollouts_;  // by workload, for those with spec.update
};

// The opaque continue token of a list page that ended at `name`, and back (nullopt: not one).
std::string list_token(const std::string& name);
std::optional<std::string> list_token_decode(const std::string& token);

// "Running", "Failed", ... for InstanceStatus phases.
std::string phase_name(int phase);
// RFC 3339 UTC, second precision: "2024-05-01T12:00:00Z".
std::string format_time(int64_t unix_ms);

}  // namespace flotilla::hub
