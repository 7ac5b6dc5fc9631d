// WatchLog: the hub's recent changes of nodes, workloads, devices and rollouts, kept for watchers
// (GET /api/v1/nodes?watch=true, docs/hub.md).
//
// A bounded ring of change records (by default the last 10,000, or fewer once their views pass
// 64 MiB). Each record has a resource version, one more than the record before it; the kind and
// name of the object; ADDED, MODIFIED or DELETED; and the object's JSON view as of the change,
// serialised once when it is recorded and shared by every watcher that sends it, so a change
// costs the same to record whether 1 or 100 watchers follow. A DELETED record carries the last
// view the log saw of the object.
//
// A watcher asks for the changes after the version it has seen (a list's resourceVersion, or the
// id of the last event it got). A version older than the ring holds, or newer than any the log
// gave out (it came from an earlier hub process: the first version of a log is chosen by its
// owner, the hub picks the wall clock in microseconds), is gone: the watcher must list again
// (HTTP 410 in Kubernetes terms).
//
// ADDED or MODIFIED: the log remembers every object it has seen (name, labels, last view). The
// hub seed()s it with what exists when it starts, so the first change of an existing object after
// a restart is MODIFIED; an object that the log never saw is ADDED on its first change. Changes
// are coalesced by the controller: a watcher sees every object's latest state, not necessarily
// each state in between, and a quick delete and re-create may show as one MODIFIED.
//
// Selectors: a watch with a label selector sees an object as ADDED when it comes to match and as
// DELETED when it stops matching, as a list with that selector would gain or lose it. A watch of
// nodes may also ask for one state (Ready or NotReady), with the same ADDED and DELETED when a
// node comes to it or leaves it. The delete
// of an object the log never saw (its labels unknown) is sent to every watcher of its kind. A
// watch of devices may also name a node: it sees the devices attached to that node (a device
// never moves to another node), and the delete of a device the log never saw.
//
// WatchFeeder (watch_feeder.hpp) fills it from the controller's changes.
//
// Thread-safety: every method may be called from any thread. record() wakes the waiting watchers
// through one condition variable; close() wakes them for good.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cloud-hub/controller.hpp"
#include "common/clock.hpp"

namespace flotilla::hub {

enum class WatchType { kAdded, kModified, kDeleted };
// "ADDED", "MODIFIED", "DELETED".
const char* watch_type_name(WatchType type);
// "nodes", "workloads", "devices", "rollouts": the kind's REST path (and its name in logs and
// metrics).
const char* kind_path(Change::Kind kind);

using Labels = std::map<std::string, std::string>;

// One recorded change. Shared, immutable once recorded.
struct WatchEvent {
  uint64_t version = 0;
  Change::Kind kind = Change::Kind::kNode;
  std::string name;
  WatchType type = WatchType::kAdded;
  // The object's labels after the change and before it (null: it did not exist before, or its
  // labels are unknown). DELETED: both are the last labels seen.
  std::shared_ptr<const Labels> labels;
  std::shared_ptr<const Labels> labels_before;
  std::shared_ptr<const std::string> object;  // the view as one line of JSON
  std::string node;                           // a device's node ("" for other kinds, or unknown)
  // A node's state ("Ready", "NotReady") after the change and before it ("" when unknown, and
  // for other kinds). DELETED: both are the last state seen.
  std::string state;
  std::string state_before;
};

// What a watcher follows: one kind, optionally one object and a label selector.
struct WatchFilter {
  Change::Kind kind = Change::Kind::kNode;
  std::string name;   // empty: every object of the kind
  Labels selector;    // every k=v must be among the object's labels
  std::string node;   // devices: only those attached to this node (empty: any)
  std::string state;  // nodes: only those in this state (empty: any)
  // The type this watcher sees the event as (see Selectors above); nullopt: not for it.
  std::optional<WatchType> type_for(const WatchEvent& event) const;
};

struct WatchLogOptions {
  size_t max_records = 10000;
  size_t max_bytes = size_t{64} << 20;  // serialised views in the ring
  uint64_t first_version = 0;           // version() before anything is recorded
  size_t max_batch = 500;               // events handed to a watcher at once
};

struct Delivery {
  std::shared_ptr<const WatchEvent> event;
  WatchType type;  // as this watcher sees it
};

struct WatchBatch {
  enum class Result {
    kEvents,   // `events` holds at least one
    kTimeout,  // nothing for this watcher yet
    kGone,     // the version asked for is not in the log: list again
    kClosed,   // the log was closed (the hub is stopping)
  };
  Result result = Result::kTimeout;
  std::vector<Delivery> events;
  // Every change up to this version has been looked at: the next wait() starts after it. Also
  // past changes the filter skipped, so a narrow watch does not fall behind the ring.
  uint64_t cursor = 0;
};

class WatchLog {
 public:
  explicit WatchLog(WatchLogOptions options = {});

  // An object whose view changed: `view` its view now, nullopt when it no longer exists.
  struct Update {
    Change::Kind kind;
    std::string name;
    std::optional<nlohmann::json> view;
  };
  // Records the updates in order, one version each, and wakes the watchers. Returns version().
  uint64_t record(const std::vector<Update>& updates);
  // Remembers an object that exists, without recording a change (at start). Ignored when the
  // log already knows the object.
  void seed(Change::Kind kind, const std::string& name, const nlohmann::json& view);

  // The version of the last record (first_version when none). A list read after this call and
  // a watch from this version together miss nothing.
  uint64_t version() const;
  // The oldest version a watcher may still start after.
  uint64_t oldest() const;
  // Records in the ring now.
  size_t size() const;

  // The changes after version `after` that `filter` wants, waiting up to `timeout` for the
  // first. Returns at once with kGone when `after` is not in the log, kClosed after close().
  WatchBatch wait(const WatchFilter& filter, uint64_t after, Millis timeout);

  // Forgets the recorded changes and moves the version on by one: every watcher, also one that
  // had seen the last version, is told kGone and must list again. For when changes may have
  // been missed (the other hub instances' feed had a gap, change_feed.hpp).
  void lose_history();

  // Wakes every watcher and makes every wait() answer kClosed from now on.
  void close();

 private:
  struct Known {
    std::shared_ptr<const Labels> labels;
    std::shared_ptr<const std::string> object;
    std::string node;
    std::string state;
  };
  using Key = std::pair<Change::Kind, std::string>;

  uint64_t oldest_locked() const;
  // Fills `batch` with what `filter` wants after batch.cursor, advancing the cursor.
  void collect_locked(const WatchFilter& filter, WatchBatch& batch) const;
  void trim_locked();

  const WatchLogOptions options_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::shared_ptr<const WatchEvent>> ring_;
  size_t ring_bytes_ = 0;
  uint64_t version_;
  std::map<Key, Known> known_;
  bool closed_ = false;
};

}  // namespace flotilla::hub
