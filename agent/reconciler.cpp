// Reconciler: the control loop (tick, observe, converge). Startup recovery is in
// reconciler_recover.cpp.
#include "agent/reconciler.hpp"

#include <algorithm>

#include "agent/launch_spec.hpp"
#include "common/log.hpp"

namespace flotilla::agent {
namespace {

constexpr const char* kPulling = "Pulling";
constexpr const char* kPullBackOff = "PullBackOff";

std::string seconds_text(Millis d) {
  return std::to_string(d.count() / 1000) + "." + std::to_string(d.count() % 1000 / 100) + "s";
}

// Which instance of a workload to keep when there are several: the most alive, then the oldest.
int liveliness(v1::Phase phase) {
  switch (phase) {
    case v1::PHASE_RUNNING:
      return 3;
    case v1::PHASE_STARTING:
      return 2;
    case v1::PHASE_BACKOFF:
      return 1;
    default:
      return 0;
  }
}

}  // namespace

Reconciler::Reconciler(std::string node, ReconcilerConfig config, Store& store,
                       runtime::Driver& driver, const Clock& clock, Prober* prober)
    : node_(std::move(node)),
      config_(std::move(config)),
      store_(store),
      driver_(driver),
      clock_(clock),
      prober_(prober) {}

void Reconciler::fail(const Error& e) {
  ++errors_;
  log::get("agent")->error("{}", e.message());
}

size_t Reconciler::running_count() const {
  return static_cast<size_t>(std::count_if(instances_.begin(), instances_.end(), [](auto& kv) {
    return kv.second.rec.phase == v1::PHASE_RUNNING;
  }));
}

Reconciler::Live* Reconciler::find(const std::string& instance_id) {
  auto it = instances_.find(instance_id);
  return it == instances_.end() ? nullptr : &it->second;
}

const v1::WorkloadSpec* Reconciler::desired_for(const InstanceRecord& rec) const {
  auto it = desired_.find(rec.workload);
  if (it == desired_.end() || it->second.spec_hash() != rec.spec_hash) return nullptr;
  return &it->second;
}

Millis Reconciler::backoff_delay(int32_t attempts) const {
  Millis delay = config_.backoff_base;
  for (int32_t i = 0; i < attempts && delay < config_.backoff_max; ++i) delay *= 2;
  return std::min(delay, config_.backoff_max);
}

Millis Reconciler::grace_of(const v1::WorkloadSpec& spec) const {
  return spec.has_termination_grace_ms() ? Millis(spec.termination_grace_ms())
                                         : config_.default_grace;
}

bool Reconciler::runtime_available(const std::string& type) const {
  return std::find(config_.runtimes.begin(), config_.runtimes.end(), type) !=
         config_.runtimes.end();
}

bool Reconciler::save(Live& inst, const std::string& reason, const std::string& message) {
  EventRecord event{inst.rec.workload + "/" + inst.rec.instance_id, reason, message,
                    clock_.wall_ms()};
  if (auto st = store_.save_instance(inst.rec, event); !st) {
    fail(st.error());
    inst.unsaved = std::make_pair(reason, message);
    return false;
  }
  inst.unsaved.reset();
  return true;
}

bool Reconciler::reload_desired() {
  if (store_.desired_version() == desired_version_) return true;
  auto desired = store_.load_desired();
  if (!desired) {
    fail(desired.error());
    return false;
  }
  desired_ = std::move(*desired);
  desired_version_ = store_.desired_version();
  return true;
}

void Reconciler::tick() {
  // Never converge on a desired set that could not be read: that would stop everything.
  bool desired_known = reload_desired();
  reap_orphans();
  std::vector<std::string> ids;
  for (const auto& [id, inst] : instances_) ids.push_back(id);
  for (const auto& id : ids) {
    Live* inst = find(id);
    if (inst != nullptr && inst->unsaved) save(*inst, inst->unsaved->first, inst->unsaved->second);
    if (inst != nullptr) observe(*inst);
  }
  if (desired_known) converge();
  probe();
}

void Reconciler::probe() {
  if (prober_ == nullptr) return;
  for (auto& [id, inst] : instances_) {
    const v1::WorkloadSpec* spec = inst.rec.phase == v1::PHASE_RUNNING && inst.handle.pid != 0
                                       ? desired_for(inst.rec)
                                       : nullptr;
    if (spec == nullptr) {
      prober_->forget(id);
      continue;
    }
    if (has_action(spec->liveness()) || has_action(spec->readiness())) {
      prober_->watch(id, inst.handle, *spec);
    } else {
      prober_->forget(id);
    }
    if (!has_action(spec->readiness()) && !inst.rec.ready) {
      inst.rec.ready = true;  // its readiness probe was taken away: running is enough
      inst.rec.reason.clear();
      save(inst, "Ready", "no readiness probe");
    }
  }
  for (const ProbeVerdict& verdict : prober_->poll()) {
    Live* inst = find(verdict.instance_id);
    if (inst != nullptr && inst->rec.phase == v1::PHASE_RUNNING) on_verdict(*inst, verdict);
  }
}

void Reconciler::on_verdict(Live& inst, const ProbeVerdict& verdict) {
  InstanceRecord& rec = inst.rec;
  auto log = log::get("agent");
  switch (verdict.kind) {
    case ProbeVerdict::Kind::kReady:
      rec.ready = true;
      rec.reason.clear();
      rec.message.clear();
      log->info("instance ready workload={} instance={}", rec.workload, rec.instance_id);
      save(inst, "Ready", verdict.message);
      return;
    case ProbeVerdict::Kind::kNotReady:
      rec.ready = false;
      rec.reason = "NotReady";
      rec.message = verdict.message;
      log->warn("instance not ready workload={} instance={} why='{}'", rec.workload,
                rec.instance_id, verdict.message);
      save(inst, "NotReady", verdict.message);
      return;
    case ProbeVerdict::Kind::kLivenessFailed:
      // Killed here, the exit is observed on a later tick and restarts per the restart policy.
      log->warn("instance failed its liveness probe; killing workload={} instance={} why='{}'",
                rec.workload, rec.instance_id, verdict.message);
      if (auto st = driver_.kill(inst.handle); !st) fail(st.error());
      inst.liveness_failed = true;
      rec.ready = false;
      rec.reason = "LivenessFailed";
      rec.message = verdict.message;
      prober_->forget(rec.instance_id);
      save(inst, "LivenessFailed", verdict.message + "; killed");
      return;
  }
}

void Reconciler::observe(Live& inst) {
  InstanceRecord& rec = inst.rec;
  switch (rec.phase) {
    case v1::PHASE_PENDING:
      if (const auto* spec = desired_for(rec); spec != nullptr && !inst.unsaved) {
        prepare_and_launch(inst, *spec);
      }
      return;
    case v1::PHASE_STARTING:
      // Launched but not yet recorded as running (its store write failed): watch it.
      if (inst.handle.pid != 0) break;
      if (const auto* spec = desired_for(rec); spec != nullptr && !inst.unsaved) {
        launch(inst, *spec);
      }
      return;
    case v1::PHASE_RUNNING:
      break;
    case v1::PHASE_BACKOFF:
      if (clock_.now() >= inst.deadline) {
        if (const auto* spec = desired_for(rec)) restart(inst, *spec);
      }
      return;
    case v1::PHASE_TERMINATING: {
      if (inst.handle.pid == 0) return finish_stop(inst);
      runtime::Observation obs = driver_.observe(inst.handle);
      if (obs.state != runtime::RunState::kRunning) {
        rec.exit_code = obs.signal != 0 ? 128 + obs.signal : obs.exit_code;
        rec.message = obs.message;
        return finish_stop(inst);
      }
      if (clock_.now() >= inst.deadline) {
        if (auto st = driver_.kill(inst.handle); !st) fail(st.error());
        inst.deadline = clock_.now() + Millis(rec.grace_ms);
        log::get("agent")->warn("instance killed after grace workload={} instance={} grace_ms={}",
                                rec.workload, rec.instance_id, rec.grace_ms);
        save(inst, "Killing",
             "still running " + seconds_text(Millis(rec.grace_ms)) + " after SIGTERM; SIGKILL");
      }
      return;
    }
    default:
      return;
  }
  runtime::Observation obs = driver_.observe(inst.handle);
  if (obs.state != runtime::RunState::kRunning) on_exit(inst, obs);
}

void Reconciler::on_exit(Live& inst, const runtime::Observation& obs) {
  InstanceRecord& rec = inst.rec;
  bool exited = obs.state == runtime::RunState::kExited;
  bool failed = !exited || obs.signal != 0 || obs.exit_code != 0;
  rec.exit_code = !exited ? -1 : obs.signal != 0 ? 128 + obs.signal : obs.exit_code;
  std::string what = !obs.message.empty() ? obs.message
                     : exited             ? "exited with code " + std::to_string(obs.exit_code)
                                          : "instance vanished (no process and no exit record)";
  if (clock_.wall_ms() - rec.started_unix_ms >= config_.backoff_reset_after.count()) {
    rec.backoff_attempts = 0;
  }
  rec.pid = 0;
  rec.start_ticks = 0;
  rec.ready = false;
  rec.reason = what.find("OOMKilled") != std::string::npos ? "OOMKilled"
               : inst.liveness_failed                      ? "LivenessFailed"
                                                           : (failed ? "Error" : "Completed");
  inst.liveness_failed = false;
  inst.handle = runtime::Handle{rec.instance_id, 0, 0};

  const v1::WorkloadSpec* spec = desired_for(rec);
  v1::RestartPolicy policy = spec != nullptr ? spec->restart_policy() : v1::RESTART_NEVER;
  bool restart = policy == v1::RESTART_ALWAYS || (policy == v1::RESTART_ON_FAILURE && failed);
  auto log = log::get("agent");
  if (restart) {
    Millis delay = backoff_delay(rec.backoff_attempts);
    ++rec.backoff_attempts;
    rec.phase = v1::PHASE_BACKOFF;
    rec.next_restart_unix_ms = clock_.wall_ms() + delay.count();
    rec.message = what + "; restarting in " + seconds_text(delay);
    inst.deadline = clock_.now() + delay;
    log->warn("instance exited workload={} instance={} exit_code={} restart_in_ms={}", rec.workload,
              rec.instance_id, rec.exit_code, delay.count());
    save(inst, "BackOff", rec.message);
    return;
  }
  rec.phase = failed ? v1::PHASE_FAILED : v1::PHASE_SUCCEEDED;
  rec.message = what;
  log->info("instance finished workload={} instance={} exit_code={} phase={}", rec.workload,
            rec.instance_id, rec.exit_code, v1::Phase_Name(rec.phase));
  save(inst, failed ? "Failed" : "Completed", what);
}

void Reconciler::converge() {
  // Stop what is not wanted: instances of deleted workloads or old specs, and duplicates.
  std::map<std::string, std::string> keep;  // workload -> instance id to keep
  for (const auto& [id, inst] : instances_) {
    if (inst.rec.phase == v1::PHASE_TERMINATING || desired_for(inst.rec) == nullptr) continue;
    auto [it, fresh] = keep.emplace(inst.rec.workload, id);
    if (!fresh && liveliness(inst.rec.phase) > liveliness(find(it->second)->rec.phase)) {
      it->second = id;
    }
  }
  std::vector<std::string> ids;
  for (const auto& [id, inst] : instances_) ids.push_back(id);
  for (const auto& id : ids) {
    Live* inst = find(id);
    if (inst == nullptr || inst->rec.phase == v1::PHASE_TERMINATING) continue;
    auto it = keep.find(inst->rec.workload);
    if (it != keep.end() && it->second == id) continue;
    std::string why = !desired_.count(inst->rec.workload) ? "workload deleted"
                      : desired_for(inst->rec) == nullptr ? "spec changed"
                                                          : "duplicate instance";
    if (why == "spec changed" && inst->rec.phase == v1::PHASE_RUNNING &&
        !replacement_ready(*inst)) {
      continue;
    }
    begin_stop(*inst, why);
  }
  // Start what is missing, once no older instance of the workload remains (stop, then start).
  for (const auto& [name, spec] : desired_) {
    // Explicit capture: clang before 16 cannot capture structured bindings.
    bool present =
        std::any_of(instances_.begin(), instances_.end(),
                    [&name = name](const auto& kv) { return kv.second.rec.workload == name; });
    if (!present) start_new(spec);
  }
}

void Reconciler::start_new(const v1::WorkloadSpec& spec) {
  Live inst;
  inst.rec.workload = spec.name();
  inst.rec.spec_hash = spec.spec_hash();
  inst.rec.grace_ms = grace_of(spec).count();
  EventRecord event{spec.name(), "Starting", "", clock_.wall_ms()};
  if (!runtime_available(spec.type())) {
    inst.rec.phase = v1::PHASE_FAILED;
    inst.rec.message = "runtime '" + spec.type() + "' is not available on this node";
    event.reason = "RuntimeUnavailable";
    event.message = inst.rec.message;
  } else if (runtime::Preparation prep = driver_.prepare(make_launch_spec(node_, spec, ""));
             !prep.ready()) {
    // The image (or disk) is not on the node yet: wait in PENDING while the driver fetches it.
    inst.rec.phase = v1::PHASE_PENDING;
    inst.rec.reason = prep.state == runtime::Preparation::State::kFailed ? kPullBackOff : kPulling;
    inst.rec.message = prep.message;
    event.reason = inst.rec.reason;
    event.message = prep.message;
  } else {
    inst.rec.phase = v1::PHASE_STARTING;  // intent recorded before the launch
    event.message = "starting instance of spec " + spec.spec_hash();
  }
  if (auto st = store_.create_instance(inst.rec, event); !st) return fail(st.error());
  inst.handle.instance_id = inst.rec.instance_id;
  std::string id = inst.rec.instance_id;
  Live& stored = instances_.emplace(id, std::move(inst)).first->second;
  if (stored.rec.phase == v1::PHASE_FAILED) {
    log::get("agent")->error("workload cannot run workload={} reason='{}'", spec.name(),
                             stored.rec.message);
    return;
  }
  if (stored.rec.phase == v1::PHASE_PENDING) {
    log::get("agent")->info("instance waits for its image workload={} instance={} status='{}'",
                            spec.name(), stored.rec.instance_id, stored.rec.message);
    return;
  }
  launch(stored, spec);
}

// A PENDING instance: launched once the driver has what it needs; until then its status says
// how the fetch goes (recorded when that changes, not on every tick).
void Reconciler::prepare_and_launch(Live& inst, const v1::WorkloadSpec& spec) {
  InstanceRecord& rec = inst.rec;
  runtime::Preparation prep = driver_.prepare(make_launch_spec(node_, spec, rec.instance_id));
  if (prep.ready()) {
    rec.phase = v1::PHASE_STARTING;
    rec.reason.clear();
    rec.message.clear();
    if (!save(inst, "Pulled", "everything the instance needs is on the node")) return;
    launch(inst, spec);
    return;
  }
  bool failed = prep.state == runtime::Preparation::State::kFailed;
  std::string reason = failed ? kPullBackOff : kPulling;
  if (reason == rec.reason && (!failed || prep.message == rec.message)) return;
  rec.reason = reason;
  rec.message = prep.message;
  if (failed) {
    log::get("agent")->warn("instance cannot start yet workload={} instance={} error='{}'",
                            rec.workload, rec.instance_id, prep.message);
  }
  save(inst, reason, prep.message);
}

// Pre-pull: a running instance whose spec changed is stopped only once the new spec's image is
// on the node, so the replace costs a stop plus a start, not a stop plus a download. Returns
// whether the replacement is ready.
bool Reconciler::replacement_ready(Live& inst) {
  const v1::WorkloadSpec& next = desired_.at(inst.rec.workload);
  runtime::Preparation prep = driver_.prepare(make_launch_spec(node_, next, ""));
  if (prep.ready()) return true;
  bool failed = prep.state == runtime::Preparation::State::kFailed;
  std::string message = "new spec " + next.spec_hash().substr(0, 12) +
                        (failed ? " cannot start yet: " : " is being prepared: ") + prep.message;
  std::string reason = failed ? "UpdatePullBackOff" : "UpdatePulling";
  if (reason != inst.rec.reason || (failed && message != inst.rec.message)) {
    inst.rec.reason = reason;
    inst.rec.message = message;
    save(inst, reason, message);
  }
  return false;
}

void Reconciler::restart(Live& inst, const v1::WorkloadSpec& spec) {
  // The exit was recorded; free the old runtime state so the instance id can launch again.
  if (auto st = driver_.cleanup(inst.rec.instance_id); !st) fail(st.error());
  inst.rec.phase = v1::PHASE_STARTING;
  ++inst.rec.restarts;
  if (!save(inst, "Restarting", "restart " + std::to_string(inst.rec.restarts))) return;
  launch(inst, spec);
}

// Precondition: the instance is recorded in the store in phase STARTING.
void Reconciler::launch(Live& inst, const v1::WorkloadSpec& spec) {
  InstanceRecord& rec = inst.rec;
  runtime::LaunchSpec ls = make_launch_spec(node_, spec, rec.instance_id);
  rec.started_unix_ms = clock_.wall_ms();
  auto handle = driver_.launch(ls);
  if (!handle) {
    runtime::Observation obs;
    obs.state = runtime::RunState::kExited;
    obs.exit_code = -1;
    obs.message = handle.error().message();
    log::get("agent")->error("instance launch failed workload={} instance={} error='{}'",
                             rec.workload, rec.instance_id, obs.message);
    return on_exit(inst, obs);
  }
  inst.handle = *handle;
  rec.pid = handle->pid;
  rec.start_ticks = handle->start_ticks;
  rec.phase = v1::PHASE_RUNNING;
  rec.message.clear();
  rec.reason.clear();
  rec.ready = !has_action(spec.readiness());
  log::get("agent")->info("instance started workload={} instance={} pid={}", rec.workload,
                          rec.instance_id, rec.pid);
  save(inst, "Started", "pid " + std::to_string(rec.pid));
}

void Reconciler::begin_stop(Live& inst, const std::string& why) {
  InstanceRecord& rec = inst.rec;
  bool has_process =
      inst.handle.pid != 0 && (rec.phase == v1::PHASE_RUNNING || rec.phase == v1::PHASE_STARTING);
  if (!has_process) return finish_stop(inst);
  if (auto st = driver_.terminate(inst.handle); !st) fail(st.error());
  if (rec.grace_ms < 0) rec.grace_ms = config_.default_grace.count();
  rec.phase = v1::PHASE_TERMINATING;
  rec.ready = false;
  rec.terminating_since_unix_ms = clock_.wall_ms();
  rec.message = why;
  inst.deadline = clock_.now() + Millis(rec.grace_ms);
  log::get("agent")->info("instance stopping workload={} instance={} reason='{}' grace_ms={}",
                          rec.workload, rec.instance_id, why, rec.grace_ms);
  save(inst, "Terminating", why + "; SIGTERM, grace " + seconds_text(Millis(rec.grace_ms)));
}

void Reconciler::finish_stop(Live& inst) {
  InstanceRecord& rec = inst.rec;
  if (auto st = driver_.cleanup(rec.instance_id); !st) fail(st.error());
  rec.pid = 0;
  rec.start_ticks = 0;
  EventRecord event{rec.workload + "/" + rec.instance_id, "Removed", "instance removed",
                    clock_.wall_ms()};
  if (auto st = store_.remove_instance(rec, event); !st) {
    inst.handle.pid = 0;  // retried by the next tick
    return fail(st.error());
  }
  log::get("agent")->info("instance removed workload={} instance={}", rec.workload,
                          rec.instance_id);
  if (prober_ != nullptr) prober_->forget(rec.instance_id);
  instances_.erase(rec.instance_id);
}

}  // namespace flotilla::agent
