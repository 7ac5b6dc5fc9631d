// The updater's loop-thread side: assignments, worker results, the next step, recovery.
#include <algorithm>

#include "common/fs.hpp"
#include "common/log.hpp"
#include "ota/updater.hpp"

namespace flotilla::ota {
namespace {

auto logger() { return log::get("ota"); }

bool pending_phase(Phase phase) {
  return phase == Phase::kSwitching || phase == Phase::kHealthCheck;
}

}  // namespace

void Updater::assign(const Assignment& a) {
  if (!store_) return;
  const bool same_rollout = a.rollout == state_.rollout;
  if (a.abort) {
    if (a.generation < state_.generation || (a.generation == state_.generation && !same_rollout)) {
      ++ignored_;
      return;
    }
    if (deferred_ && deferred_->rollout == a.rollout) deferred_.reset();
    if (before_switch(state_.phase)) {
      // The hub no longer wants what runs: stop it, whichever rollout it belongs to.
      aborting_ = true;
      abort_generation_ = std::max(abort_generation_, a.generation);
      cancel_ = true;
      return;
    }
    if (pending_phase(state_.phase)) {
      logger()->info("ota abort of rollout={} has no effect after the switch", a.rollout);
      return;
    }
    if (a.generation == state_.generation ||
        (same_rollout &&
         (state_.phase == Phase::kCommitted || state_.phase == Phase::kRolledBack))) {
      ++ignored_;
      if (a.generation == state_.generation && same_rollout) queue_report();  // asked again
      return;
    }
    UpdateState next;
    next.rollout = a.rollout;
    next.generation = a.generation;
    next.phase = Phase::kAborted;
    next.message = "aborted before it started";
    transition(next);
    return;
  }
  if (a.generation <= state_.generation || (deferred_ && a.generation <= deferred_->generation)) {
    ++ignored_;
    // The hub sending the current assignment again wants to hear where it stands (a hub instance
    // that took over the rollouts missed the reports sent before): the current state again.
    if (a.generation == state_.generation && same_rollout) queue_report();
    return;
  }
  if (pending_phase(state_.phase) || running_ != Job::kNone) {
    // A pending update finishes first; a running step is cancelled and the newer one begins
    // when it returns (tick()).
    deferred_ = a;
    if (before_switch(state_.phase)) cancel_ = true;
    return;
  }
  begin(a);
}

void Updater::run_job(Job job, std::function<JobResult()> work) {
  running_ = job;
  bool posted = worker_->post([this, work = std::move(work)] {
    JobResult result = work();
    {
      std::lock_guard<std::mutex> lock(result_mu_);
      result_ = std::move(result);
    }
    if (wake_) wake_();
  });
  if (!posted) running_ = Job::kNone;
}

void Updater::tick() {
  if (!store_) return;
  std::optional<JobResult> result;
  {
    std::lock_guard<std::mutex> lock(result_mu_);
    result.swap(result_);
  }
  if (result) {
    running_ = Job::kNone;
    on_result(std::move(*result));
  }
  if (running_ == Job::kNone && reexec_path_.empty()) {
    if (aborting_ && before_switch(state_.phase)) {
      finish_abort("aborted by the hub");
    } else if (deferred_ && !pending_phase(state_.phase)) {
      Assignment next = std::move(*deferred_);
      deferred_.reset();
      begin(next);
    }
  }
  if (state_.phase == Phase::kDownloading) {
    const uint64_t done = progress_.load();
    const bool delta = progress_delta_.load();
    if (done != state_.bytes_done || delta != state_.delta) {
      state_.bytes_done = done;
      state_.delta = delta;
      if (manifest_)
        state_.bytes_total = delta && manifest_->delta ? manifest_->delta->size : manifest_->size;
      if (clock_.now() - progress_reported_at_ >= Millis(1000) || done == state_.bytes_total) {
        progress_reported_at_ = clock_.now();
        queue_report();
      }
    }
  }
  if (running_ == Job::kNone && reexec_path_.empty()) step();
}

void Updater::step() {
  const Phase phase = state_.phase;
  if (phase == Phase::kIdle || is_final(phase)) return;
  auto slots = slot_set(state_.target);
  if (!manifest_ || !slots) {
    fail("Failed to continue the update: " +
         std::string(!manifest_ ? "its manifest cannot be read" : "its target is not configured"));
    return;
  }
  cancel_ = false;
  switch (phase) {
    case Phase::kDownloading: {
      if (clock_.now() < retry_at_) return;
      detail::DownloadJob job;
      job.slots = *slots;
      job.self_exe = options_.self_exe;
      job.active_slot = state_.from_slot;
      auto record = store_->slot(state_.target, state_.from_slot);
      if (record && *record) job.active_sha = (*record)->sha256;
      job.manifest = *manifest_;
      job.payload_url = state_.payload_url;
      job.delta_url = state_.delta_url;
      job.delta_allowed = manifest_->delta && !state_.delta_url.empty() &&
                          options_.apply_delta != nullptr && !state_.delta_fallback;
      job.payload_path = payload_path();
      job.delta_path = delta_path();
      job.low_speed_time = options_.low_speed_time;
      job.cancel = &cancel_;
      job.progress = &progress_;
      job.progress_delta = &progress_delta_;
      (void)fs::make_dirs(download_dir());
      run_job(Job::kDownload, [job] { return detail::run_download(job); });
      return;
    }
    case Phase::kVerifying:
      run_job(Job::kVerify,
              [s = *slots, from = state_.from_slot, m = *manifest_, delta = state_.delta,
               p = payload_path(), d = delta_path(), apply = options_.apply_delta] {
                return detail::run_verify(s, from, m, delta, p, d, apply);
              });
      return;
    case Phase::kInstalling:
      run_job(Job::kInstall, [s = *slots, to = state_.to_slot, m = *manifest_, p = payload_path(),
                              from = state_.from_slot, exe = options_.self_exe] {
        return detail::run_install(s, to, m, p, from, exe);
      });
      return;
    case Phase::kSwitching:
      run_job(Job::kSwitch,
              [s = *slots, to = state_.to_slot,
               cmd = state_.target == "image" ? options_.switch_command : std::string(),
               t = options_.health_timeout] {
                return detail::run_switch(Job::kSwitch, s, to, cmd, t);
              });
      return;
    case Phase::kHealthCheck:
      step_health();
      return;
    default:
      return;
  }
}

void Updater::step_health() {
  if (!health_started_) {
    health_started_ = true;
    health_deadline_ = clock_.now() + options_.health_timeout;
  }
  if (!hub_connected_) {
    if (clock_.now() >= health_deadline_) {
      rollback("health check failed: not connected to the hub within " +
               std::to_string(options_.health_timeout.count()) + " ms after the switch");
    }
    return;
  }
  if (options_.health_command.empty()) {
    UpdateState next = state_;
    next.phase = Phase::kCommitted;
    next.pending = false;
    next.message.clear();
    transition(next);
    return;
  }
  run_job(Job::kHealth, [cmd = options_.health_command, t = options_.health_timeout] {
    return detail::run_health(cmd, t);
  });
}

void Updater::on_result(JobResult r) {
  if (r.job == Job::kSwitchBack) {
    if (!r.status) logger()->warn("ota rollback: {}", r.status.error().message());
    return;
  }
  if (before_switch(state_.phase) && (aborting_ || deferred_)) return;  // tick() takes over
  UpdateState next = state_;
  next.message.clear();
  switch (r.job) {
    case Job::kDownload:
      on_download(std::move(r));
      return;
    case Job::kVerify:
      if (r.status) {
        next.phase = Phase::kInstalling;
        transition(next);
      } else if (r.delta_failed) {
        next.phase = Phase::kDownloading;
        next.delta = false;
        next.delta_fallback = true;
        next.bytes_total = manifest_ ? manifest_->size : 0;
        next.message = "delta failed, using the full payload: " + r.status.error().message();
        transition(next);
      } else {
        fail(r.status.error().message());
      }
      return;
    case Job::kInstall:
      if (!r.status) {
        fail(r.status.error().message());
        return;
      }
      next.phase = Phase::kSwitching;
      transition(next, SlotRecord{state_.target, state_.to_slot, r.sha256, state_.version});
      return;
    case Job::kSwitch:
      if (!r.status) {
        rollback(r.status.error().message());
        return;
      }
      next.phase = Phase::kHealthCheck;
      next.pending = true;
      next.attempts = 0;
      if (transition(next)) {
        health_started_ = false;
        if (state_.target == "agent") reexec_path_ = slot_set(state_.target)->active_path();
      }
      return;
    case Job::kHealth:
      if (state_.phase != Phase::kHealthCheck) return;
      if (r.status) {
        next.phase = Phase::kCommitted;
        next.pending = false;
        transition(next);
      } else {
        rollback("health check failed: " + r.status.error().message());
      }
      return;
    default:
      return;
  }
}

void Updater::on_download(JobResult r) {
  if (!r.active_sha.empty()) {
    (void)store_->save_slot({state_.target, state_.from_slot, r.active_sha, ""});
  }
  UpdateState next = state_;
  if (r.status) {
    retries_ = 0;
    next.phase = Phase::kVerifying;
    next.delta = r.used_delta;
    next.message.clear();
    next.bytes_total = r.used_delta ? manifest_->delta->size : manifest_->size;
    next.bytes_done = next.bytes_total;
    transition(next);
    return;
  }
  const std::string why = r.status.error().message();
  const bool give_up = !r.retryable || retries_ + 1 > options_.max_retries;
  if (r.used_delta && (r.delta_failed || give_up)) {
    retries_ = 0;
    next.delta = false;
    next.delta_fallback = true;
    next.bytes_total = manifest_->size;
    next.message = "delta failed, using the full payload: " + why;
    transition(next);
    return;
  }
  if (!give_up) {
    ++retries_;
    Millis backoff = options_.retry_base * (int64_t{1} << std::min<uint32_t>(retries_ - 1, 20));
    backoff = std::min(backoff, options_.retry_max);
    std::uniform_int_distribution<int64_t> jitter(backoff.count() / 2, backoff.count());
    retry_at_ = clock_.now() + Millis(jitter(rng_));
    logger()->warn("ota download retry={} in_ms={} error='{}'", retries_,
                   (retry_at_ - clock_.now()) / Millis(1), why);
    state_.message = why;
    queue_report();
    return;
  }
  fail(r.retryable ? why + " (gave up after " + std::to_string(retries_) + " retries)" : why);
}

void Updater::recover() {
  const Phase phase = state_.phase;
  if (phase == Phase::kIdle || is_final(phase)) return;
  auto slots = slot_set(state_.target);
  if (!manifest_ || !slots) {
    fail("Failed to resume the update after a restart: " +
         std::string(!manifest_ ? "its manifest cannot be read" : "its target is not configured"));
    return;
  }
  (void)fs::make_dirs(download_dir());
  UpdateState next = state_;
  if (phase != Phase::kHealthCheck) {
    // Downloading resumes from the partial file, verifying and installing start again from the
    // download, switching is redone (idempotent). Counted, so a crash loop ends.
    next.message = std::string("resumed ") + phase_name(phase) + " after a restart";
    transition(next);
    return;
  }
  auto active = slots->active();
  if (active && *active != state_.to_slot) {
    // A rollback moved the link back and was killed before it saved its outcome.
    next.phase = Phase::kRolledBack;
    next.pending = false;
    next.message = "rolled back (the previous slot was active again after a restart)";
    transition(next);
    return;
  }
  next.attempts = state_.attempts + 1;
  if (next.attempts > options_.max_attempts) {
    state_.attempts = next.attempts;
    rollback("the new version started " + std::to_string(next.attempts) +
             " times without passing its health check (at most " +
             std::to_string(options_.max_attempts) + ")");
    return;
  }
  transition(next);
}

}  // namespace flotilla::ota
