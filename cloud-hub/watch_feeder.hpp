// WatchFeeder: fills a WatchLog with the controller's changes, on its own thread.
//
// The listener it gives the controller only notes which objects changed: no view is read on the
// committing thread (a shard's ingest thread, an HTTP worker), where reading one would slow
// ingest down and, with several shards, serialise them. The feeder thread then reads each noted
// object's view once per round and records the round's changes together. A round starts at once
// after an idle spell; otherwise no sooner than `min_interval` after the last one began and late
// enough that reading views uses at most `max_duty` of a core (the round's thread CPU time: a
// round waiting for shard locks or for a core does not push the next one back; a workload's view
// costs one entry per instance). Changes that arrive meanwhile coalesce: a burst of status reports
// for one workload costs one view of it, and watchers see its latest state.
//
// A view that cannot be read is skipped (watchers miss that change), logged and counted in
// flotilla_hub_watch_view_errors_total.
//
// Thread-safety: listener()'s function may be called from any thread, also after the feeder is
// gone (it then does nothing); the other methods from the owner's thread.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <set>
#include <thread>

#include "cloud-hub/controller.hpp"
#include "cloud-hub/metrics.hpp"
#include "cloud-hub/update_rollouts.hpp"
#include "cloud-hub/watch.hpp"
#include "common/clock.hpp"

namespace flotilla::hub {

struct WatchFeederOptions {
  Millis min_interval{10};
  double max_duty = 0.25;  // 0 < max_duty <= 1
};

class WatchFeeder {
 public:
  WatchFeeder(WatchLog& log, Controller& controller, Metrics& metrics,
              WatchFeederOptions options = {});
  ~WatchFeeder();
  WatchFeeder(const WatchFeeder&) = delete;
  WatchFeeder& operator=(const WatchFeeder&) = delete;

  // For Controller::set_change_listener (and UpdateRollouts::set_change_listener).
  ChangeListener listener();
  // Where rollouts' views are read (rollout changes are ignored without one). Set before the
  // first change.
  void set_rollouts(UpdateRollouts* rollouts) { rollouts_ = rollouts; }
  // Returns once every change noted before the call is in the log.
  void settle();
  // Records what is still noted, then ends the thread. Also done by the destructor.
  void stop();

 private:
  struct Queue {
    std::mutex mu;
    std::condition_variable cv;
    std::set<Change> noted;
    uint64_t calls = 0;     // listener calls so far
    uint64_t recorded = 0;  // the calls whose changes are in the log
    bool stopping = false;
  };

  void run();
  // Reads the views of `changes` and records them.
  void record(const std::set<Change>& changes);

  WatchLog& log_;
  Controller& controller_;
  UpdateRollouts* rollouts_ = nullptr;
  Metrics& metrics_;
  const WatchFeederOptions options_;
  std::shared_ptr<Queue> queue_;
  std::thread thread_;
};

// Tells `log` of every node, workload, device and (with `rollouts`) rollout that exists (see
// WatchLog::seed).
Status seed_watch_log(WatchLog& log, Controller& controller, UpdateRollouts* rollouts = nullptr);

}  // namespace flotilla::hub
