// Controller: workloads, scheduling, and sending desired state.
#include "cloud-hub/controller.hpp"

#include <algorithm>
#include <iterator>

#include "cloud-hub/disruption.hpp"
#include "cloud-hub/scheduler.hpp"
#include "common/log.hpp"
#include "sync/codec.hpp"
#include "sync/desired_parts.hpp"

namespace flotilla::hub {
namespace {

namespace pb = flotilla::v1;

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

}  // namespace

Controller::Controller(Store& store, const Clock& clock, sync::Transport& transport,
                       Metrics& metrics, ControllerOptions options)
    : store_(store),
      clock_(clock),
      transport_(transport),
      metrics_(metrics),
      options_(options),
      log_(log::get("hub")) {}

Status Controller::start() {
  std::lock_guard lock(mu_);
  auto nodes = store_.list_nodes();
  if (!nodes) return nodes.error().WithContext("Failed to load nodes");
  const TimePoint now = clock_.now();
  for (const auto& n : *nodes) {
    live_[n.name].last_seen = now;
    // The time a node has been NotReady is not stored: its eviction clock restarts here.
    if (!n.ready) live_[n.name].not_ready_since = now;
  }
  log_->info("controller started nodes={}", nodes->size());
  return Ok();
}

Expected<ApplyOutcome> Controller::apply(const std::vector<WorkloadManifest>& manifests,
                                         bool force) {
  Outbox out;
  ApplyOutcome outcome;
  std::vector<ApplyResult>& results = outcome.results;
  {
    std::lock_guard lock(mu_);
    std::set<std::string> changed_nodes;
    Status st = store_.transaction([&]() -> Status {
      auto running = running_locked();
      if (!running) return running.error();
      std::set<std::string> replaced;
      bool any_change = false;
      const int64_t now = clock_.wall_ms();
      for (const auto& m : manifests) {
        std::string manifest = to_json(m).dump();
        auto existing = store_.get_workload(m.name);
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
          if ((*existing)->spec_hash != w.spec_hash) replaced.insert(m.name);
        }
        if (auto put = store_.put_workload(w); !put) return put;
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
      if (auto r = reschedule_locked(changed_nodes); !r) return r;
      auto refused = check_disruption_locked("apply", *running, replaced, force);
      if (!refused) return refused.error();
      outcome.refused = *refused;
      return refused->empty() ? Ok() : Status(Error(*refused));  // rolls the change back
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
    queue_desired_for_locked(changed_nodes, out);
  }
  flush(out);
  return outcome;
}

Expected<DeleteOutcome> Controller::delete_workload(const std::string& name, bool force) {
  Outbox out;
  DeleteOutcome outcome;
  {
    std::lock_guard lock(mu_);
    std::set<std::string> changed_nodes;
    Status st = store_.transaction([&]() -> Status {
      auto existing = store_.get_workload(name);
      if (!existing) return existing.error();
      if (!*existing) return Ok();
      outcome.found = true;
      auto running = running_locked();
      if (!running) return running.error();
      if (auto del = store_.delete_workload(name); !del) return del;
      if (auto ev = event_locked("", "workload/" + name, "Deleted", "workload deleted"); !ev) {
        return ev;
      }
      if (auto r = reschedule_locked(changed_nodes); !r) return r;
      auto refused = check_disruption_locked("delete", *running, {}, force);
      if (!refused) return refused.error();
      outcome.refused = *refused;
      return refused->empty() ? Ok() : Status(Error(*refused));  // rolls the change back
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
    queue_desired_for_locked(changed_nodes, out);
  }
  flush(out);
  return outcome;
}

Expected<std::set<std::pair<std::string, std::string>>> Controller::running_locked() {
  auto placements = store_.placements();
  if (!placements) return placements.error();
  auto instances = store_.list_instances();
  if (!instances) return instances.error();
  std::set<std::pair<std::string, std::string>> running;
  for (const auto& rec : *instances) {
    if (rec.status.phase() != pb::PHASE_RUNNING) continue;
    auto it = placements->find(rec.status.workload());
    if (it != placements->end() && it->second.count(rec.node) > 0) {
      running.insert({rec.status.workload(), rec.node});
    }
  }
  return running;
}

Expected<std::string> Controller::check_disruption_locked(
    const std::string& verb, const std::set<std::pair<std::string, std::string>>& running,
    const std::set<std::string>& replaced, bool force) {
  if (running.empty()) return std::string();
  auto after = store_.placements();
  if (!after) return after.error();
  Disruption d = count_disruption(running, *after, replaced);
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

Status Controller::reschedule_locked(std::set<std::string>& changed, bool specs_changed) {
  auto workloads = store_.list_workloads();
  if (!workloads) return workloads.error();
  auto current = store_.placements();
  if (!current) return current.error();
  if (workloads->empty() && current->empty()) return Ok();  // nothing to place or remove
  auto nodes = store_.list_nodes();
  if (!nodes) return nodes.error();

  ScheduleInput input;
  input.current = std::move(*current);
  std::map<std::string, pb::WorkloadSpec> specs;
  for (const auto& w : *workloads) {
    auto m = manifest_locked(w);
    if (!m) return m.error();
    input.workloads.push_back(sched_workload(**m));
    specs[w.name] = to_workload_spec(**m, w.generation);
  }
  const TimePoint now = clock_.now();
  for (const auto& n : *nodes) {
    input.nodes.push_back(sched_node(n));
    auto live = live_.find(n.name);
    if (!n.ready && live != live_.end() && live->second.not_ready_since) {
      input.nodes.back().not_ready_ms =
          std::chrono::duration_cast<Millis>(now - *live->second.not_ready_since).count();
    }
  }
  auto result = schedule(input);

  // Nodes that gained or lost a workload; with unchanged specs no other node needs a look.
  std::set<std::string> moved;
  if (!specs_changed) {
    auto note_difference = [&](const std::set<std::string>& a, const std::set<std::string>& b) {
      for (const auto& n : a)
        if (b.count(n) == 0) moved.insert(n);
    };
    static const std::set<std::string> kNone;
    for (const auto& [workload, placement] : result) {
      auto it = input.current.find(workload);
      const auto& before = it == input.current.end() ? kNone : it->second;
      note_difference(placement.nodes, before);
      note_difference(before, placement.nodes);
    }
    for (const auto& [workload, before] : input.current) {
      if (result.count(workload) == 0) note_difference(before, kNone);
    }
  }

  for (const auto& n : *nodes) {
    if (!specs_changed && moved.count(n.name) == 0) continue;
    auto rows = store_.desired_for_node(n.name);
    if (!rows) return rows.error();
    std::map<std::string, std::string> have;
    for (auto& row : *rows) have[row.workload] = std::move(row.spec);
    std::map<std::string, std::string> upserts;
    std::vector<std::string> deletes;
    for (const auto& [workload, placement] : result) {
      if (placement.nodes.count(n.name) == 0) continue;
      const pb::WorkloadSpec& want = specs.at(workload);
      auto it = have.find(workload);
      if (it == have.end() || spec_differs(it->second, want)) {
        upserts[workload] = want.SerializeAsString();
      }
    }
    for (const auto& [workload, spec] : have) {
      auto it = result.find(workload);
      if (it == result.end() || it->second.nodes.count(n.name) == 0) deletes.push_back(workload);
    }
    if (upserts.empty() && deletes.empty()) continue;
    auto rev = store_.update_node_desired(n.name, upserts, deletes);
    if (!rev) return rev.error();
    changed.insert(n.name);
    note_changed(Change::Kind::kNode, n.name);
    for (const auto& workload : deletes) note_changed(Change::Kind::kWorkload, workload);
    for (const auto& [workload, spec] : upserts) {
      note_changed(Change::Kind::kWorkload, workload);
      bool fresh = have.count(workload) == 0;
      if (auto st = event_locked(n.name, "workload/" + workload, fresh ? "Scheduled" : "Updated",
                                 (fresh ? "placed on node " : "new spec for node ") + n.name +
                                     " at revision " + std::to_string(*rev));
          !st) {
        return st;
      }
    }
    for (const auto& workload : deletes) {
      if (auto st =
              event_locked(n.name, "workload/" + workload, "Unscheduled",
                           "removed from node " + n.name + " at revision " + std::to_string(*rev));
          !st) {
        return st;
      }
    }
  }
  for (const auto& w : *workloads) {
    const WorkloadPlacement& p = result.at(w.name);
    if (p.pending == w.pending && p.reason == w.pending_reason) continue;
    if (auto st = store_.set_pending(w.name, p.pending, p.reason); !st) return st;
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

void Controller::queue_desired_locked(const NodeRecord& node, Outbox& out) {
  if (node.acked_revision == node.revision) return;
  auto msg = store_.desired_message(node);
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
  Live& live = live_[node.name];
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
    auto node = store_.get_node(name);
    if (!node) {
      store_failed("read node '" + name + "'", node.error());
      continue;
    }
    // NotReady nodes catch up on their next hello or heartbeat.
    if (*node && (*node)->ready) queue_desired_locked(**node, out);
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
  return store_.add_event(e);
}

void Controller::store_failed(const std::string& what, const Error& e) {
  log_->error("Failed to {}: {}", what, e.message());
  metrics_.count("flotilla_hub_store_errors_total");
}

namespace {
// The outbox of the batch() running on this thread: handlers called inside it queue their
// messages there, to be sent after the batch commits.
thread_local std::vector<sync::Message>* t_batch_outbox = nullptr;
}  // namespace

void Controller::batch(const std::function<void()>& handle_all) {
  Outbox out;
  {
    std::lock_guard lock(mu_);
    t_batch_outbox = &out;
    Status st = store_.transaction([&]() -> Status {
      handle_all();
      return Ok();
    });
    t_batch_outbox = nullptr;
    if (!st) {
      store_failed("commit a batch of protocol messages", st.error());
      out.clear();
    }
  }
  flush(out);
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
    Status st = transport_.publish(
        m.topic, std::move(m.payload), 1, [metrics, log, topic](const Status& s) {
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
