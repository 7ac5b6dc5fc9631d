// UpdateRollouts: the hub's OTA rollout controller (docs/hub.md "Rollouts").
//
// A Rollout (manifest.hpp RolloutManifest) sends one artifact (artifact_store.hpp) to the nodes
// its selector matched when it was created, ordered by name and cut into its waves then: a wave
// never changes under the operator. It assigns the nodes of the open wave an UpdateAssignment
// (down/ota, QoS 1) with a per-node generation bumped on each change, and sends it again after
// every Hello of a node whose update is not finished (level-triggered). UpdateReports (up/ota)
// move each node on: a report counts only for the node's current assignment and only when its
// seq is above the last one taken. A node succeeds ONLY at UPDATE_COMMITTED (healthy after the
// switch); UPDATE_FAILED, UPDATE_ROLLED_BACK, or no terminal report within
// progressTimeoutSeconds of its assignment is a failure. When failures reach the threshold
// (failed >= minCount and failed * 100 >= percent * assigned) the rollout pauses and assigns no
// one new. When every node of the open wave is finished it soaks soakSeconds, then opens the next
// wave; after the last wave it is Completed. Resuming after a pause accepts the failures so far:
// the threshold then counts only failures (and assignments) after the resume. Abort assigns no
// one new and sends the unfinished nodes their assignment again with abort = true; deleting an
// unfinished rollout aborts it first.
//
// State lives in memory and in its own database (<data>/rollouts.db, or the schema "ota" of the
// PostgreSQL database that several hub instances share): each change is one transaction, written
// before any message about it goes out; open() loads it back, so a restarted hub carries on.
// Times are the clock's wall time (persisted across restarts).
//
// Several hub instances: only one drives the rollouts at a time, the holder of shard 0's lease
// (set_driving; docs/multi-hub.md). The others keep nothing in memory, ignore hellos, reports and
// ticks, and forward the rollout API to the driver (Api). Each save of the driver runs its fence
// inside the transaction, so a driver that lost the lease cannot overwrite its successor's state.
//
// Thread-safety: every public method may be called from any thread; one mutex serialises them,
// and no Controller lock is ever taken while it is held. on_hello() and on_report() run on the
// sync server's ingest threads inside Controller::batch() (a shard lock held), so they publish
// directly but only queue their events; tick() and the REST methods write the queued events to
// the hub's event log (Controller::record_event) after letting go of the mutex.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <spdlog/logger.h>
#include <nlohmann/json.hpp>

#include "cloud-hub/artifact_store.hpp"
#include "cloud-hub/controller.hpp"
#include "cloud-hub/manifest.hpp"
#include "cloud-hub/store_db.hpp"
#include "common/clock.hpp"
#include "sync/flotilla.pb.h"
#include "sync/transport.hpp"

namespace flotilla::hub {

struct UpdateRolloutsOptions {
  std::string db_path = ":memory:";  // <data>/rollouts.db in the hub
  // The hub's base URL as nodes reach it: the artifact URLs in assignments start with it.
  std::string public_url = "http://127.0.0.1:8080";
  uint32_t shards = sync::kDefaultShards;
};

// What a REST call did. kOk and kCreated carry the rollout's view (and kOk an `action`).
struct RolloutOutcome {
  enum class Code { kOk, kCreated, kNotFound, kInvalid, kConflict, kFailed };
  Code code = Code::kOk;
  std::string message;  // why, for the errors
  std::string action;   // created | unchanged | paused | resumed | aborted | deleted
  nlohmann::json view;
};

class UpdateRollouts {
 public:
  UpdateRollouts(const Clock& clock, sync::Transport& transport, ArtifactStore& artifacts,
                 Controller& controller, UpdateRolloutsOptions options);

  // Opens (creating) the SQLite database at options.db_path, or migrates `db` (either backend),
  // and loads every rollout when driving.
  Status open();
  Status open(std::unique_ptr<db::Conn> db);
  // Runs inside each save's transaction; an error refuses the save (and reloads the state).
  using Fence = std::function<Status(db::Conn&)>;
  // Drives the rollouts (the default) or not. Taking over loads them from the database (again
  // at each tick until that succeeds) and sends every unfinished assignment again, so the nodes
  // answer with where they stand; letting go forgets them. From any thread; call before open()
  // to start not driving.
  void set_driving(bool on, Fence fence = {});
  bool driving();
  // For a hub bound to a port chosen at start; call before any message arrives.
  void set_public_url(std::string url) { options_.public_url = std::move(url); }

  // Creates a rollout from a validated manifest: kCreated; kOk "unchanged" when the same spec
  // exists; kConflict when another spec has the name or a selected node is in another unfinished
  // rollout; kInvalid for an unknown or not-ready artifact or a selector matching no node.
  RolloutOutcome apply(const RolloutManifest& manifest);
  RolloutOutcome pause(const std::string& name);
  RolloutOutcome resume(const std::string& name);
  RolloutOutcome abort(const std::string& name);
  RolloutOutcome remove(const std::string& name);
  // Deletes an artifact unless an unfinished rollout uses it (kConflict).
  ArtifactOutcome delete_artifact(const std::string& name, const std::string& version);

  // {"items": [rollout...]} by name, and one rollout (nullopt: none). `summary` leaves out
  // status.nodes (one entry per node): what watch events carry, small however large the fleet.
  nlohmann::json list_view(bool summary = false);
  std::optional<nlohmann::json> view(const std::string& name, bool summary = false);
  // Told the name of each rollout whose view changed (created, a node's state, phase, wave,
  // deleted), for watchers; called with this object's lock held, so it must only take note.
  // Set before the first change.
  void set_change_listener(ChangeListener listener) { listener_ = std::move(listener); }

  void on_hello(const std::string& node);
  void on_report(const flotilla::v1::UpdateReport& report);
  // Told whether the rollouts need the nodes' hellos and update reports: true before any
  // assignment is sent, false at a tick() when no rollout awaits them (all Completed, or
  // Aborted with every node answered). Called under the rollouts' lock, so a tick's false can
  // never land after an assignment's true. Several hub instances use it to hear the nodes of
  // shards they do not own (SyncServer::set_fleet_updates). Set before open().
  void set_reach_listener(std::function<void(bool)> listener) { reach_ = std::move(listener); }
  // Timeouts, soaks and waves. Call about once a second.
  void tick();

 private:
  struct NodeState {
    std::string node;
    int wave = 0;
    uint64_t first_generation = 0;  // of its first assignment in this rollout; 0: not assigned
    uint64_t generation = 0;        // of its latest assignment
    int64_t assigned_ms = 0;
    std::string result;  // "" (not finished) | succeeded | failed | aborted
    std::string phase = "Pending";
    std::string message;
    uint32_t attempts = 0;
    uint64_t seq = 0;
    int64_t updated_ms = 0;
  };
  struct Rollout {
    RolloutManifest spec;
    std::string spec_json;
    std::string manifest_text;
    std::string signature;
    bool has_delta = false;
    std::string phase = "Progressing";
    std::string paused_reason;
    int current_wave = 0;
    std::optional<int64_t> soak_until_ms;
    int64_t accepted_failed = 0;
    int64_t created_ms = 0;
    int64_t updated_ms = 0;
    std::vector<NodeState> nodes;  // by name
    std::map<std::string, size_t> index;
    std::set<size_t> dirty;  // nodes changed since the last save
    std::string noted;       // what the listener was last told of (see save_locked)
  };
  struct Event {
    std::string node, object, reason, message;
  };
  using Outbox = std::vector<sync::Message>;

  std::vector<std::string> names_locked() const;
  bool finished(const Rollout& r) const { return r.phase == "Completed" || r.phase == "Aborted"; }
  bool awaiting_reports_locked() const;
  // Fails the assigned, unfinished nodes past the progress timeout.
  void expire_locked(Rollout& r);
  // Timeouts, threshold, assignments, soak and waves of a Progressing rollout.
  void advance_locked(Rollout& r, Outbox& out);
  // Queues the node's assignment: a new generation, or with `resend` the current one again.
  void assign_locked(Rollout& r, NodeState& n, bool abort, bool resend, Outbox& out);
  void event_locked(const std::string& node, const Rollout& r, const std::string& reason,
                    const std::string& message);
  // Writes the rollout and its dirty nodes in one transaction; on failure reloads the stored
  // state (and drops `out`: nothing is sent about a change that was not kept).
  Status save_locked(Rollout& r, Outbox& out);
  Status load_locked();
  // Loads the rollouts to drive and queues every unfinished assignment again; on failure
  // nothing is loaded and tick() tries again.
  void take_over_locked(Outbox& out);
  nlohmann::json view_locked(const Rollout& r, bool summary = false) const;
  void note_changed_locked(const std::string& name);
  RolloutOutcome change(const std::string& name, const std::string& verb);
  // Publishes and writes the queued events; call with mu_ not held.
  void flush(Outbox& out, bool with_events);

  const Clock& clock_;
  sync::Transport& transport_;
  ArtifactStore& artifacts_;
  Controller& controller_;
  UpdateRolloutsOptions options_;
  std::shared_ptr<spdlog::logger> log_;

  std::mutex mu_;
  std::unique_ptr<db::Conn> db_;
  bool driving_ = true;  // this instance should drive the rollouts
  bool loaded_ = false;  // ... and they are in memory (only while driving: take_over_locked)
  Fence fence_;
  std::map<std::string, Rollout> rollouts_;
  std::map<std::string, uint64_t> generations_;  // node -> its latest generation
  std::vector<Event> events_;                    // not yet in the event log
  std::function<void(bool)> reach_;
  ChangeListener listener_;
};

}  // namespace flotilla::hub
