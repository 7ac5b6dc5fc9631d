// Controller: the hub side of the sync protocol (docs/protocol.md) and node liveness.
#include <algorithm>
#include <chrono>
#include <vector>

#include "cloud-hub/controller.hpp"
#include "common/log.hpp"
#include "sync/desired_parts.hpp"

namespace flotilla::hub {
namespace {

namespace pb = flotilla::v1;

std::map<std::string, std::string> to_map(
    const google::protobuf::Map<std::string, std::string>& m) {
  return {m.begin(), m.end()};
}

std::string seconds_text(Millis d) { return std::to_string(d.count() / 1000) + "s"; }

}  // namespace

Status Controller::accept_claimed_revision_locked(Shard& shard, NodeRecord& node,
                                                  uint64_t claimed) {
  if (claimed > node.revision) {
    // The agent holds a revision this store never issued (the hub lost or restored its store).
    // Skip past it so the snapshot that follows is newer than anything the agent has.
    log_->warn("agent claims unknown revision node={} claimed={} current={}", node.name, claimed,
               node.revision);
    node.acked_revision = claimed;
    if (auto st = shard.store->put_node(node); !st) return st;
    if (auto st = shard.store->skip_revision_past(node.name, claimed); !st) return st;
    node.revision = claimed + 1;
    node.compacted_floor = claimed + 1;
    return event_locked(node.name, "node/" + node.name, "RevisionReset",
                        "agent claimed revision " + std::to_string(claimed) +
                            " which this hub never issued; sending a snapshot");
  }
  return Ok();
}

void Controller::on_hello(const pb::Hello& h) {
  Outbox out;
  {
    Shard& shard = shard_of(h.node());
    std::lock_guard lock(*shard.mu);
    const int64_t wall = clock_.wall_ms();
    NodeRecord node;
    bool placement_inputs_changed = false;
    Status st = shard.store->transaction([&]() -> Status {
      auto existing = shard.store->get_node(h.node());
      if (!existing) return existing.error();
      const bool is_new = !*existing;
      if (!is_new) node = **existing;
      const NodeRecord before = node;
      node.name = h.node();
      if (is_new) node.registered_ms = wall;
      node.labels = to_map(h.labels());
      node.cpu_millis = h.capacity().cpu_millis();
      node.memory_bytes = h.capacity().memory_bytes();
      node.arch = h.arch();
      node.runtimes.assign(h.runtimes().begin(), h.runtimes().end());
      node.taints.clear();
      for (const auto& t : h.taints()) node.taints.push_back({t.key(), t.value(), t.effect()});
      node.boot_id = h.boot_id();
      node.agent_version = h.agent_version();
      // The sync server let through only hellos with a version in common.
      auto version = sync::negotiate_version(h.protocol_version(), h.min_protocol_version());
      node.protocol_version = version ? *version : sync::kMinProtocolVersion;
      node.ready = true;
      node.last_seen_ms = wall;
      // Hello states what the agent has: the next message starts from there.
      if (h.acked_revision() <= node.revision) node.acked_revision = h.acked_revision();
      if (auto put = shard.store->put_node(node); !put) return put;
      if (auto acc = accept_claimed_revision_locked(shard, node, h.acked_revision()); !acc) {
        return acc;
      }

      placement_inputs_changed = is_new || !before.ready || before.labels != node.labels ||
                                 before.runtimes != node.runtimes || before.taints != node.taints ||
                                 before.arch != node.arch || before.cpu_millis != node.cpu_millis ||
                                 before.memory_bytes != node.memory_bytes;
      std::string reason = is_new ? "Registered" : (!before.ready ? "Ready" : "Hello");
      if (!is_new && before.boot_id != node.boot_id) reason = "AgentRestarted";
      if (auto ev = event_locked(node.name, "node/" + node.name, reason,
                                 "agent " + node.agent_version + " boot " + node.boot_id +
                                     " at revision " + std::to_string(h.acked_revision()));
          !ev) {
        return ev;
      }
      return Ok();
    });
    if (!st) {
      store_failed("register node '" + h.node() + "'", st.error());
      return;
    }
    {
      std::lock_guard hold(hold_mu_);
      if (awaited_.erase(h.node()) > 0) rematerialize_.insert(h.node());
    }
    if (placement_inputs_changed) want_reschedule();
    if (node.protocol_version != sync::kProtocolVersion) {
      log_->info("node speaks an older protocol node={} version={} ours={}", h.node(),
                 node.protocol_version, sync::kProtocolVersion);
    }
    note_changed(Change::Kind::kNode, h.node());
    Live& live = shard.live[h.node()];
    live.hub_keys.assign(h.hub_keys().begin(), h.hub_keys().end());
    live.last_seen = clock_.now();
    live.timed_out = false;
    live.not_ready_since.reset();
    live.gap_seq = 0;
    live.sent_to = 0;
    log_->info("node hello node={} acked={} revision={} boot={}", h.node(), h.acked_revision(),
               node.revision, h.boot_id());
    auto fresh = shard.store->get_node(h.node());  // the revision may have been reset
    if (fresh && *fresh) queue_desired_locked(shard, **fresh, out);
    queue_twin_full_locked(shard, h.node(), out);
  }
  flush(out);
  if (!in_batch()) reschedule_if_wanted();
}

void Controller::note_rejections_locked(const std::string& node, Live& live,
                                        const pb::Heartbeat& hb) {
  // The count is the agent process's: a new process starts again from 0.
  const uint64_t before = live.rejected_boot == hb.boot_id() ? live.rejected_messages : 0;
  live.rejected_boot = hb.boot_id();
  live.rejected_messages = hb.rejected_messages();
  if (hb.rejected_messages() <= before) return;
  metrics_.count("flotilla_hub_agent_rejected_messages_total", {}, hb.rejected_messages() - before);
  log_->warn(
      "node {} dropped {} message(s) said to come from the hub (forged, unsigned or "
      "malformed; its log says why); {} in all",
      node, hb.rejected_messages() - before, hb.rejected_messages());
}

void Controller::on_heartbeat(const pb::Heartbeat& hb) {
  Outbox out;
  {
    Shard& shard = shard_of(hb.node());
    std::lock_guard lock(*shard.mu);
    auto existing = shard.store->get_node(hb.node());
    if (!existing) return store_failed("read node '" + hb.node() + "'", existing.error());
    if (!*existing) {
      // The hub does not know this node (it lost its store, or the hello was lost).
      resync_unknown_locked(shard, hb.node(), out);
    } else {
      NodeRecord node = **existing;
      const TimePoint now = clock_.now();
      Live& live = shard.live[node.name];
      live.last_seen = now;
      live.timed_out = false;
      live.not_ready_since.reset();
      note_rejections_locked(node.name, live, hb);
      const bool became_ready = !node.ready;
      bool resync = false;
      Status st = shard.store->transaction([&]() -> Status {
        node.ready = true;
        node.last_seen_ms = clock_.wall_ms();
        // Acks may overtake heartbeats (QoS 1 vs 0): only ever raise acked here.
        if (hb.acked_revision() <= node.revision) {
          node.acked_revision = std::max(node.acked_revision, hb.acked_revision());
        }
        if (hb.status_seq() < node.status_seq && live.seq_boot == hb.boot_id()) {
          // The agent process that raised the counter cannot have gone back: an old heartbeat
          // (duplicated, delayed or replayed). It changes nothing.
          metrics_.count("flotilla_hub_stale_heartbeats_total");
        } else if (hb.status_seq() < node.status_seq) {
          // The counter of another agent process is behind: it lost its store. Take its records
          // afresh.
          if (auto r = shard.store->reset_instance_seqs(node.name); !r) return r;
          node.status_seq = hb.status_seq();
          live.seq_boot = hb.boot_id();
          resync = true;
        } else if (hb.status_seq() > node.status_seq) {
          // Records may be in flight; resync only if they are still missing a heartbeat later.
          if (live.gap_seq != 0 && node.status_seq < live.gap_seq) {
            resync = true;
            live.gap_seq = 0;
          } else {
            live.gap_seq = hb.status_seq();
          }
        } else {
          live.gap_seq = 0;
        }
        if (auto put = shard.store->put_node_progress(node); !put) return put;
        if (auto acc = accept_claimed_revision_locked(shard, node, hb.acked_revision()); !acc) {
          return acc;
        }
        if (!became_ready) return Ok();
        return event_locked(node.name, "node/" + node.name, "Ready", "heartbeat resumed");
      });
      if (!st) return store_failed("record heartbeat of node '" + node.name + "'", st.error());
      if (became_ready) {
        want_reschedule();  // it may take new instances again
        note_changed(Change::Kind::kNode, node.name);
        log_->info("node ready node={}", node.name);
      }
      if (resync) queue_resync_locked(node.name, "status records missing", out);
      auto fresh = shard.store->get_node(node.name);
      if (fresh && *fresh && (*fresh)->acked_revision != (*fresh)->revision) {
        // While the transport still holds unsent messages, the last one to this node is most
        // likely among them: resending would only add to the queue (at 100k nodes a third of
        // all desired states were such resends). Long overdue resends go anyway.
        const auto since = now - live.last_sent;
        bool due = since >= options_.resend_interval &&
                   (transport_.backlog() == 0 || since >= 12 * options_.resend_interval);
        if (due) queue_desired_locked(shard, **fresh, out);
      }
      resend_twins_locked(shard, node.name, out);
    }
  }
  flush(out);
  if (!in_batch()) reschedule_if_wanted();
}

void Controller::on_ack(const pb::Ack& ack) {
  Outbox out;
  {
    Shard& shard = shard_of(ack.node());
    std::lock_guard lock(*shard.mu);
    auto existing = shard.store->get_node(ack.node());
    if (!existing) return store_failed("read node '" + ack.node() + "'", existing.error());
    if (!*existing) return;
    NodeRecord node = **existing;
    Live& live = shard.live[node.name];
    live.last_seen = clock_.now();
    live.timed_out = false;
    if (ack.revision() <= node.acked_revision && ack.revision() <= node.revision) {
      metrics_.count("flotilla_hub_acks_ignored_total", {{"reason", "duplicate"}});
      return;
    }
    if (!take_ack_locked(node, ack.revision())) return;
    if (auto st = shard.store->put_node_progress(node); !st) {
      return store_failed("record ack of node '" + node.name + "'", st.error());
    }
    after_ack_locked(shard, node, live, out);
  }
  flush(out);
}

void Controller::resync_unknown_locked(Shard& shard, const std::string& node, Outbox& out) {
  const TimePoint now = clock_.now();
  auto it = shard.unknown_resynced.find(node);
  if (it != shard.unknown_resynced.end() && now - it->second < options_.resend_interval) {
    metrics_.count("flotilla_hub_resyncs_suppressed_total");
    return;
  }
  if (shard.unknown_resynced.size() >= 4096) {
    std::erase_if(shard.unknown_resynced,
                  [&](const auto& e) { return now - e.second >= options_.resend_interval; });
    if (shard.unknown_resynced.size() >= 4096) shard.unknown_resynced.clear();
  }
  shard.unknown_resynced[node] = now;
  queue_resync_locked(node, "unknown node: send hello", out);
}

bool Controller::take_ack_locked(NodeRecord& node, uint64_t revision) {
  if (revision > node.revision) {
    // Not issued by this store; the agent's next hello or heartbeat resets the history.
    log_->warn("ack for unknown revision node={} acked={} current={}", node.name, revision,
               node.revision);
    metrics_.count("flotilla_hub_acks_ignored_total", {{"reason", "unknown_revision"}});
    return false;
  }
  if (revision <= node.acked_revision) return false;
  node.acked_revision = revision;
  log_->debug("ack node={} revision={} current={}", node.name, revision, node.revision);
  return true;
}

void Controller::after_ack_locked(Shard& shard, const NodeRecord& node, const Live& live,
                                  Outbox& out) {
  bool covered =
      live.sent_to == node.revision && clock_.now() - live.last_sent < options_.resend_interval;
  if (node.ready && node.acked_revision != node.revision && !covered) {
    queue_desired_locked(shard, node, out);
  }
}

void Controller::on_status(const pb::StatusBatch& batch) {
  Outbox out;
  {
    Shard& shard = shard_of(batch.node());
    std::lock_guard lock(*shard.mu);
    auto existing = shard.store->get_node(batch.node());
    if (!existing) return store_failed("read node '" + batch.node() + "'", existing.error());
    if (!*existing) {
      resync_unknown_locked(shard, batch.node(), out);
    } else {
      NodeRecord node = **existing;
      Live& live = shard.live[node.name];
      live.last_seen = clock_.now();
      live.timed_out = false;
      const uint64_t seen_before = node.status_seq;
      const int64_t wall = clock_.wall_ms();
      // v3 agents ack in their status batches; every batch carries the revision, so one that
      // is not newer is no duplicate ack, just nothing new.
      const bool acked =
          batch.has_acked_revision() && take_ack_locked(node, batch.acked_revision());
      Status st = shard.store->transaction([&]() -> Status {
        std::set<std::string> listed;
        for (const auto& inst : batch.instances()) {
          if (inst.instance_id().empty()) continue;
          node.status_seq = std::max<uint64_t>(node.status_seq, inst.seq());
          if (!inst.removed()) listed.insert(inst.instance_id());
          // A stored record with the same or a higher seq wins: older or repeated records change
          // nothing. A removal is stored too, so an older record cannot bring the instance back.
          if (auto p = shard.store->put_instance({node.name, inst, wall}); !p) return p;
        }
        if (batch.full()) {
          // Instances reported after the agent took this set are not in it, but not gone either
          // (the batch may be old: duplicated, delayed or replayed).
          const uint64_t as_of = batch.has_status_seq() ? batch.status_seq() : Store::kAllSeqs;
          if (auto r = shard.store->retain_instances(node.name, listed, as_of); !r) return r;
        }
        for (const auto& e : batch.events()) {
          if (e.seq() != 0 && e.seq() <= seen_before) continue;  // replayed
          node.status_seq = std::max<uint64_t>(node.status_seq, e.seq());
          if (auto a = event_locked(node.name, e.object(), e.reason(), e.message()); !a) return a;
        }
        if (batch.dropped_events() > 0) {
          if (auto a = event_locked(node.name, "node/" + node.name, "EventsDropped",
                                    "the agent's outbox dropped " +
                                        std::to_string(batch.dropped_events()) + " events");
              !a) {
            return a;
          }
        }
        return shard.store->put_node_progress(node);
      });
      if (!st) return store_failed("record status of node '" + node.name + "'", st.error());
      if (acked) after_ack_locked(shard, node, live, out);
      observe_startups_locked(shard, batch);
      if (batch.instances_size() > 0) note_changed(Change::Kind::kNode, node.name);
      bool rolling = false;
      for (const auto& inst : batch.instances()) {
        note_changed(Change::Kind::kWorkload, inst.workload());
        std::lock_guard roll(rollouts_mu_);
        auto it = rollouts_.find(inst.workload());
        if (it != rollouts_.end() && !it->second.complete) rolling = true;
      }
      // An instance of a rolling update changed: its rollout may take its next step.
      if (rolling) want_reschedule();
      if (live.gap_seq != 0 && node.status_seq >= live.gap_seq) live.gap_seq = 0;
      if (node.status_seq > seen_before) live.seq_boot = node.boot_id;
    }
  }
  flush(out);
  if (!in_batch()) reschedule_if_wanted();
}

const std::vector<double>& Controller::startup_buckets() {
  // A process starts in well under a second, a container or VM whose image is pulled first
  // takes minutes.
  static const std::vector<double> buckets = {0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600};
  return buckets;
}

void Controller::observe_startups_locked(Shard& shard, const pb::StatusBatch& batch) {
  if (shard.startups.empty()) return;
  const TimePoint now = clock_.now();
  for (const auto& inst : batch.instances()) {
    if (inst.removed() || inst.phase() != pb::PHASE_RUNNING) continue;
    auto it = shard.startups.find({batch.node(), inst.workload()});
    // An instance of the spec it replaces may still report Running: not the one awaited.
    if (it == shard.startups.end() || it->second.spec_hash != inst.spec_hash()) continue;
    const double seconds = std::chrono::duration<double>(now - it->second.issued).count();
    metrics_.observe_histogram(kStartupMetric, seconds, startup_buckets());
    shard.startups.erase(it);
  }
}

void Controller::forget_stale_startups_locked(Shard& shard) {
  const TimePoint now = clock_.now();
  // Once a second per shard: most ticks have nothing that old, and 100,000 startups awaited
  // after a fleet-wide apply are not walked each time.
  if (shard.startups.empty() || now - shard.oldest_startup <= kStartupForget) return;
  TimePoint oldest = TimePoint::max();
  for (auto it = shard.startups.begin(); it != shard.startups.end();) {
    if (now - it->second.issued > kStartupForget) {
      metrics_.count("flotilla_hub_instance_startups_untracked_total");
      it = shard.startups.erase(it);
    } else {
      oldest = std::min(oldest, it->second.issued);
      ++it;
    }
  }
  shard.oldest_startup = oldest;
}

bool Controller::set_not_ready_locked(Shard& shard, NodeRecord& node, const std::string& why) {
  Status st = shard.store->transaction([&]() -> Status {
    node.ready = false;
    if (auto put = shard.store->put_node(node); !put) return put;
    if (auto ev = event_locked(node.name, "node/" + node.name, "NotReady", why); !ev) return ev;
    return fence_locked(shard);
  });
  if (!st) {
    store_failed("mark node '" + node.name + "' NotReady", st.error());
    return false;
  }
  note_changed(Change::Kind::kNode, node.name);
  Live& live = shard.live[node.name];
  live.not_ready_since = clock_.now();
  live.evict_checked = Millis(0);
  log_->warn("node not ready node={} reason='{}'", node.name, why);
  return true;
}

void Controller::on_will(const pb::Offline& will) {
  {
    Shard& shard = shard_of(will.node());
    std::lock_guard lock(*shard.mu);
    auto existing = shard.store->get_node(will.node());
    if (!existing) return store_failed("read node '" + will.node() + "'", existing.error());
    if (!*existing || !(*existing)->ready) return;
    NodeRecord node = **existing;
    if (!will.boot_id().empty() && !node.boot_id.empty() && will.boot_id() != node.boot_id) {
      // The will of an earlier agent process, delivered after the new one said hello.
      log_->info("stale will ignored node={} boot={} current_boot={}", node.name, will.boot_id(),
                 node.boot_id);
      return;
    }
    (void)set_not_ready_locked(shard, node, "connection lost (last will)");  // else by timeout
  }
  Outbox none;
  flush(none);  // hands the change to the listener
}

void Controller::set_shard_owned(uint32_t shard_number, bool owned) {
  Shard& shard = *shards_[shards_.size() == 1 ? 0 : shard_number % shards_.size()];
  std::lock_guard lock(*shard.mu);
  shard.live.clear();
  shard.startups.clear();
  shard.owned = owned;
  if (!owned) return;
  auto nodes = shard.store->list_nodes();
  if (!nodes)
    return store_failed("load the nodes of shard " + std::to_string(shard_number), nodes.error());
  start_liveness_locked(shard, *nodes, clock_.now());
  log_->info("shard {} taken nodes={}", shard_number, nodes->size());
}

void Controller::tick() {
  for (auto& shard : shards_) {
    std::lock_guard lock(*shard->mu);
    if (shard->owned) mark_silent_not_ready(*shard);
    forget_stale_startups_locked(*shard);
  }
  Outbox out;
  {
    auto locks = lock_all();
    evict_due_locked(out);
  }
  flush(out);
  reschedule_if_wanted();  // also ends a wait for rebuilt shards that is over
}

void Controller::mark_silent_not_ready(Shard& shard) {
  const TimePoint now = clock_.now();
  // Every stored node has a Live entry (start() and on_hello() make them); only nodes whose
  // last message is older than the timeout are read, once per silence.
  for (auto& [name, live] : shard.live) {
    if (live.timed_out || now - live.last_seen <= options_.node_timeout) continue;
    live.timed_out = true;
    auto node = shard.store->get_node(name);
    if (!node) {
      store_failed("read node '" + name + "'", node.error());
      live.timed_out = false;  // read again at the next tick
      continue;
    }
    if (*node && (*node)->ready) {
      const std::string why = "no message for " + seconds_text(options_.node_timeout);
      // Not written (a store error, or the lease fence): tried again at the next tick.
      if (!set_not_ready_locked(shard, **node, why)) live.timed_out = false;
    }
  }
}

void Controller::evict_due_locked(Outbox& out) {
  const TimePoint now = clock_.now();
  std::vector<std::pair<Live*, Millis>> not_ready;  // and how long
  for (auto& shard : shards_) {
    for (auto& [name, live] : shard->live) {
      if (live.not_ready_since) {
        not_ready.push_back(
            {&live, std::chrono::duration_cast<Millis>(now - *live.not_ready_since)});
      }
    }
  }
  if (not_ready.empty()) return;
  auto workloads = control_.list_workloads();
  if (!workloads) return store_failed("list workloads", workloads.error());
  std::set<int64_t> thresholds;  // evictAfterSeconds in use, in ms
  for (const auto& w : *workloads) {
    auto m = manifest_locked(w);
    if (m && (*m)->evict_after_seconds) thresholds.insert(*(*m)->evict_after_seconds * 1000);
  }
  bool due = false;
  for (auto& [live, elapsed] : not_ready) {
    // The scheduler evicts once a node has been NotReady for longer than the threshold.
    auto first = thresholds.lower_bound(live->evict_checked.count());
    if (first != thresholds.end() && *first < elapsed.count()) due = true;
    live->evict_checked = elapsed;
  }
  if (!due) return;
  std::set<std::string> changed;
  Status st = reschedule_locked(changed, false);
  if (!st) return store_failed("reschedule after evictAfterSeconds", st.error());
  log_->info("evicted instances from NotReady nodes; nodes changed={}", changed.size());
  queue_desired_for_locked(changed, out);
}

Expected<bool> Controller::delete_node(const std::string& name) {
  Outbox out;
  bool found = false;
  {
    auto locks = lock_all();
    Shard& shard = shard_of(name);
    std::set<std::string> changed;
    Status st = shard.store->transaction([&]() -> Status {
      auto existing = shard.store->get_node(name);
      if (!existing) return existing.error();
      if (!*existing) return Ok();
      found = true;
      if (auto del = shard.store->delete_node(name); !del) return del;
      return event_locked(name, "node/" + name, "Deleted",
                          "node deleted; its workloads are placed elsewhere");
    });
    // Its placements go in the pass that follows (start() repeats it after a crash).
    if (st && found) st = reschedule_locked(changed, /*specs_changed=*/false);
    if (!st) {
      store_failed("delete node '" + name + "'", st.error());
      return st.error().WithContext("Failed to delete node '" + name + "'");
    }
    if (found) {
      note_changed(Change::Kind::kNode, name);
      shard.live.erase(name);
      for (auto it = shard.startups.lower_bound({name, ""});
           it != shard.startups.end() && it->first.first == name;) {
        it = shard.startups.erase(it);
      }
      log_->info("node deleted node={}", name);
    }
    queue_desired_for_locked(changed, out);
  }
  flush(out);
  return found;
}

}  // namespace flotilla::hub
