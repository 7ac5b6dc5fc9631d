// The rollout state machine (update_rollouts.hpp); its persistence and views are in
// update_rollouts_db.cpp.
#include "cloud-hub/update_rollouts.hpp"

#include <algorithm>

#include "common/log.hpp"
#include "sync/codec.hpp"
#include "sync/topics.hpp"

namespace flotilla::hub {
namespace {

namespace pb = flotilla::v1;
using Code = RolloutOutcome::Code;

RolloutOutcome fail(Code code, std::string message) {
  RolloutOutcome o;
  o.code = code;
  o.message = std::move(message);
  return o;
}

RolloutOutcome not_driving(const std::string& what) {
  return fail(Code::kFailed, what +
                                 ": this hub instance does not drive the rollouts now (the "
                                 "holder of shard 0's lease does); try again");
}

// The cumulative number of nodes each wave reaches, out of `n`.
std::vector<size_t> wave_ends(const std::vector<RolloutWave>& waves, size_t n) {
  std::vector<size_t> ends;
  size_t last = 0;
  for (const auto& w : waves) {
    size_t end = w.count > 0 ? static_cast<size_t>(w.count)
                             : (static_cast<size_t>(w.percent) * n + 99) / 100;
    last = std::max(last, std::min(end, n));
    ends.push_back(last);
  }
  return ends;
}

std::string update_phase_name(pb::UpdatePhase p) {
  switch (p) {
    case pb::UPDATE_IDLE:
      return "Idle";
    case pb::UPDATE_DOWNLOADING:
      return "Downloading";
    case pb::UPDATE_VERIFYING:
      return "Verifying";
    case pb::UPDATE_INSTALLING:
      return "Installing";
    case pb::UPDATE_SWITCHING:
      return "Switching";
    case pb::UPDATE_HEALTH_CHECK:
      return "HealthCheck";
    case pb::UPDATE_COMMITTED:
      return "Committed";
    case pb::UPDATE_ROLLED_BACK:
      return "RolledBack";
    case pb::UPDATE_FAILED:
      return "Failed";
    case pb::UPDATE_ABORTED:
      return "Aborted";
    default:
      return "Unknown";
  }
}

}  // namespace

UpdateRollouts::UpdateRollouts(const Clock& clock, sync::Transport& transport,
                               ArtifactStore& artifacts, Controller& controller,
                               UpdateRolloutsOptions options)
    : clock_(clock),
      transport_(transport),
      artifacts_(artifacts),
      controller_(controller),
      options_(std::move(options)),
      log_(log::get("rollouts")) {}

void UpdateRollouts::event_locked(const std::string& node, const Rollout& r,
                                  const std::string& reason, const std::string& message) {
  events_.push_back({node, "rollout/" + r.spec.name, reason, message});
  log_->info("rollout={} node={} reason={} message='{}'", r.spec.name, node, reason, message);
}

void UpdateRollouts::assign_locked(Rollout& r, NodeState& n, bool abort, bool resend, Outbox& out) {
  if (!resend) {
    const int64_t now = clock_.wall_ms();
    uint64_t& gen = generations_[n.node];
    gen = std::max(gen, n.generation) + 1;
    n.generation = gen;
    if (n.first_generation == 0) {
      n.first_generation = gen;
      n.assigned_ms = now;
      n.phase = "Assigned";
    }
    n.updated_ms = now;
    r.dirty.insert(r.index[n.node]);
  }
  pb::UpdateAssignment a;
  a.set_node(n.node);
  a.set_rollout(r.spec.name);
  a.set_generation(n.generation);
  a.set_manifest(r.manifest_text);
  a.set_signature(r.signature);
  const std::string base =
      options_.public_url + "/api/v1/artifacts/" + r.spec.artifact + "/" + r.spec.artifact_version;
  a.set_payload_url(base + "/payload");
  if (r.has_delta) a.set_delta_url(base + "/delta");
  a.set_abort(abort);
  out.push_back({sync::down_topic(n.node, options_.shards, "ota"), sync::encode(a)});
}

void UpdateRollouts::expire_locked(Rollout& r) {
  const int64_t now = clock_.wall_ms();
  for (size_t i = 0; i < r.nodes.size(); ++i) {
    NodeState& n = r.nodes[i];
    if (n.first_generation == 0 || !n.result.empty() ||
        now - n.assigned_ms < r.spec.progress_timeout_seconds * 1000) {
      continue;
    }
    n.result = "failed";
    n.message = "no terminal report within the progress timeout of " +
                std::to_string(r.spec.progress_timeout_seconds) + "s (last phase " + n.phase + ")";
    n.updated_ms = now;
    r.dirty.insert(i);
    event_locked(n.node, r, "UpdateTimedOut", n.message);
  }
}

void UpdateRollouts::advance_locked(Rollout& r, Outbox& out) {
  const int64_t now = clock_.wall_ms();
  const int waves = static_cast<int>(r.spec.waves.size());
  while (r.phase == "Progressing") {
    expire_locked(r);
    int64_t failed = 0;
    int64_t assigned = 0;
    for (const NodeState& n : r.nodes) {
      if (n.first_generation == 0) continue;
      ++assigned;
      if (n.result == "failed") ++failed;
    }
    failed -= r.accepted_failed;
    assigned -= r.accepted_failed;
    if (failed >= r.spec.failure_min_count && failed * 100 >= r.spec.failure_percent * assigned) {
      r.phase = "Paused";
      r.paused_reason = "failure threshold reached: " + std::to_string(failed) + " of " +
                        std::to_string(assigned) + " assigned nodes failed (threshold " +
                        std::to_string(r.spec.failure_percent) + "% and at least " +
                        std::to_string(r.spec.failure_min_count) + ")";
      r.updated_ms = now;
      event_locked("", r, "RolloutPaused", r.paused_reason);
      return;
    }
    bool wave_done = true;
    bool wave_empty = true;
    for (auto& n : r.nodes) {
      if (n.wave != r.current_wave) continue;
      wave_empty = false;
      if (n.first_generation == 0) assign_locked(r, n, false, false, out);
      if (n.result.empty()) wave_done = false;
    }
    if (!wave_done) return;
    const std::string wave_text =
        std::to_string(r.current_wave + 1) + " of " + std::to_string(waves);
    if (r.current_wave + 1 >= waves) {
      r.phase = "Completed";
      r.updated_ms = now;
      event_locked("", r, "RolloutCompleted", "every wave finished (wave " + wave_text + ")");
      return;
    }
    if (!wave_empty && r.spec.soak_seconds > 0) {
      if (!r.soak_until_ms) {
        r.soak_until_ms = now + r.spec.soak_seconds * 1000;
        r.updated_ms = now;
        event_locked("", r, "WaveSoaking",
                     "wave " + wave_text + " finished; soaking " +
                         std::to_string(r.spec.soak_seconds) + "s before the next");
      }
      if (now < *r.soak_until_ms) return;
    }
    r.soak_until_ms.reset();
    ++r.current_wave;
    r.updated_ms = now;
    event_locked(
        "", r, "WaveStarted",
        "wave " + std::to_string(r.current_wave + 1) + " of " + std::to_string(waves) + " started");
  }
}

RolloutOutcome UpdateRollouts::apply(const RolloutManifest& m) {
  const std::string what = "Failed to create rollout '" + m.name + "'";
  // The nodes are read before taking mu_: no Controller lock is taken while it is held.
  ListOptions list;
  list.selector = m.selector;
  auto nodes_view = controller_.nodes_view(list);
  if (!nodes_view) return fail(Code::kFailed, what + ": " + nodes_view.error().message());
  std::vector<std::string> names;
  for (const auto& item : (*nodes_view)["items"]) names.push_back(item.value("name", ""));
  std::sort(names.begin(), names.end());

  Outbox out;
  RolloutOutcome done;
  {
    std::lock_guard lock(mu_);
    if (!loaded_) return not_driving(what);
    const std::string spec_json = to_json(m).dump();
    if (auto it = rollouts_.find(m.name); it != rollouts_.end()) {
      if (it->second.spec_json != spec_json) {
        return fail(Code::kConflict,
                    what +
                        ": it exists with another spec (a rollout's nodes and waves are fixed "
                        "when it starts): delete it and apply again");
      }
      done.action = "unchanged";
      done.view = view_locked(it->second);
      return done;
    }
    auto artifact = artifacts_.get(m.artifact, m.artifact_version);
    if (!artifact) {
      return fail(Code::kInvalid, what + ": artifact '" + m.artifact + "' version '" +
                                      m.artifact_version + "' not found (upload it first)");
    }
    if (!artifact->payload) {
      return fail(Code::kInvalid, what + ": artifact '" + m.artifact + "' version '" +
                                      m.artifact_version +
                                      "' is not ready: its payload is not uploaded");
    }
    if (names.empty()) {
      return fail(Code::kInvalid, what + ": spec.selector matches no registered node");
    }
    for (const auto& [other_name, other] : rollouts_) {
      if (finished(other)) continue;
      for (const auto& n : names) {
        if (other.index.count(n) > 0) {
          return fail(Code::kConflict, what + ": node '" + n + "' is in unfinished rollout '" +
                                           other_name + "' (abort or delete it first)");
        }
      }
    }
    Rollout r;
    r.spec = m;
    r.spec_json = spec_json;
    r.manifest_text = artifact->manifest_text;
    r.signature = artifact->signature;
    r.has_delta = artifact->delta;
    r.created_ms = r.updated_ms = clock_.wall_ms();
    const auto ends = wave_ends(m.waves, names.size());
    for (size_t i = 0, wave = 0; i < ends.back(); ++i) {
      while (i >= ends[wave]) ++wave;
      NodeState n;
      n.node = names[i];
      n.wave = static_cast<int>(wave);
      n.updated_ms = r.created_ms;
      r.index[n.node] = r.nodes.size();
      r.dirty.insert(r.nodes.size());
      r.nodes.push_back(std::move(n));
    }
    event_locked("", r, "RolloutStarted",
                 "artifact " + m.artifact + " " + m.artifact_version + " to " +
                     std::to_string(r.nodes.size()) + " nodes in " +
                     std::to_string(m.waves.size()) + " waves");
    advance_locked(r, out);
    if (auto st = save_locked(r, out); !st) {
      return fail(Code::kFailed, what + ": " + st.error().message());
    }
    auto [it, inserted] = rollouts_.emplace(m.name, std::move(r));
    done.code = Code::kCreated;
    done.action = "created";
    done.view = view_locked(it->second);
  }
  flush(out, true);
  return done;
}

RolloutOutcome UpdateRollouts::change(const std::string& name, const std::string& verb) {
  Outbox out;
  RolloutOutcome done;
  {
    std::lock_guard lock(mu_);
    const std::string what = "Failed to " + verb + " rollout '" + name + "'";
    if (!loaded_) return not_driving(what);
    auto it = rollouts_.find(name);
    if (it == rollouts_.end()) return fail(Code::kNotFound, "rollout '" + name + "' not found");
    Rollout& r = it->second;
    const int64_t now = clock_.wall_ms();
    // Already so: nothing changes, and the answer says so.
    done.action = "unchanged";
    const std::string did = verb == "pause" ? "paused" : verb == "resume" ? "resumed" : "aborted";
    if (verb == "pause") {
      if (finished(r)) return fail(Code::kConflict, what + ": it is " + r.phase);
      if (r.phase == "Progressing") {
        done.action = did;
        r.phase = "Paused";
        r.paused_reason = "paused by the operator";
        r.updated_ms = now;
        event_locked("", r, "RolloutPaused", r.paused_reason);
      }
    } else if (verb == "resume") {
      if (finished(r)) return fail(Code::kConflict, what + ": it is " + r.phase);
      if (r.phase == "Paused") {
        done.action = did;
        r.phase = "Progressing";
        r.paused_reason.clear();
        // The failures so far are accepted: the threshold counts only what fails from now.
        r.accepted_failed = static_cast<int64_t>(
            std::count_if(r.nodes.begin(), r.nodes.end(),
                          [](const NodeState& n) { return n.result == "failed"; }));
        r.updated_ms = now;
        event_locked("", r, "RolloutResumed",
                     "resumed; " + std::to_string(r.accepted_failed) +
                         " failed nodes accepted (the threshold counts only new failures)");
        advance_locked(r, out);
      }
    } else {  // abort
      if (r.phase == "Completed") {
        return fail(Code::kConflict, what + ": it is Completed (nothing left to abort)");
      }
      if (r.phase != "Aborted") {
        done.action = did;
        r.phase = "Aborted";
        r.paused_reason.clear();
        r.soak_until_ms.reset();
        r.updated_ms = now;
        for (auto& n : r.nodes) {
          if (n.first_generation != 0 && n.result.empty()) assign_locked(r, n, true, false, out);
        }
        event_locked("", r, "RolloutAborted", "aborted: no new assignments");
      }
    }
    if (auto st = save_locked(r, out); !st) {
      return fail(Code::kFailed, what + ": " + st.error().message());
    }
    done.view = view_locked(rollouts_.at(name));
  }
  flush(out, true);
  return done;
}

RolloutOutcome UpdateRollouts::pause(const std::string& name) { return change(name, "pause"); }
RolloutOutcome UpdateRollouts::resume(const std::string& name) { return change(name, "resume"); }
RolloutOutcome UpdateRollouts::abort(const std::string& name) { return change(name, "abort"); }

std::vector<std::string> UpdateRollouts::names_locked() const {
  std::vector<std::string> names;
  for (const auto& [name, r] : rollouts_) names.push_back(name);
  return names;
}

void UpdateRollouts::on_hello(const std::string& node) {
  Outbox out;
  {
    std::lock_guard lock(mu_);
    if (!loaded_) return;
    // By name: a failed save reloads rollouts_.
    for (const std::string& name : names_locked()) {
      auto it = rollouts_.find(name);
      if (it == rollouts_.end()) continue;
      Rollout& r = it->second;
      auto at = r.index.find(node);
      if (at == r.index.end()) continue;
      NodeState& n = r.nodes[at->second];
      if (n.first_generation == 0 || !n.result.empty() || r.phase == "Completed") continue;
      // The same assignment again (same generation): nothing changes, nothing to save.
      assign_locked(r, n, r.phase == "Aborted", true, out);
    }
  }
  flush(out, false);
}

bool UpdateRollouts::awaiting_reports_locked() const {
  for (const auto& [name, r] : rollouts_) {
    if (r.phase == "Completed") continue;
    if (r.phase != "Aborted") return true;
    for (const auto& n : r.nodes) {
      if (n.first_generation != 0 && n.result.empty()) return true;
    }
  }
  return false;
}

void UpdateRollouts::on_report(const pb::UpdateReport& report) {
  Outbox out;
  {
    std::lock_guard lock(mu_);
    if (!loaded_) return;
    auto it = rollouts_.find(report.rollout());
    if (it == rollouts_.end()) return;
    Rollout& r = it->second;
    auto at = r.index.find(report.node());
    if (at == r.index.end()) return;
    NodeState& n = r.nodes[at->second];
    // Only the node's assignments in this rollout count, and only newer reports.
    if (n.first_generation == 0 || report.generation() < n.first_generation ||
        report.generation() > n.generation || report.seq() <= n.seq) {
      log_->debug("report ignored rollout={} node={} generation={} seq={}", r.spec.name, n.node,
                  report.generation(), report.seq());
      return;
    }
    n.seq = report.seq();
    n.phase = update_phase_name(report.phase());
    n.message = report.message();
    n.attempts = report.attempts();
    n.updated_ms = clock_.wall_ms();
    r.dirty.insert(at->second);
    if (n.result.empty()) {
      switch (report.phase()) {
        case pb::UPDATE_COMMITTED:
          n.result = "succeeded";
          event_locked(n.node, r, "UpdateCommitted",
                       "committed " + r.spec.artifact + " " + r.spec.artifact_version);
          break;
        case pb::UPDATE_FAILED:
        case pb::UPDATE_ROLLED_BACK:
          n.result = "failed";
          event_locked(n.node, r, n.phase == "Failed" ? "UpdateFailed" : "UpdateRolledBack",
                       n.message);
          break;
        case pb::UPDATE_ABORTED:
          // Only an abort the hub asked for; an agent stopping on its own is a failure.
          n.result = r.phase == "Aborted" ? "aborted" : "failed";
          event_locked(n.node, r, "UpdateAborted", n.message);
          break;
        default:
          break;
      }
    }
    advance_locked(r, out);
    if (auto st = save_locked(r, out); !st) log_->error("{}", st.error().message());
  }
  flush(out, false);
}

void UpdateRollouts::tick() {
  Outbox out;
  {
    std::lock_guard lock(mu_);
    if (!driving_) return;
    if (!loaded_) take_over_locked(out);
    if (!loaded_) return;
    for (const std::string& name : names_locked()) {
      auto it = rollouts_.find(name);
      if (it == rollouts_.end() || finished(it->second)) continue;
      // A paused rollout's nodes still time out, so that a resume accepts those failures too.
      if (it->second.phase == "Paused") expire_locked(it->second);
      advance_locked(it->second, out);
      if (auto st = save_locked(it->second, out); !st) log_->error("{}", st.error().message());
    }
    if (reach_ && out.empty()) reach_(awaiting_reports_locked());
  }
  flush(out, true);
}

RolloutOutcome UpdateRollouts::remove(const std::string& name) {
  Outbox out;
  {
    std::lock_guard lock(mu_);
    if (!loaded_) return not_driving("Failed to delete rollout '" + name + "'");
    auto it = rollouts_.find(name);
    if (it == rollouts_.end()) return fail(Code::kNotFound, "rollout '" + name + "' not found");
    Rollout& r = it->second;
    if (!finished(r)) {
      for (auto& n : r.nodes) {
        if (n.first_generation != 0 && n.result.empty()) assign_locked(r, n, true, false, out);
      }
      event_locked("", r, "RolloutAborted", "deleted while " + r.phase + ": aborted");
    }
    // The generations sent go first, so that none is ever handed out twice.
    if (auto st = save_locked(r, out); !st) {
      return fail(Code::kFailed,
                  "Failed to delete rollout '" + name + "': " + st.error().message());
    }
    db::Tx tx(*db_);
    Status st = tx.begun();
    if (st && fence_) st = fence_(*db_);
    for (const char* sql :
         {"DELETE FROM rollout_nodes WHERE rollout = ?", "DELETE FROM rollouts WHERE name = ?"}) {
      if (!st) break;
      auto stmt = db_->prepare(sql);
      st = stmt ? stmt->bind(1, name).run() : Status(stmt.error());
    }
    if (st) st = tx.commit();
    if (!st) {
      return fail(Code::kFailed,
                  "Failed to delete rollout '" + name + "': " + st.error().message());
    }
    event_locked("", r, "RolloutDeleted", "deleted");
    rollouts_.erase(it);
    note_changed_locked(name);
  }
  flush(out, true);
  RolloutOutcome done;
  done.action = "deleted";
  return done;
}

ArtifactOutcome UpdateRollouts::delete_artifact(const std::string& name,
                                                const std::string& version) {
  std::lock_guard lock(mu_);
  for (const auto& [rollout, r] : rollouts_) {
    if (!finished(r) && r.spec.artifact == name && r.spec.artifact_version == version) {
      return {ArtifactOutcome::Code::kConflict,
              "Failed to delete artifact '" + name + "' version '" + version +
                  "': unfinished rollout '" + rollout + "' (" + r.phase + ") uses it"};
    }
  }
  return artifacts_.remove(name, version);
}

void UpdateRollouts::set_driving(bool on, Fence fence) {
  Outbox out;
  {
    std::lock_guard lock(mu_);
    fence_ = std::move(fence);
    if (on == driving_) return;
    driving_ = on;
    loaded_ = false;
    rollouts_.clear();
    generations_.clear();
    if (on) {
      take_over_locked(out);
    } else {
      log_->info("not driving the rollouts");
      if (reach_) reach_(false);
    }
  }
  flush(out, false);
}

void UpdateRollouts::take_over_locked(Outbox& out) {
  if (!db_) return;  // open() comes later and loads them
  if (auto st = load_locked(); !st) {
    // Nothing is driven until the next tick loads them.
    log_->error("Failed to load the rollouts to drive; trying again at the next tick: {}",
                st.error().message());
    rollouts_.clear();
    generations_.clear();
    return;
  }
  loaded_ = true;
  log_->info("driving the rollouts ({} loaded)", rollouts_.size());
  // Whatever the last driver heard before it went is unknown here: every node with an
  // unfinished assignment gets it again and answers with where it stands (Updater::assign).
  for (auto& [name, r] : rollouts_) {
    note_changed_locked(name);  // watchers here hear of what is driven here
    if (r.phase == "Completed") continue;
    for (auto& n : r.nodes) {
      if (n.first_generation != 0 && n.result.empty()) {
        assign_locked(r, n, r.phase == "Aborted", true, out);
      }
    }
  }
  if (reach_ && out.empty()) reach_(awaiting_reports_locked());
}

bool UpdateRollouts::driving() {
  std::lock_guard lock(mu_);
  return driving_;
}

void UpdateRollouts::flush(Outbox& out, bool with_events) {
  if (reach_ && !out.empty()) {
    std::lock_guard lock(mu_);
    reach_(true);  // before the nodes can answer
  }
  for (auto& m : out) {
    if (auto st = transport_.publish(m.topic, std::move(m.payload), 1); !st) {
      // The node gets it again after its next hello.
      log_->warn("assignment not sent topic={} error='{}'", m.topic, st.error().message());
    }
  }
  out.clear();
  if (!with_events) return;
  std::vector<Event> events;
  {
    std::lock_guard lock(mu_);
    events.swap(events_);
  }
  for (const auto& e : events) {
    if (auto st = controller_.record_event(e.node, e.object, e.reason, e.message); !st) {
      log_->warn("event not recorded reason={} error='{}'", e.reason, st.error().message());
    }
  }
}

}  // namespace flotilla::hub
