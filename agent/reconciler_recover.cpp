// Reconciler: startup recovery after the agent stopped or was killed (possibly while offline).
//
// The store says what the agent believed; the driver says what is really on the node. Known
// instances are adopted (never started twice), instances only the driver knows are orphans
// (killed and cleaned up), and instances only the store knows are treated as exited.
#include <algorithm>

#include "agent/reconciler.hpp"
#include "common/log.hpp"

namespace flotilla::agent {

Status Reconciler::recover() {
  auto log = log::get("agent");
  desired_version_ = ~store_.desired_version();  // force a reload
  if (!reload_desired()) return Error("Failed to recover instances: desired state is unreadable");
  auto rows = store_.load_instances();
  if (!rows) return rows.error().WithContext("Failed to recover instances");
  std::map<std::string, runtime::Handle> found;
  for (auto& h : driver_.recover()) found.emplace(h.instance_id, h);

  instances_.clear();
  for (auto& rec : *rows) {
    std::string id = rec.instance_id;
    Live& inst = instances_.emplace(id, Live{}).first->second;
    inst.rec = std::move(rec);
    inst.handle = runtime::Handle{id, inst.rec.pid, inst.rec.start_ticks};
    auto it = found.find(id);
    std::optional<runtime::Handle> handle;
    if (it != found.end()) {
      handle = it->second;
      found.erase(it);
    }
    switch (inst.rec.phase) {
      case v1::PHASE_STARTING:
      case v1::PHASE_RUNNING:
        if (handle) {
          adopt(inst, *handle);
        } else if (inst.rec.phase == v1::PHASE_RUNNING) {
          runtime::Observation lost;
          lost.message = "instance was not found after the agent restarted";
          on_exit(inst, lost);
        }
        // A STARTING row the driver never saw was not launched: the next tick launches it.
        break;
      case v1::PHASE_TERMINATING: {
        if (handle) inst.handle = *handle;
        Millis since(std::clamp<int64_t>(clock_.wall_ms() - inst.rec.terminating_since_unix_ms, 0,
                                         inst.rec.grace_ms));
        inst.deadline = clock_.now() + Millis(inst.rec.grace_ms) - since;
        if (!handle) inst.handle.pid = 0;  // gone already: the next tick removes it
        break;
      }
      case v1::PHASE_BACKOFF: {
        int64_t wait = std::clamp<int64_t>(inst.rec.next_restart_unix_ms - clock_.wall_ms(), 0,
                                           config_.backoff_max.count());
        inst.deadline = clock_.now() + Millis(wait);
        break;
      }
      default:
        break;  // SUCCEEDED / FAILED: finished; the driver's leftovers are cleaned on removal
    }
  }

  for (auto& [id, handle] : found) {
    log->warn("orphan instance found; killing instance={} pid={}", id, handle.pid);
    if (auto st = driver_.kill(handle); !st) fail(st.error());
    orphans_.push_back(handle);
  }
  reap_orphans();
  log->info("recovered instances known={} running={} orphans={}", instances_.size(),
            running_count(), orphans_.size());
  return Ok();
}

void Reconciler::adopt(Live& inst, const runtime::Handle& found) {
  InstanceRecord& rec = inst.rec;
  bool same = found.pid == rec.pid && found.start_ticks == rec.start_ticks;
  if (same && rec.phase == v1::PHASE_RUNNING) {
    inst.handle = found;
    log::get("agent")->info("instance adopted workload={} instance={} pid={}", rec.workload,
                            rec.instance_id, rec.pid);
    return;
  }
  // Launched just before the agent stopped (row still STARTING), or the store's handle is
  // stale: the instance id is ours, so the driver's handle is the truth.
  if (!same && rec.phase == v1::PHASE_RUNNING) {
    log::get("agent")->warn("instance handle changed instance={} stored_pid={} found_pid={}",
                            rec.instance_id, rec.pid, found.pid);
  }
  inst.handle = found;
  rec.pid = found.pid;
  rec.start_ticks = found.start_ticks;
  if (rec.phase == v1::PHASE_STARTING) rec.started_unix_ms = clock_.wall_ms();
  rec.phase = v1::PHASE_RUNNING;
  log::get("agent")->info("instance adopted workload={} instance={} pid={}", rec.workload,
                          rec.instance_id, rec.pid);
  save(inst, "Adopted", "found running after the agent restarted, pid " + std::to_string(rec.pid));
}

void Reconciler::reap_orphans() {
  auto it = orphans_.begin();
  while (it != orphans_.end()) {
    if (driver_.observe(*it).state == runtime::RunState::kRunning) {
      ++it;
      continue;
    }
    if (auto st = driver_.cleanup(it->instance_id); !st) fail(st.error());
    log::get("agent")->info("orphan instance removed instance={}", it->instance_id);
    it = orphans_.erase(it);
  }
}

}  // namespace flotilla::agent
