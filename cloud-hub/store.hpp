// store::Store: the hub's durable state, in SQLite (WAL: <data>/control.db and shard-NN.db) or in
// PostgreSQL (one database, schemas "control" and "shard_NN"), through store_db.hpp's connection:
// each query is written once for both, the schema steps once per backend.
//
// One schema serves both kinds of database the hub keeps: the control database (workloads and
// their placements, fleet-wide events) and one database per shard (the rest: node-scoped state).
// Tables: placements (workload -> node, the scheduler's decisions), nodes (registration, readiness,
// desired/acked revision, compacted floor, highest status seq), workloads (canonical manifest JSON,
// generation, pending count and reason), desired (per node: each workload's WorkloadSpec with the
// revision that last changed it), tombstones (per node: removed workloads with the revision that
// removed them), instances (latest InstanceStatus per node and instance), events (bounded; the
// oldest are dropped), devices (device twins, in their node's shard: store_devices.cpp).
//
// The store holds no policy: callers group calls into one transaction per state change with
// transaction(), so a kill -9 at any point leaves either the old or the new state. A commit check
// (set_commit_check) runs before every outermost COMMIT: the hook for fencing shard writes by
// their lease epoch when several hubs share PostgreSQL (docs/multi-hub.md).
//
// Thread-safety: none; the hub serialises all access behind one mutex.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "cloud-hub/store_db.hpp"
#include "cloud-hub/taints.hpp"
#include "common/expected.hpp"
#include "sync/flotilla.pb.h"

namespace flotilla::hub {

struct StoreOptions {
  // Tombstones older than this many revisions of their node are compacted; an agent that acked
  // a revision below the compacted floor gets a snapshot instead of a delta.
  uint64_t tombstone_retention = 1000;
  int64_t max_events = 10000;  // the oldest events beyond this are dropped
};

struct NodeRecord {
  std::string name;
  std::map<std::string, std::string> labels;
  int64_t cpu_millis = 0;
  int64_t memory_bytes = 0;
  std::string arch;
  std::vector<std::string> runtimes;
  std::string boot_id;
  std::string agent_version;
  uint32_t protocol_version = 0;
  bool ready = false;
  int64_t registered_ms = 0;  // hub wall clock
  int64_t last_seen_ms = 0;   // hub wall clock, for display
  uint64_t revision = 0;      // current desired revision
  uint64_t acked_revision = 0;
  uint64_t compacted_floor = 0;
  uint64_t status_seq = 0;  // highest status seq received
  std::vector<Taint> taints;
};

struct WorkloadRecord {
  std::string name;
  std::string manifest;  // canonical JSON
  std::string spec_hash;
  int64_t generation = 0;
  int64_t created_ms = 0;
  int64_t updated_ms = 0;
  int64_t pending = 0;
  std::string pending_reason;
};

struct DesiredRow {
  std::string workload;
  std::string spec;  // serialized WorkloadSpec
  uint64_t revision = 0;
};

struct InstanceRecord {
  std::string node;
  flotilla::v1::InstanceStatus status;
  int64_t updated_ms = 0;  // hub wall clock
};

struct EventRecord {
  int64_t id = 0;
  int64_t hub_ms = 0;
  std::string node;
  std::string object;
  std::string reason;
  std::string message;
};

struct EventFilter {
  std::string node;      // exact, or empty for all
  std::string workload;  // object is "<name>", "workload/<name>" or "<name>/<instance>"
  int64_t limit = 100;   // newest `limit` events, returned oldest first
};

// A device twin as stored: canonical JSON documents and versions (common/twin.hpp).
struct DeviceRecord {
  std::string name;  // unique fleet-wide
  std::string node;
  std::map<std::string, std::string> labels;
  std::string desired = "{}";
  uint64_t desired_version = 0;
  std::string reported = "{}";
  uint64_t reported_version = 0;
  uint64_t observed_desired = 0;
  int64_t updated_ms = 0;  // hub wall clock of the last change
};

// Totals for the hub's gauges, counted by SQL.
struct StoreCounts {
  int64_t nodes = 0;
  int64_t ready_nodes = 0;
  int64_t workloads = 0;
  int64_t pending_instances = 0;
  std::map<int, int64_t> instances_by_phase;  // by flotilla::v1::Phase
};

// Labels as the stores keep them: JSON text; a corrupt text reads as no labels.
std::string labels_to_text(const std::map<std::string, std::string>& labels);
std::map<std::string, std::string> labels_from_text(const std::string& text);

class Store {
 public:
  // Opens (creating and migrating) the SQLite database at `path`; ":memory:" for tests.
  static Expected<std::unique_ptr<Store>> open(const std::string& path, StoreOptions options = {});
  // The same over any connection (db::open_postgres for PostgreSQL), migrated with its backend's
  // schema steps.
  static Expected<std::unique_ptr<Store>> open(std::unique_ptr<db::Conn> conn,
                                               StoreOptions options = {});

  // Runs `fn` in one transaction: committed if it returns Ok, rolled back otherwise. Inside
  // another transaction it is a savepoint: rolled back alone, committed with the outer one.
  Status transaction(const std::function<Status()>& fn);
  // Called inside every outermost transaction() just before its COMMIT; an error rolls the
  // transaction back and is returned. Empty: no check.
  void set_commit_check(std::function<Status()> check) { commit_check_ = std::move(check); }
  // Several instances (PostgreSQL, docs/multi-hub.md): inside the current transaction, whether
  // `owner` still holds the lease of `shard` under `epoch`, unexpired by the database's clock.
  // The lease row stays share-locked until the transaction ends, so no other instance can take
  // the shard over before this transaction committed or rolled back. An error: it does not.
  Status check_lease(uint32_t shard, const std::string& owner, int64_t epoch);
  // The fleet lock across hub instances sharing a database (db::Conn::lock_fleet).
  Status lock_fleet() { return db_->lock_fleet(); }
  void unlock_fleet() { db_->unlock_fleet(); }

  // Nodes.
  Expected<std::optional<NodeRecord>> get_node(const std::string& name);
  Expected<std::vector<NodeRecord>> list_nodes();
  // Up to `limit` nodes (0: all) named after `after`, in name order, whose labels match
  // `selector` (and whose readiness is `ready`, when set); reads only as far as it needs to.
  Expected<std::vector<NodeRecord>> list_nodes_page(
      const std::string& after, const std::map<std::string, std::string>& selector, int64_t limit,
      std::optional<bool> ready = std::nullopt);
  Status put_node(const NodeRecord& node);
  // Writes only what the protocol's hot paths change (ready, last_seen_ms, revision,
  // acked_revision, compacted_floor, status_seq) of a node that exists: an update in place,
  // where put_node replaces the row and re-encodes its labels, runtimes and taints.
  Status put_node_progress(const NodeRecord& node);
  // Deletes the node with its desired state, tombstones and instances (not its events).
  Status delete_node(const std::string& name);

  // Workloads.
  Expected<std::optional<WorkloadRecord>> get_workload(const std::string& name);
  Expected<std::vector<WorkloadRecord>> list_workloads();
  Status put_workload(const WorkloadRecord& w);
  Status set_pending(const std::string& workload, int64_t pending, const std::string& reason);
  // Deletes the workload and its placements.
  Status delete_workload(const std::string& name);
  // The scheduler's placements (control database): workload -> nodes.
  Expected<std::map<std::string, std::set<std::string>>> fleet_placements();
  // The nodes one workload is placed on.
  Expected<std::set<std::string>> placements_of(const std::string& workload);
  // Replaces the workload's placements; an empty set removes them.
  Status set_placements(const std::string& workload, const std::set<std::string>& nodes);

  // Desired state. update_node_desired() applies one change set to a node: it bumps the node's
  // revision once, writes the upserts and tombstones at the new revision, and compacts old
  // tombstones. Returns the new revision (unchanged when both lists are empty).
  Expected<uint64_t> update_node_desired(const std::string& node,
                                         const std::map<std::string, std::string>& upserts,
                                         const std::vector<std::string>& deletes);
  Expected<std::vector<DesiredRow>> desired_for_node(const std::string& node);
  // The serialized WorkloadSpec desired for `workload` on `node`, if any.
  Expected<std::optional<std::string>> desired_spec(const std::string& node,
                                                    const std::string& workload);
  // workload -> nodes it is placed on.
  Expected<std::map<std::string, std::set<std::string>>> placements();
  // What to send a node whose acked revision differs from its current one: a delta from
  // `acked` when the history allows, else a snapshot. Reads the node's record.
  Expected<flotilla::v1::DesiredState> desired_message(const NodeRecord& node);
  // Sets the node's revision above a revision the agent claims but the hub never issued (the
  // hub lost its store), so the next message is a snapshot the agent accepts.
  Status skip_revision_past(const std::string& node, uint64_t claimed);

  // Instances. A record with status.removed() stays as a tombstone: get_instance() returns it
  // (its seq still guards against older records of the instance), list_instances() and
  // counts() leave it out. Only the newest kRemovedInstancesKept tombstones per node are kept.
  static constexpr int64_t kRemovedInstancesKept = 1000;
  static constexpr uint64_t kAllSeqs = UINT64_MAX;
  Expected<std::optional<InstanceRecord>> get_instance(const std::string& node,
                                                       const std::string& instance_id);
  // Writes the record unless the stored one has the same or a higher seq (replays and records
  // that arrive out of order change nothing). One statement: no read before the write.
  Status put_instance(const InstanceRecord& rec);
  // Marks removed the node's instances whose ids are not in `keep` and whose seq is at most
  // `up_to_seq` (newer ones were reported after the set `keep` was taken).
  Status retain_instances(const std::string& node, const std::set<std::string>& keep,
                          uint64_t up_to_seq = kAllSeqs);
  // Makes every stored record of the node replaceable by any new one (its seq counter restarted).
  Status reset_instance_seqs(const std::string& node);
  Expected<std::vector<InstanceRecord>> list_instances();
  // The instances whose `column` ("node" or "workload") equals `value` (removed ones left out).
  Expected<std::vector<InstanceRecord>> instances_where(const std::string& column,
                                                        const std::string& value);
  // (workload, node) of every instance reported Running, read without parsing records.
  Expected<std::vector<std::pair<std::string, std::string>>> running_instances();
  Expected<StoreCounts> counts();

  // Devices (store_devices.cpp).
  Expected<std::optional<DeviceRecord>> get_device(const std::string& name);
  // The devices of `node` (all when empty), in name order.
  Expected<std::vector<DeviceRecord>> list_devices(const std::string& node = "");
  Status put_device(const DeviceRecord& d);
  Status delete_device(const std::string& name);

  // Events.
  Status add_event(const EventRecord& e);
  Expected<std::vector<EventRecord>> list_events(const EventFilter& filter);

  db::Conn& db() { return *db_; }

 private:
  // Sets the phase column of rows written before it existed (schema step 2).
  Status fill_instance_phases();
  // Deletes all but the newest kRemovedInstancesKept removed instances of the node.
  Status prune_removed(const std::string& node);
  Store(std::unique_ptr<db::Conn> db, StoreOptions options)
      : db_(std::move(db)), options_(options) {}
  Status compact(const std::string& node, uint64_t revision);

  std::unique_ptr<db::Conn> db_;
  StoreOptions options_;
  std::function<Status()> commit_check_;
};

}  // namespace flotilla::hub
