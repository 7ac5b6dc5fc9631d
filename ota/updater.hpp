// ota::Updater: the agent-side OTA state machine (docs/ota-updater.md).
//
//   idle -> downloading -> verifying -> installing -> switching -> health_check -> committed
//                  \______________\____________\_____ failed | aborted    \____ rolled_back
//
// The state is saved (ota/updater_store.hpp) before each step runs, so a kill -9 anywhere resumes
// from the saved step: a download continues from its `.partial` file by Range, verifying and
// installing start again from the verified download (a half-written slot is rewritten), a switch
// looks at where the `active` link points and finishes, and a health check counts an attempt
// and goes on. Attempts are counted at start ONLY while an update is pending (switched, not yet
// committed); more than max_attempts starts roll back. More than max_transitions saved steps for
// one update end it ("state loop"), so a bug cannot loop forever.
//
// The manifest's signature is checked against the pinned key before anything is downloaded. A
// delta is used when the manifest offers one whose base is the active slot's content (its
// recorded SHA-256); any delta problem falls back to the full payload. Retryable download errors
// (network, 5xx) are retried with jittered exponential backoff on the injected clock; a 4xx or a
// digest mismatch fails the update at once.
//
// Long work (download, delta, hashing, copying, the health and switch commands) runs on the
// updater's own worker thread; tick(), on the owner's loop thread, takes its results and runs
// the next step. `wake` is called from the worker when a result is ready.
//
// Agent target: after the switch (and after a rollback) the updater sets reexec_path(); the
// agent then stops and execv()s that binary with its own argv. The agent is meant to run as
// <data>/ota/agent/active/flotilla-agent; the first agent update seeds slot-a from the running
// binary (and the helpers beside it) when the agent was started from elsewhere. The new slot is
// made complete before the switch: the helpers the update does not carry are copied from the
// running slot, and a slot lacking one fails the update (ota/slots.hpp).
//
// Thread-safety: every method on one thread (the owner's loop), except what `wake` does.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "common/clock.hpp"
#include "common/expected.hpp"
#include "common/worker_pool.hpp"
#include "ota/manifest.hpp"
#include "ota/slots.hpp"
#include "ota/update_state.hpp"
#include "ota/updater_jobs.hpp"
#include "ota/updater_store.hpp"

namespace flotilla::ota {

struct UpdaterOptions {
  std::string state_dir;        // holds state.db and downloads/ (<data>/ota)
  std::string public_key_pem;   // the pinned Ed25519 key; empty: every update fails
  std::string image_slots_dir;  // empty: the "image" target is not configured
  std::string agent_slots_dir;  // empty: the "agent" target is not configured (<data>/ota/agent)
  std::string self_exe = "/proc/self/exe";  // seeds the agent's slot-a (its folder: helpers)
  std::string switch_command;    // run (sh -c) after the image pointer moved; empty: none
  std::string health_command;    // run (sh -c) after reconnecting; exit 0 = healthy; empty: none
  Millis health_timeout{60000};  // to reconnect to the hub after the switch; also the command's
  uint32_t max_attempts = 3;
  uint32_t max_transitions = 50;
  Millis retry_base{1000};  // download backoff: doubled per retry, jittered, capped
  Millis retry_max{60000};
  uint32_t max_retries = 30;  // retryable download errors in a row before the update fails
  std::chrono::seconds low_speed_time{30};  // a stalled transfer is cut and retried
  DeltaApplier apply_delta;                 // empty: deltas are not used
  uint64_t jitter_seed = 0;                 // 0: random
};

class Updater {
 public:
  using Wake = std::function<void()>;

  Updater(UpdaterOptions options, const Clock& clock, Wake wake = {});
  ~Updater();  // cancels a running download (its partial file stays) and joins the worker
  Updater(const Updater&) = delete;
  Updater& operator=(const Updater&) = delete;

  // Opens <state_dir>/state.db and recovers the saved update (see above).
  Status start();
  // A newer generation replaces an update that has not switched yet (one that has finishes
  // first); older or equal generations change nothing. An abort for the update's rollout stops
  // it before the switch and has no effect after.
  void assign(const Assignment& assignment);
  // The hub connection; being connected after the switch is the first health condition.
  void on_hub_connection(bool connected);
  // Takes worker results and runs what is due. Never blocks.
  void tick();

  const UpdateState& state() const { return state_; }
  // The version in the active slot of the current update's target ("" when unknown).
  std::string running_version() const;
  // The states to report since the last call, oldest first: one per saved step, plus download
  // progress (at most one a second), plus the current state after start(). Bounded: the oldest
  // are dropped past 32 (the newest report wins anyway).
  std::vector<UpdateState> take_reports();
  Expected<uint64_t> next_report_seq() { return store_->next_seq(); }
  // Non-empty when the agent must execv this binary (agent target switch or rollback).
  const std::string& reexec_path() const { return reexec_path_; }
  uint64_t ignored_assignments() const { return ignored_; }

 private:
  using Job = detail::Job;
  using JobResult = detail::JobResult;

  std::optional<SlotSet> slot_set(const std::string& target) const;
  std::string download_dir() const;
  std::string payload_path() const;
  std::string delta_path() const;
  void remove_downloads() const;

  // Saves `next` as the new state (one transaction, counting a transition) and reports it.
  // False when it could not be saved: the step is retried on a later tick.
  bool transition(UpdateState next, const std::optional<SlotRecord>& slot = std::nullopt);
  void fail(const std::string& message);
  void rollback(const std::string& reason);
  void begin(const Assignment& a);
  void finish_abort(const std::string& message);

  void run_job(Job job, std::function<JobResult()> work);
  void on_result(JobResult result);
  void on_download(JobResult result);
  void step();
  void step_health();
  void recover();

  UpdaterOptions options_;
  const Clock& clock_;
  Wake wake_;
  std::unique_ptr<UpdaterStore> store_;
  UpdateState state_;
  std::optional<Manifest> manifest_;

  Job running_ = Job::kNone;
  std::mutex result_mu_;
  std::optional<JobResult> result_;
  std::atomic<bool> cancel_{false};
  std::atomic<uint64_t> progress_{0};
  std::atomic<bool> progress_delta_{false};

  bool hub_connected_ = false;
  std::vector<UpdateState> reports_;
  void queue_report();
  bool aborting_ = false;
  uint64_t abort_generation_ = 0;
  std::optional<Assignment> deferred_;  // a newer assignment waiting for the pending one
  uint32_t retries_ = 0;
  TimePoint retry_at_{};
  bool health_started_ = false;
  bool health_command_done_ = false;
  TimePoint health_deadline_{};
  uint64_t reported_progress_ = 0;
  TimePoint progress_reported_at_{};
  std::string reexec_path_;
  uint64_t ignored_ = 0;
  std::mt19937_64 rng_;
  // Last: joined first on destruction, before what its jobs use goes away.
  std::unique_ptr<WorkerPool> worker_;
};

}  // namespace flotilla::ota
