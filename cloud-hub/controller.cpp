// Controller: workloads, scheduling, and sending desired state.
#include "cloud-hub/controller.hpp"

#include <algorithm>
#include <iterator>

#include "cloud-hub/disruption.hpp"
#include "cloud-hub/rollout.hpp"
#include "cloud-hub/scheduler.hpp"
#include "common/log.hpp"
#include "sync/codec.hpp"
#include "sync/desired_parts.hpp"

namespace flotilla::hub {
namespace {

namespace pb = flotilla::v1;

// The topics of DesiredState messages end so (sync::down_topic(node, shards, "desired")).
constexpr std::string_view kDesiredSuffix = "/down/desired";

SchedWorkload sched_workload(const WorkloadManifest& m) {
  SchedWorkload w;
  w.name = m.name;
  w.type = m.type;
  w.every_node = m.every_node;
  w.replicas = m.replicas.value_or(0);
  w.selector = m.selector;
  w.cpu_millis = m.cpu_millis;
  w.memory_bytes = memory_request(m);
  w.tolerations = m.tolerations;
  if (m.evict_after_seconds) w.evict_after_ms = *m.evict_after_seconds * 1000;
  w.arch.insert(m.arch.begin(), m.arch.end());
  w.pool = m.node_pool;
  w.spread_key = m.spread_key;
  w.max_skew = m.spread_max_skew;
  return w;
}

SchedNode sched_node(const NodeRecord& n) {
  SchedNode s;
  s.name = n.name;
  s.labels = n.labels;
  s.runtimes.insert(n.runtimes.begin(), n.runtimes.end());
  s.cpu_millis = n.cpu_millis;
  s.memory_bytes = n.memory_bytes;
  s.ready = n.ready;
  s.taints = n.taints;
  s.arch = n.arch;
  return s;
}

// The spec hash of a serialized WorkloadSpec ("" when unreadable).
std::string spec_hash_of(const std::string& serialized) {
  pb::WorkloadSpec spec;
  return spec.ParseFromString(serialized) ? spec.spec_hash() : std::string();
}

// Whether an agent must be told: the runnable spec or the labels differ. The generation alone
// does not count, so a replica change does not bump every node's revision.
bool spec_differs(const std::string& stored, const pb::WorkloadSpec& want) {
  pb::WorkloadSpec have;
  if (!have.ParseFromString(stored)) return true;
  if (have.spec_hash() != want.spec_hash() || have.name() != want.name()) return true;
  if (have.labels_size() != want.labels_size()) return true;
  for (const auto& [k, v] : want.labels()) {
    auto it = have.labels().find(k);
    if (it == have.labels().end() || it->second != v) return true;
  }
  return false;
}

// The outbox of the batch() running on this thread: handlers called inside it queue their
// messages there, to be sent after the batch commits.
thread_local std::vector<sync::Message>* t_batch_outbox = nullptr;

}  // namespace

bool Controller::in_batch() { return t_batch_outbox != nullptr; }

Controller::Controller(Store& store, const Clock& clock, sync::Transport& transport,
                       Metrics& metrics, ControllerOptions options)
    : Controller(store, {}, clock, transport, metrics, options) {}

Controller::Controller(Store& control, const std::vector<Store*>& shards, const Clock& clock,
                       sync::Transport& transport, Metrics& metrics, ControllerOptions options)
    : control_(control),
      clock_(clock),
      transport_(transport),
      metrics_(metrics),
      options_(options),
      log_(log::get("hub")) {
  metrics_.declare_histogram(kStartupMetric, startup_buckets());  // 0 startups, from the start
  if (shards.empty()) {
    // Everything in the control store: one shard behind the control lock.
    auto shard = std::make_unique<Shard>();
    shard->store = &control_;
    shard->mu = &control_mu_;
    shards_.push_back(std::move(shard));
  } else {
    for (Store* store : shards) {
      auto shard = std::make_unique<Shard>();
      shard->store = store;
      shard->number = static_cast<uint32_t>(shards_.size());
      shards_.push_back(std::move(shard));
    }
  }
}

Controller::Shard& Controller::shard_of(const std::string& node) {
  if (shards_.size() == 1) return *shards_.front();
  return *shards_[sync::shard_of(node, static_cast<uint32_t>(shards_.size()))];
}

Controller::Locks Controller::lock_all() {
  Locks locks;
  locks.mutexes.emplace_back(control_mu_);
  for (auto& shard : shards_) locks.mutexes.emplace_back(*shard->mu);
  if (auto st = control_.lock_fleet(); !st) {
    // Goes on alone: the per-store transaction locks still keep each commit whole.
    store_failed("take the fleet lock", st.error());
  } else {
    locks.fleet = &control_;
  }
  return locks;
}

std::vector<Store*> Controller::all_stores() {
  std::vector<Store*> out{&control_};
  for (auto& shard : shards_) {
    if (shard->store != &control_) out.push_back(shard->store);
  }
  return out;
}

void Controller::start_liveness_locked(Shard& shard, const std::vector<NodeRecord>& nodes,
                                       TimePoint now) {
  for (const auto& n : nodes) {
    Live& live = shard.live[n.name];
    live.last_seen = now;
    // The time a node has been NotReady is not stored: its eviction clock restarts here.
    if (!n.ready) live.not_ready_since = now;
  }
}

size_t Controller::awaited_nodes() {
  std::lock_guard lock(hold_mu_);
  return hold_until_ ? awaited_.size() : 0;
}

Status Controller::start(const std::set<uint32_t>& rebuilt_shards) {
  Outbox out;
  {
    auto locks = lock_all();
    const TimePoint now = clock_.now();
    size_t count = 0;
    std::set<std::string> known;
    for (auto& shard : shards_) {
      auto nodes = shard->store->list_nodes();
      if (!nodes) return nodes.error().WithContext("Failed to load nodes");
      start_liveness_locked(*shard, *nodes, now);
      for (const auto& n : *nodes) known.insert(n.name);
      count += nodes->size();
    }
    if (!rebuilt_shards.empty()) {
      auto placed = control_.fleet_placements();
      if (!placed) return placed.error().WithContext("Failed to load placements");
      std::lock_guard hold(hold_mu_);
      for (const auto& [workload, nodes] : *placed) {
        for (const auto& node : nodes) {
          const uint32_t shard = sync::shard_of(node, options_.shards);
          if (rebuilt_shards.count(shard) > 0 && known.count(node) == 0) awaited_.insert(node);
        }
      }
      if (!awaited_.empty()) {
        hold_until_ = now + options_.recovery_grace;
        log_->warn(
            "shard state rebuilt from agents: scheduling waits up to {} ms for {} nodes to "
            "resync",
            options_.recovery_grace.count(), awaited_.size());
      }
    }
    // Repairs a crash between a control commit and the shard commits that follow it.
    std::set<std::string> changed;
    if (auto st = reschedule_locked(changed); !st) {
      return st.error().WithContext("Failed to bring desired state in line with placements");
    }
    queue_desired_for_locked(changed, out);
    log_->info("controller started nodes={} shards={} stores={}", count, options_.shards,
               shards_.size());
  }
  flush(out);
  return Ok();
}

Expected<ApplyOutcome> Controller::apply(const std::vector<WorkloadManifest>& manifests,
                                         bool force) {
  Outbox out;
  ApplyOutcome outcome;
  std::vector<ApplyResult>& results = outcome.results;
  {
    auto locks = lock_all();
    std::set<std::string> changed_nodes;
    std::optional<Plan> plan;
    Status st = control_.transaction([&]() -> Status {
      std::set<std::string> replaced;
      bool any_change = false;
      const int64_t now = clock_.wall_ms();
      for (const auto& m : manifests) {
        std::string manifest = to_json(m).dump();
        auto existing = control_.get_workload(m.name);
        if (!existing) return existing.error();
        if (*existing && (*existing)->manifest == manifest) {
          results.push_back({m.name, "unchanged"});
          continue;
        }
        WorkloadRecord w;
        w.name = m.name;
        w.manifest = manifest;
        w.spec_hash = spec_hash(m);
        w.generation = *existing ? (*existing)->generation + 1 : 1;
        w.created_ms = *existing ? (*existing)->created_ms : now;
        w.updated_ms = now;
        if (*existing) {
          w.pending = (*existing)->pending;
          w.pending_reason = (*existing)->pending_reason;
          // A rolling update (spec.update) replaces only what its policy lets at a time.
          if ((*existing)->spec_hash != w.spec_hash && !m.update) replaced.insert(m.name);
        }
        if (auto put = control_.put_workload(w); !put) return put;
        manifests_[m.name] = {manifest, m};
        const char* action = *existing ? "configured" : "created";
        results.push_back({m.name, action});
        note_changed(Change::Kind::kWorkload, m.name);
        if (auto ev = event_locked("", "workload/" + m.name, *existing ? "Updated" : "Created",
                                   "generation " + std::to_string(w.generation));
            !ev) {
          return ev;
        }
        any_change = true;
      }
      if (!any_change) return Ok();
      auto p = plan_locked();
      if (!p) return p.error();
      auto running = running_locked(p->before);
      if (!running) return running.error();
      Placements after;
      for (const auto& [w, placement] : p->result) after[w] = placement.nodes;
      outcome.refused = check_disruption_locked("apply", *running, after, replaced, force);
      if (!outcome.refused.empty()) return Error(outcome.refused);  // rolls the change back
      if (auto wr = write_placements_locked(*p); !wr) return wr;
      plan = std::move(*p);
      return Ok();
    });
    if (!outcome.refused.empty()) {
      results.clear();
      return outcome;
    }
    if (!st) {
      store_failed("apply workloads", st.error());
      return st.error().WithContext("Failed to apply workloads");
    }
    for (const auto& r : results) {
      if (r.action != "unchanged") log_->info("workload {} name={}", r.action, r.name);
    }
    if (plan) {
      // Committed in control; start() repairs the shards if this does not get through. Shard
      // by shard: the control lock (and the fleet lock) stay held, so no other placement change
      // interleaves, but each shard is locked only while it is written, and its nodes are sent
      // their desired state as soon as it committed. At 100,000 nodes the first nodes run
      // before the last shard is written, and ingest goes on meanwhile.
      auto send_shard = [this](const std::set<std::string>& changed_in_shard) {
        Outbox shard_out;
        queue_desired_for_locked(changed_in_shard, shard_out);
        flush(shard_out);
      };
      if (auto m = materialize_locked(*plan, true, changed_nodes, {}, send_shard, &locks); !m) {
        store_failed("write desired state after an apply", m.error());
      }
    }
  }
  flush(out);
  return outcome;
}

Expected<DeleteOutcome> Controller::delete_workload(const std::string& name, bool force) {
  Outbox out;
  DeleteOutcome outcome;
  {
    auto locks = lock_all();
    std::set<std::string> changed_nodes;
    std::optional<Plan> plan;
    Status st = control_.transaction([&]() -> Status {
      auto existing = control_.get_workload(name);
      if (!existing) return existing.error();
      if (!*existing) return Ok();
      outcome.found = true;
      auto before = control_.fleet_placements();
      if (!before) return before.error();
      auto running = running_locked(*before);
      if (!running) return running.error();
      if (auto del = control_.delete_workload(name); !del) return del;
      if (auto ev = event_locked("", "workload/" + name, "Deleted", "workload deleted"); !ev) {
        return ev;
      }
      auto p = plan_locked();
      if (!p) return p.error();
      Placements after;
      for (const auto& [w, placement] : p->result) after[w] = placement.nodes;
      outcome.refused = check_disruption_locked("delete", *running, after, {}, force);
      if (!outcome.refused.empty()) return Error(outcome.refused);  // rolls the change back
      if (auto wr = write_placements_locked(*p); !wr) return wr;
      plan = std::move(*p);
      return Ok();
    });
    if (!outcome.refused.empty()) return outcome;
    if (!st) {
      store_failed("delete workload", st.error());
      return st.error().WithContext("Failed to delete workload '" + name + "'");
    }
    if (outcome.found) {
      note_changed(Change::Kind::kWorkload, name);
      manifests_.erase(name);
      log_->info("workload deleted name={}", name);
    }
    if (plan) {
      if (auto m = materialize_locked(*plan, true, changed_nodes); !m) {
        store_failed("write desired state after a delete", m.error());
      }
    }
    queue_desired_for_locked(changed_nodes, out);
  }
  flush(out);
  return outcome;
}

Expected<std::set<std::pair<std::string, std::string>>> Controller::running_locked(
    const Placements& placements) {
  std::set<std::pair<std::string, std::string>> running;
  for (auto& shard : shards_) {
    auto pairs = shard->store->running_instances();
    if (!pairs) return pairs.error();
    for (auto& [workload, node] : *pairs) {
      auto it = placements.find(workload);
      if (it != placements.end() && it->second.count(node) > 0) running.insert({workload, node});
    }
  }
  return running;
}

std::string Controller::check_disruption_locked(
    const std::string& verb, const std::set<std::pair<std::string, std::string>>& running,
    const Placements& after, const std::set<std::string>& replaced, bool force) {
  if (running.empty()) return std::string();
  Disruption d = count_disruption(running, after, replaced);
  std::string refused = disruption_refusal(verb, d, options_.max_disruption);
  if (refused.empty()) return refused;
  if (force) {
    log_->warn("forced {} stops {} of {} running instances", verb, d.stopped, d.running);
    metrics_.count("flotilla_hub_disruption_forced_total");
    return std::string();
  }
  log_->warn("{}", refused);
  metrics_.count("flotilla_hub_disruption_refused_total");
  return refused;
}

Expected<const WorkloadManifest*> Controller::manifest_locked(const WorkloadRecord& w) {
  auto it = manifests_.find(w.name);
  if (it != manifests_.end() && it->second.first == w.manifest) return &it->second.second;
  auto parsed = parse_manifests(w.manifest, "stored workload '" + w.name + "'");
  if (!parsed) return parsed.error();
  if (parsed->size() != 1) {
    return Error("Failed to read stored workload '" + w.name + "': want one document");
  }
  auto& slot = manifests_[w.name];
  slot = {w.manifest, std::move(parsed->front())};
  return &slot.second;
}

Expected<Controller::Plan> Controller::plan_locked() {
  const auto started = std::chrono::steady_clock::now();
  Plan plan;
  auto workloads = control_.list_workloads();
  if (!workloads) return workloads.error();
  plan.workloads = std::move(*workloads);
  auto current = control_.fleet_placements();
  if (!current) return current.error();
  plan.before = std::move(*current);

  ScheduleInput input;
  input.current = plan.before;
  const TimePoint now = clock_.now();
  plan.nodes_by_shard.resize(shards_.size());
  for (size_t i = 0; i < shards_.size(); ++i) {
    Shard& shard = *shards_[i];
    auto nodes = shard.store->list_nodes();
    if (!nodes) return nodes.error();
    for (const auto& n : *nodes) {
      plan.nodes_by_shard[i].push_back(n.name);
      input.nodes.push_back(sched_node(n));
      auto live = shard.live.find(n.name);
      if (!n.ready && live != shard.live.end() && live->second.not_ready_since) {
        input.nodes.back().not_ready_ms =
            std::chrono::duration_cast<Millis>(now - *live->second.not_ready_since).count();
      }
    }
  }
  for (const auto& w : plan.workloads) {
    auto m = manifest_locked(w);
    if (!m) {
      // One unreadable stored workload must not stop the placement of all others: it keeps
      // what it has.
      store_failed("read stored workload '" + w.name + "'", m.error());
      plan.result[w.name] = {plan.before[w.name], w.pending, w.pending_reason};
      continue;
    }
    input.workloads.push_back(sched_workload(**m));
    plan.specs[w.name] = to_workload_spec(**m, w.generation);
  }

  size_t awaited = 0;
  {
    std::lock_guard hold(hold_mu_);
    if (hold_until_) awaited = awaited_.size();
  }
  if (awaited > 0) {
    // Waiting for nodes the hub forgot: the stored placements stay exactly as they are.
    for (const auto& w : plan.workloads) {
      if (plan.result.count(w.name) > 0) continue;
      auto& p = plan.result[w.name];
      p.nodes = plan.before[w.name];
      p.pending = w.pending;
      p.reason = "scheduling waits for " + std::to_string(awaited) +
                 " nodes to resync after the hub lost their shard's state";
    }
    return plan;
  }
  for (auto& [name, placement] : schedule(input)) plan.result[name] = std::move(placement);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  metrics_.observe("flotilla_hub_schedule_seconds", seconds);
  return plan;
}

Status Controller::write_placements_locked(const Plan& plan) {
  for (const auto& [workload, nodes] : plan.before) {
    if (plan.result.count(workload) == 0) {
      if (auto st = control_.set_placements(workload, {}); !st) return st;
    }
  }
  for (const auto& w : plan.workloads) {
    const WorkloadPlacement& p = plan.result.at(w.name);
    auto before = plan.before.find(w.name);
    const bool moved = before == plan.before.end() ? !p.nodes.empty() : before->second != p.nodes;
    if (moved) {
      if (auto st = control_.set_placements(w.name, p.nodes); !st) return st;
      note_changed(Change::Kind::kWorkload, w.name);
    }
    if (p.pending == w.pending && p.reason == w.pending_reason) continue;
    if (auto st = control_.set_pending(w.name, p.pending, p.reason); !st) return st;
    note_changed(Change::Kind::kWorkload, w.name);
    if (p.pending > 0) {
      if (auto st = event_locked("", "workload/" + w.name, "FailedScheduling",
                                 std::to_string(p.pending) + " pending: " + p.reason);
          !st) {
        return st;
      }
    }
  }
  return Ok();
}

Status Controller::materialize_locked(const Plan& plan, bool specs_changed,
                                      std::set<std::string>& changed,
                                      const std::set<std::string>& also,
                                      const ShardDone& shard_done, Locks* locks) {
  // Nodes that gained or lost a workload; with unchanged specs no other node needs a look.
  std::set<std::string> moved = also;
  if (!specs_changed) {
    auto note_difference = [&](const std::set<std::string>& a, const std::set<std::string>& b) {
      for (const auto& n : a)
        if (b.count(n) == 0) moved.insert(n);
    };
    static const std::set<std::string> kNone;
    for (const auto& [workload, placement] : plan.result) {
      auto it = plan.before.find(workload);
      const auto& before = it == plan.before.end() ? kNone : it->second;
      note_difference(placement.nodes, before);
      note_difference(before, placement.nodes);
    }
    for (const auto& [workload, before] : plan.before) {
      if (plan.result.count(workload) == 0) note_difference(before, kNone);
    }
  }
  auto gates = rollout_gates_locked(plan, specs_changed, moved);
  if (!gates) return gates.error();
  // node -> the workloads placed on it
  std::map<std::string, std::vector<std::string>> placed;
  for (const auto& [workload, placement] : plan.result) {
    for (const auto& node : placement.nodes) placed[node].push_back(workload);
  }
  Status failed = Ok();
  const TimePoint issued = clock_.now();
  // Every shard has been read: from here on one shard at a time (mutexes[0] is the control lock).
  const bool shard_by_shard = locks != nullptr;
  if (shard_by_shard) {
    for (size_t i = 1; i < locks->mutexes.size(); ++i) locks->mutexes[i].unlock();
  }
  for (size_t i = 0; i < shards_.size(); ++i) {
    Shard& shard = *shards_[i];
    std::unique_lock<std::recursive_mutex> shard_lock(*shard.mu, std::defer_lock);
    if (shard_by_shard) shard_lock.lock();
    // Startup clocks of this shard's new instances, and (node, workload) pairs that no longer
    // start anything: taken into shard.startups once the transaction committed.
    std::vector<std::pair<std::pair<std::string, std::string>, std::string>> starting;
    std::vector<std::pair<std::string, std::string>> not_starting;
    std::set<std::string> changed_here;
    Status st = shard.store->transaction([&]() -> Status {
      starting.clear();
      not_starting.clear();
      changed_here.clear();
      for (const auto& node : plan.nodes_by_shard[i]) {
        if (!specs_changed && moved.count(node) == 0) continue;
        auto rows = shard.store->desired_for_node(node);
        if (!rows) return rows.error();
        std::map<std::string, std::string> have;
        for (auto& row : *rows) have[row.workload] = std::move(row.spec);
        std::map<std::string, std::string> upserts;
        std::vector<std::string> deletes;
        std::set<std::string> want;
        if (auto it = placed.find(node); it != placed.end()) {
          for (const auto& workload : it->second) {
            auto spec = plan.specs.find(workload);
            if (spec == plan.specs.end()) {
              // Unreadable stored workload: whatever the node has of it stays.
              if (have.count(workload) > 0) want.insert(workload);
              continue;
            }
            want.insert(workload);
            auto h = have.find(workload);
            if (h == have.end() || spec_differs(h->second, spec->second)) {
              // A rolling update's new spec reaches the node when its rollout lets it.
              auto gate = gates->find(workload);
              if (gate != gates->end() && h != have.end() && gate->second.count(node) == 0 &&
                  spec_hash_of(h->second) != spec->second.spec_hash()) {
                continue;
              }
              upserts[workload] = spec->second.SerializeAsString();
            }
          }
        }
        for (const auto& [workload, spec] : have) {
          if (want.count(workload) == 0) deletes.push_back(workload);
        }
        if (upserts.empty() && deletes.empty()) continue;
        auto rev = shard.store->update_node_desired(node, upserts, deletes);
        if (!rev) return rev.error();
        changed_here.insert(node);
        note_changed(Change::Kind::kNode, node);
        for (const auto& workload : deletes) note_changed(Change::Kind::kWorkload, workload);
        for (const auto& workload : deletes) not_starting.push_back({node, workload});
        for (const auto& [workload, spec] : upserts) {
          note_changed(Change::Kind::kWorkload, workload);
          bool fresh = have.count(workload) == 0;
          // A new instance starts when the workload is new here or its spec hash changed (a
          // label change alone restarts nothing).
          const std::string& hash = plan.specs.at(workload).spec_hash();
          if (fresh || spec_hash_of(have[workload]) != hash) {
            starting.push_back({{node, workload}, hash});
          }
          if (auto ev = event_locked(node, "workload/" + workload, fresh ? "Scheduled" : "Updated",
                                     (fresh ? "placed on node " : "new spec for node ") + node +
                                         " at revision " + std::to_string(*rev));
              !ev) {
            return ev;
          }
        }
        for (const auto& workload : deletes) {
          if (auto ev = event_locked(
                  node, "workload/" + workload, "Unscheduled",
                  "removed from node " + node + " at revision " + std::to_string(*rev));
              !ev) {
            return ev;
          }
        }
      }
      return Ok();
    });
    if (st) {
      for (const auto& key : not_starting) shard.startups.erase(key);
      for (auto& [key, hash] : starting) {
        if (shard.startups.size() >= kMaxStartups && shard.startups.count(key) == 0) {
          metrics_.count("flotilla_hub_instance_startups_untracked_total");
          continue;
        }
        if (shard.startups.empty() || issued < shard.oldest_startup) shard.oldest_startup = issued;
        shard.startups[key] = Startup{std::move(hash), issued};
      }
    }
    changed.insert(changed_here.begin(), changed_here.end());
    if (shard_lock.owns_lock()) shard_lock.unlock();
    if (shard_done && st) shard_done(changed_here);
    // One shard's failure does not keep the others from their desired state.
    if (!st && failed) failed = st;
  }
  return failed;
}

Expected<std::map<std::string, std::set<std::string>>> Controller::rollout_gates_locked(
    const Plan& plan, bool specs_changed, std::set<std::string>& visit) {
  std::map<std::string, std::set<std::string>> gates;
  for (const auto& w : plan.workloads) {
    auto spec = plan.specs.find(w.name);
    auto placement = plan.result.find(w.name);
    if (spec == plan.specs.end() || placement == plan.result.end()) continue;
    auto m = manifest_locked(w);
    if (!m || !(*m)->update) {
      std::lock_guard lock(rollouts_mu_);
      rollouts_.erase(w.name);
      continue;
    }
    if (!specs_changed) {
      std::lock_guard lock(rollouts_mu_);
      auto it = rollouts_.find(w.name);
      if (it != rollouts_.end() && it->second.complete) continue;
    }
    std::vector<RolloutNode> nodes;
    for (const auto& node : placement->second.nodes) {
      Shard& shard = shard_of(node);
      auto have = shard.store->desired_spec(node, w.name);
      if (!have) return have.error();
      RolloutNode rn;
      rn.node = node;
      if (!*have) {
        rn.fresh = true;
        nodes.push_back(rn);
        continue;
      }
      const std::string desired_hash = spec_hash_of(**have);
      rn.updated = desired_hash == spec->second.spec_hash();
      auto instances = shard.store->instances_where("node", node);
      if (!instances) return instances.error();
      for (const auto& rec : *instances) {
        const pb::InstanceStatus& s = rec.status;
        if (s.workload() == w.name && s.phase() == pb::PHASE_RUNNING &&
            (!s.has_ready() || s.ready()) && s.spec_hash() == desired_hash) {
          rn.ready = true;
        }
      }
      nodes.push_back(rn);
    }
    RolloutPlan rp = plan_rollout(*(*m)->update, std::move(nodes));
    {
      std::lock_guard lock(rollouts_mu_);
      Rollout& r = rollouts_[w.name];
      if (r.status != rp.status) note_changed(Change::Kind::kWorkload, w.name);
      r = {rp.status, rp.complete};
    }
    visit.insert(rp.update_now.begin(), rp.update_now.end());
    gates[w.name] = std::move(rp.update_now);
  }
  return gates;
}

std::string Controller::rollout_status(const std::string& workload) {
  std::lock_guard lock(rollouts_mu_);
  auto it = rollouts_.find(workload);
  return it == rollouts_.end() ? std::string() : it->second.status;
}

Status Controller::reschedule_locked(std::set<std::string>& changed, bool specs_changed,
                                     const std::set<std::string>& also) {
  if (!specs_changed && also.empty()) {
    // Nothing to place or remove: spare reading every node (a burst of hellos asks often).
    auto workloads = control_.list_workloads();
    if (!workloads) return workloads.error();
    auto placed = control_.fleet_placements();
    if (!placed) return placed.error();
    if (workloads->empty() && placed->empty()) return Ok();
  }
  auto plan = plan_locked();
  if (!plan) return plan.error();
  if (auto st = control_.transaction([&] { return write_placements_locked(*plan); }); !st) {
    return st;
  }
  return materialize_locked(*plan, specs_changed, changed, also);
}

void Controller::reschedule_if_wanted() {
  check_hold();
  if (resched_done_.load() == resched_wanted_.load()) return;
  Outbox out;
  {
    auto locks = lock_all();
    const uint64_t wanted = resched_wanted_.load();
    if (wanted == resched_done_) return;  // a pass since the ask covered it
    resched_done_ = wanted;
    std::set<std::string> also;
    {
      std::lock_guard hold(hold_mu_);
      also.swap(rematerialize_);
    }
    std::set<std::string> changed;
    if (auto st = reschedule_locked(changed, /*specs_changed=*/false, also); !st) {
      store_failed("reschedule", st.error());
    }
    queue_desired_for_locked(changed, out);
  }
  flush(out);
}

void Controller::check_hold() {
  {
    std::lock_guard hold(hold_mu_);
    if (!hold_until_) return;
    if (!awaited_.empty() && clock_.now() < *hold_until_) return;
    if (!awaited_.empty()) {
      log_->warn("{} nodes of rebuilt shards did not resync in {} ms: scheduling resumes",
                 awaited_.size(), options_.recovery_grace.count());
      metrics_.count("flotilla_hub_recovery_nodes_missing_total", {}, awaited_.size());
    } else {
      log_->info("every node of the rebuilt shards resynced: scheduling resumes");
    }
    awaited_.clear();
    hold_until_.reset();
  }
  want_reschedule();
}

void Controller::queue_desired_locked(Shard& shard, const NodeRecord& node, Outbox& out) {
  if (node.acked_revision == node.revision) return;
  {
    std::lock_guard hold(hold_mu_);
    // Back from a lost shard: the scheduling pass that follows rebuilds its desired state and
    // sends it. A snapshot now would hold nothing and tell the agent to stop what it runs.
    if (rematerialize_.count(node.name) > 0) return;
  }
  auto msg = shard.store->desired_message(node);
  if (!msg) {
    store_failed("build desired state for node '" + node.name + "'", msg.error());
    return;
  }
  std::vector<pb::DesiredState> parts{*msg};
  if (msg->ByteSizeLong() > sync::kMaxMessageBytes) {
    auto split = node.protocol_version >= sync::kPartsSinceVersion
                     ? sync::split_desired(*msg, sync::kMaxMessageBytes)
                     : Expected<std::vector<pb::DesiredState>>(
                           Error("the agent speaks protocol v" +
                                 std::to_string(node.protocol_version) + ", which has no parts"));
    if (!split) {
      // Say so loudly rather than send what the agent would drop.
      log_->error("desired state too large node={} bytes={} limit={} error='{}'", node.name,
                  msg->ByteSizeLong(), sync::kMaxMessageBytes, split.error().message());
      metrics_.count("flotilla_hub_desired_too_large_total");
      return;
    }
    parts = std::move(*split);
    metrics_.count("flotilla_hub_desired_parts_total", {}, parts.size());
  }
  Live& live = shard.live[node.name];
  live.last_sent = clock_.now();
  live.sent_to = msg->to_revision();
  metrics_.count("flotilla_hub_desired_sent_total",
                 {{"type", msg->snapshot() ? "snapshot" : "delta"}});
  log_->debug("desired queued node={} from={} to={} snapshot={} upserts={} deletes={}", node.name,
              msg->from_revision(), msg->to_revision(), msg->snapshot(), msg->upserts_size(),
              msg->deletes_size());
  for (const auto& part : parts) {
    out.push_back({sync::down_topic(node.name, options_.shards, "desired"), sync::encode(part)});
  }
}

void Controller::queue_desired_for_locked(const std::set<std::string>& nodes, Outbox& out) {
  for (const auto& name : nodes) {
    Shard& shard = shard_of(name);
    std::lock_guard lock(*shard.mu);
    auto node = shard.store->get_node(name);
    if (!node) {
      store_failed("read node '" + name + "'", node.error());
      continue;
    }
    // NotReady nodes catch up on their next hello or heartbeat.
    if (*node && (*node)->ready) queue_desired_locked(shard, **node, out);
  }
}

void Controller::queue_resync_locked(const std::string& node, const std::string& reason,
                                     Outbox& out) {
  pb::Resync msg;
  msg.set_reason(reason);
  metrics_.count("flotilla_hub_resync_sent_total");
  log_->info("resync requested node={} reason='{}'", node, reason);
  out.push_back({sync::down_topic(node, options_.shards, "resync"), sync::encode(msg)});
}

Status Controller::event_locked(const std::string& node, const std::string& object,
                                const std::string& reason, const std::string& message) {
  EventRecord e;
  e.hub_ms = clock_.wall_ms();
  e.node = node;
  e.object = object;
  e.reason = reason;
  e.message = message;
  return node.empty() ? control_.add_event(e) : shard_of(node).store->add_event(e);
}

Status Controller::record_event(const std::string& node, const std::string& object,
                                const std::string& reason, const std::string& message) {
  std::lock_guard lock(node.empty() ? control_mu_ : *shard_of(node).mu);
  return event_locked(node, object, reason, message);
}

void Controller::store_failed(const std::string& what, const Error& e) {
  log_->error("Failed to {}: {}", what, e.message());
  metrics_.count("flotilla_hub_store_errors_total");
}

void Controller::batch(uint32_t shard_number, const std::function<void()>& handle_all) {
  Outbox out;
  {
    Shard& shard = *shards_[shards_.size() == 1 ? 0 : shard_number % shards_.size()];
    std::lock_guard lock(*shard.mu);
    t_batch_outbox = &out;
    Status st = shard.store->transaction([&]() -> Status {
      handle_all();
      return fence_locked(shard);
    });
    t_batch_outbox = nullptr;
    if (!st) {
      store_failed("commit a batch of protocol messages", st.error());
      out.clear();
    }
  }
  flush(out);
  reschedule_if_wanted();
}

Status Controller::fence_locked(Shard& shard) {
  if (!fence_) return Ok();
  if (auto st = fence_(shard.number, *shard.store); !st) {
    metrics_.count("flotilla_hub_fenced_writes_total");
    return st.error().WithContext("shard " + std::to_string(shard.number) +
                                  " is no longer this instance's");
  }
  return Ok();
}

void Controller::note_changed(Change::Kind kind, const std::string& name) {
  if (!listener_) return;
  std::lock_guard lock(changes_mu_);
  changes_.insert({kind, name});
}

void Controller::flush(Outbox& out) {
  if (t_batch_outbox != nullptr && t_batch_outbox != &out) {
    std::move(out.begin(), out.end(), std::back_inserter(*t_batch_outbox));
    out.clear();
    return;
  }
  if (listener_) {
    std::set<Change> changes;
    {
      std::lock_guard lock(changes_mu_);
      changes.swap(changes_);
    }
    if (!changes.empty()) listener_(changes);
  }
  for (auto& m : out) {
    Metrics* metrics = &metrics_;
    auto log = log_;
    std::string topic = m.topic;
    const int qos = m.topic.ends_with(kDesiredSuffix) ? options_.desired_qos : 1;
    Status st = transport_.publish(
        m.topic, std::move(m.payload), qos, [metrics, log, topic](const Status& s) {
          if (!s) {
            metrics->count("flotilla_hub_publish_failures_total");
            log->warn("publish failed topic={} error='{}'", topic, s.error().message());
          }
        });
    (void)st;  // failures are reported through the done handler as well
  }
  out.clear();
}

}  // namespace flotilla::hub
