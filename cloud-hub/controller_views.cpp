// Controller: JSON views of nodes, workloads and events for the REST API, and gauges.
#include <algorithm>
#include <ctime>

#include "cloud-hub/controller.hpp"
#include "cloud-hub/labels.hpp"
#include "cloud-hub/quantity.hpp"
#include "sync/topics.hpp"

namespace flotilla::hub {
namespace {

namespace pb = flotilla::v1;
using json = nlohmann::json;

json instance_json(const InstanceRecord& rec, const std::string& want_hash) {
  const pb::InstanceStatus& s = rec.status;
  json j = {{"node", rec.node},
            {"instanceId", s.instance_id()},
            {"phase", phase_name(s.phase())},
            {"restarts", s.restarts()},
            {"exitCode", s.exit_code()},
            {"pid", s.pid()},
            {"message", s.message()},
            {"specHash", s.spec_hash()},
            {"current", !want_hash.empty() && s.spec_hash() == want_hash},
            {"updatedAt", format_time(rec.updated_ms)}};
  if (s.started_unix_ms() > 0) j["startedAt"] = format_time(s.started_unix_ms());
  if (s.has_ready()) j["ready"] = s.ready();
  if (!s.reason().empty()) j["reason"] = s.reason();
  return j;
}

json workload_json(const WorkloadRecord& w, const std::set<std::string>& placed,
                   const std::vector<InstanceRecord>& instances, Controller::Detail detail) {
  const bool full = detail == Controller::Detail::kFull;
  json j = json::parse(w.manifest, nullptr, false);
  if (!j.is_object()) j = {{"metadata", {{"name", w.name}}}};
  j["metadata"]["generation"] = w.generation;
  j["metadata"]["creationTimestamp"] = format_time(w.created_ms);
  j["metadata"]["updateTimestamp"] = format_time(w.updated_ms);
  json list = json::array();
  std::set<std::string> running_nodes;
  std::map<std::string, size_t> by_phase;
  for (const auto& rec : instances) {
    by_phase[phase_name(rec.status.phase())] += 1;
    if (full) list.push_back(instance_json(rec, w.spec_hash));
    // Ready: running and, when the agent reports readiness, passing its readiness probe.
    bool ready =
        rec.status.phase() == pb::PHASE_RUNNING && (!rec.status.has_ready() || rec.status.ready());
    if (ready && placed.count(rec.node) > 0) running_nodes.insert(rec.node);
  }
  j["status"] = {
      {"specHash", w.spec_hash},
      {"desiredInstances", placed.size() + static_cast<size_t>(std::max<int64_t>(w.pending, 0))},
      {"readyInstances", running_nodes.size()},
      {"pending", w.pending},
      {"pendingReason", w.pending_reason},
      {"placedNodes", placed.size()},
      {"instancesByPhase", by_phase}};
  if (full) {
    j["status"]["nodes"] = placed;
    j["status"]["instances"] = std::move(list);
  }
  return j;
}

// Pages `records` (sorted by name) by `options`: the ones to show, and the continue token.
template <typename Record, typename LabelsOf>
std::pair<std::vector<const Record*>, std::string> page(const std::vector<Record>& records,
                                                        const ListOptions& options,
                                                        const LabelsOf& labels_of) {
  std::vector<const Record*> out;
  for (const auto& r : records) {
    if (!options.after.empty() && r.name <= options.after) continue;
    if (!labels_match(options.selector, labels_of(r))) continue;
    if (options.limit > 0 && static_cast<int64_t>(out.size()) == options.limit) {
      return {out, list_token(out.back()->name)};  // more follow
    }
    out.push_back(&r);
  }
  return {out, ""};
}

std::map<std::string, std::string> workload_labels(const WorkloadRecord& w) {
  std::map<std::string, std::string> out;
  auto j = json::parse(w.manifest, nullptr, false);
  if (!j.is_object() || !j.contains("metadata")) return out;
  const json& labels = j["metadata"].value("labels", json::object());
  if (!labels.is_object()) return out;
  for (const auto& [k, v] : labels.items()) {
    if (v.is_string()) out[k] = v.get<std::string>();
  }
  return out;
}

json taints_json(const std::vector<Taint>& taints) {
  json list = json::array();
  for (const auto& t : taints) {
    list.push_back({{"key", t.key}, {"value", t.value}, {"effect", t.effect}});
  }
  return list;
}

}  // namespace

std::string list_token(const std::string& name) {
  static const char* kHex = "0123456789abcdef";
  std::string out = "n";
  for (unsigned char c : name) {
    out += kHex[c >> 4];
    out += kHex[c & 0xf];
  }
  return out;
}

std::optional<std::string> list_token_decode(const std::string& token) {
  if (token.size() < 3 || token[0] != 'n' || token.size() % 2 != 1) return std::nullopt;
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
  };
  std::string out;
  for (size_t i = 1; i < token.size(); i += 2) {
    int hi = nibble(token[i]), lo = nibble(token[i + 1]);
    if (hi < 0 || lo < 0) return std::nullopt;
    out += static_cast<char>(hi * 16 + lo);
  }
  return out;
}

std::string phase_name(int phase) {
  switch (phase) {
    case pb::PHASE_PENDING:
      return "Pending";
    case pb::PHASE_STARTING:
      return "Starting";
    case pb::PHASE_RUNNING:
      return "Running";
    case pb::PHASE_SUCCEEDED:
      return "Succeeded";
    case pb::PHASE_FAILED:
      return "Failed";
    case pb::PHASE_BACKOFF:
      return "BackOff";
    case pb::PHASE_TERMINATING:
      return "Terminating";
    default:
      return "Unknown";
  }
}

std::string format_time(int64_t unix_ms) {
  if (unix_ms <= 0) return "";
  std::time_t t = static_cast<std::time_t>(unix_ms / 1000);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

Expected<json> Controller::nodes_view(const ListOptions& options) {
  // The shards' nodes merged by name. Each shard is read a chunk at a time and read again only
  // when its chunk is used up, so a page reads about `limit` nodes plus one chunk per shard:
  // reading (limit + 1) from every shard, most of them to be thrown away, was half the time of
  // a 500-node page over 16 shards (bench/RESULTS.md, "e.").
  struct Cursor {
    Shard* shard = nullptr;
    std::string after;  // where the next read starts
    std::vector<NodeRecord> rows;
    size_t next = 0;    // rows[next] is the shard's smallest node not yet taken
    bool more = false;  // the shard may have nodes after `after`
  };
  const int64_t want = options.limit > 0 ? options.limit + 1 : 0;  // one more: is there a next?
  const auto shard_count = static_cast<int64_t>(shards_.size());
  // A shard's share of a page, with room for the hash's unevenness.
  const int64_t chunk =
      want > 0 && shard_count > 1 ? want / shard_count + want / (4 * shard_count) + 8 : want;
  auto refill = [&](Cursor& c) -> Status {
    std::lock_guard lock(*c.shard->mu);
    auto nodes = c.shard->store->list_nodes_page(c.after, options.selector, chunk, options.ready);
    if (!nodes) return nodes.error();
    c.more = chunk > 0 && static_cast<int64_t>(nodes->size()) == chunk;
    if (!nodes->empty()) c.after = nodes->back().name;
    c.rows = std::move(*nodes);
    c.next = 0;
    return Ok();
  };
  std::vector<Cursor> cursors(shards_.size());
  for (size_t i = 0; i < shards_.size(); ++i) {
    cursors[i].shard = shards_[i].get();
    cursors[i].after = options.after;
    if (auto st = refill(cursors[i]); !st) return st.error();
  }
  std::vector<std::pair<NodeRecord, size_t>> found;  // by name, with its cursor
  while (want == 0 || static_cast<int64_t>(found.size()) < want) {
    Cursor* least = nullptr;
    size_t least_at = 0;
    for (size_t i = 0; i < cursors.size(); ++i) {
      Cursor& c = cursors[i];
      if (c.next == c.rows.size() && c.more) {
        if (auto st = refill(c); !st) return st.error();
      }
      if (c.next == c.rows.size()) continue;
      if (least == nullptr || c.rows[c.next].name < least->rows[least->next].name) {
        least = &c;
        least_at = i;
      }
    }
    if (least == nullptr) break;
    found.emplace_back(std::move(least->rows[least->next++]), least_at);
  }
  std::string next;
  if (options.limit > 0 && static_cast<int64_t>(found.size()) > options.limit) {
    found.resize(static_cast<size_t>(options.limit));
    next = list_token(found.back().first.name);
  }
  // Views shard by shard, under one lock each, then in name order.
  std::vector<json> views(found.size());
  for (size_t i = 0; i < cursors.size(); ++i) {
    std::lock_guard lock(*cursors[i].shard->mu);
    for (size_t k = 0; k < found.size(); ++k) {
      if (found[k].second == i) {
        views[k] = node_json_locked(*cursors[i].shard, found[k].first, false);
      }
    }
  }
  json items = json::array();
  for (auto& v : views) items.push_back(std::move(v));
  return json{{"items", std::move(items)}, {"continue", next}};
}

Expected<std::optional<json>> Controller::node_view(const std::string& name) {
  Shard& shard = shard_of(name);
  std::lock_guard lock(*shard.mu);
  auto node = shard.store->get_node(name);
  if (!node) return node.error();
  if (!*node) return std::optional<json>();
  return std::optional<json>(node_json_locked(shard, **node, true));
}

json Controller::node_json_locked(Shard& shard, const NodeRecord& n, bool detail) {
  json j = {
      {"name", n.name},
      {"labels", n.labels},
      {"capacity",
       {{"cpu", format_cpu_millis(n.cpu_millis)}, {"memory", format_memory_bytes(n.memory_bytes)}}},
      {"arch", n.arch},
      {"runtimes", n.runtimes},
      {"taints", taints_json(n.taints)},
      {"state", n.ready ? "Ready" : "NotReady"},
      {"shard", sync::shard_of(n.name, options_.shards)},
      {"agentVersion", n.agent_version},
      {"protocolVersion", n.protocol_version},
      {"bootId", n.boot_id},
      {"registeredAt", format_time(n.registered_ms)},
      {"lastSeenAt", format_time(n.last_seen_ms)},
      {"revision", n.revision},
      {"ackedRevision", n.acked_revision}};
  auto live = shard.live.find(n.name);
  if (live != shard.live.end() && live->second.last_seen != TimePoint{}) {
    j["lastSeenSecondsAgo"] =
        std::chrono::duration_cast<std::chrono::seconds>(clock_.now() - live->second.last_seen)
            .count();
  } else {
    j["lastSeenSecondsAgo"] = nullptr;
  }
  j["rejectedMessages"] = live != shard.live.end() ? live->second.rejected_messages : 0;
  j["hubKeys"] = live != shard.live.end() ? live->second.hub_keys : std::vector<std::string>{};
  // What the node is told to run (its desired state follows the placements).
  json workloads = json::array();
  if (auto rows = shard.store->desired_for_node(n.name); rows) {
    for (const auto& row : *rows) workloads.push_back(row.workload);
  } else {
    store_failed("read desired state of node '" + n.name + "'", rows.error());
  }
  j["workloads"] = workloads;
  auto instances = shard.store->instances_where("node", n.name);
  if (!instances) store_failed("read instances of node '" + n.name + "'", instances.error());
  const std::vector<InstanceRecord> none;
  const auto& list = instances ? *instances : none;
  j["instances"] = list.size();
  if (detail) {
    json status = json::array();
    for (const auto& rec : list) {
      json one = instance_json(rec, "");
      one.erase("current");
      one["workload"] = rec.status.workload();
      status.push_back(one);
    }
    j["instanceStatus"] = status;
  }
  return j;
}

Expected<std::map<std::string, std::vector<InstanceRecord>>> Controller::instances_of_locked(
    const std::vector<const WorkloadRecord*>& workloads) {
  std::map<std::string, std::vector<InstanceRecord>> out;
  // A long page reads every instance once; a short one asks per workload (by index).
  const bool all = workloads.size() > 32;
  for (auto& shard : shards_) {
    std::lock_guard lock(*shard->mu);
    if (all) {
      auto instances = shard->store->list_instances();
      if (!instances) return instances.error();
      for (auto& rec : *instances) out[rec.status.workload()].push_back(std::move(rec));
      continue;
    }
    for (const WorkloadRecord* w : workloads) {
      auto instances = shard->store->instances_where("workload", w->name);
      if (!instances) return instances.error();
      auto& list = out[w->name];
      std::move(instances->begin(), instances->end(), std::back_inserter(list));
    }
  }
  return out;
}

Expected<json> Controller::workloads_view(const ListOptions& options, Detail detail) {
  std::lock_guard lock(control_mu_);
  auto workloads = control_.list_workloads();
  if (!workloads) return workloads.error();
  auto placements = control_.fleet_placements();
  if (!placements) return placements.error();
  auto [shown, next] = page(*workloads, options, workload_labels);
  auto by_workload = instances_of_locked(shown);
  if (!by_workload) return by_workload.error();
  json items = json::array();
  for (const WorkloadRecord* w : shown) {
    items.push_back(workload_json(*w, (*placements)[w->name], (*by_workload)[w->name], detail));
    if (auto rollout = rollout_status(w->name); !rollout.empty()) {
      items.back()["status"]["update"] = rollout;
    }
  }
  return json{{"items", items}, {"continue", next}};
}

Expected<std::optional<json>> Controller::workload_view(const std::string& name, Detail detail) {
  std::lock_guard lock(control_mu_);
  auto w = control_.get_workload(name);
  if (!w) return w.error();
  if (!*w) return std::optional<json>();
  auto placed = control_.placements_of(name);
  if (!placed) return placed.error();
  auto by_workload = instances_of_locked({&**w});
  if (!by_workload) return by_workload.error();
  json j = workload_json(**w, *placed, (*by_workload)[name], detail);
  if (auto rollout = rollout_status(name); !rollout.empty()) j["status"]["update"] = rollout;
  return std::optional<json>(std::move(j));
}

Expected<json> Controller::events_view(const EventFilter& filter) {
  std::vector<EventRecord> events;
  auto read = [&](Store& store) -> Status {
    auto some = store.list_events(filter);
    if (!some) return some.error();
    std::move(some->begin(), some->end(), std::back_inserter(events));
    return Ok();
  };
  if (!filter.node.empty()) {
    Shard& shard = shard_of(filter.node);
    std::lock_guard lock(*shard.mu);
    if (auto st = read(*shard.store); !st) return st.error();
  } else {
    // Fleet-wide events are in control, node events in the shards: merged by time.
    {
      std::lock_guard lock(control_mu_);
      if (auto st = read(control_); !st) return st.error();
    }
    for (auto& shard : shards_) {
      if (shard->store == &control_) continue;
      std::lock_guard lock(*shard->mu);
      if (auto st = read(*shard->store); !st) return st.error();
    }
    std::stable_sort(events.begin(), events.end(), [](const EventRecord& a, const EventRecord& b) {
      return a.hub_ms < b.hub_ms;
    });
    if (filter.limit > 0 && static_cast<int64_t>(events.size()) > filter.limit) {
      events.erase(events.begin(), events.end() - filter.limit);
    }
  }
  json items = json::array();
  for (const auto& e : events) {
    items.push_back({{"id", e.id},
                     {"time", format_time(e.hub_ms)},
                     {"node", e.node},
                     {"object", e.object},
                     {"reason", e.reason},
                     {"message", e.message}});
  }
  return json{{"items", items}};
}

std::string Controller::gauges_text() {
  StoreCounts total;
  std::vector<int64_t> per_shard;
  {
    // An apply holds the control lock to its end (at 100,000 nodes, seconds): a scrape meanwhile
    // takes the control counts of the last scrape that could read them rather than wait, so the
    // shards' live counts (instances starting during the apply) are seen as they change.
    std::unique_lock lock(control_mu_, std::try_to_lock);
    if (lock.owns_lock()) {
      auto c = control_.counts();
      if (!c) {
        metrics_.count("flotilla_hub_store_errors_total");
        return "";
      }
      std::lock_guard counts(control_counts_mu_);
      control_counts_ = *c;
    }
    std::lock_guard counts(control_counts_mu_);
    total.workloads = control_counts_.workloads;
    total.pending_instances = control_counts_.pending_instances;
  }
  for (auto& shard : shards_) {
    std::lock_guard lock(*shard->mu);
    auto c = shard->store->counts();
    if (!c) {
      metrics_.count("flotilla_hub_store_errors_total");
      return "";
    }
    total.nodes += c->nodes;
    total.ready_nodes += c->ready_nodes;
    for (const auto& [phase, n] : c->instances_by_phase) total.instances_by_phase[phase] += n;
    per_shard.push_back(c->nodes);
  }
  const StoreCounts* c = &total;
  std::string out;
  out += "# TYPE flotilla_hub_nodes gauge\n";
  out += "flotilla_hub_nodes{state=\"Ready\"} " + std::to_string(c->ready_nodes) + "\n";
  out +=
      "flotilla_hub_nodes{state=\"NotReady\"} " + std::to_string(c->nodes - c->ready_nodes) + "\n";
  if (per_shard.size() > 1) {
    out += "# TYPE flotilla_hub_shard_nodes gauge\n";
    for (size_t i = 0; i < per_shard.size(); ++i) {
      out += "flotilla_hub_shard_nodes{shard=\"" + std::to_string(i) + "\"} " +
             std::to_string(per_shard[i]) + "\n";
    }
  }
  out += "# TYPE flotilla_hub_awaited_nodes gauge\n";
  out += "flotilla_hub_awaited_nodes " + std::to_string(awaited_nodes()) + "\n";
  out += "# TYPE flotilla_hub_workloads gauge\n";
  out += "flotilla_hub_workloads " + std::to_string(c->workloads) + "\n";
  out += "# TYPE flotilla_hub_pending_instances gauge\n";
  out += "flotilla_hub_pending_instances " + std::to_string(c->pending_instances) + "\n";
  std::map<std::string, int64_t> phases;
  for (int p = pb::Phase_MIN; p <= pb::Phase_MAX; ++p) phases[phase_name(p)] = 0;
  for (const auto& [phase, n] : c->instances_by_phase) phases[phase_name(phase)] += n;
  out += "# TYPE flotilla_hub_instances gauge\n";
  for (const auto& [phase, n] : phases) {
    out += "flotilla_hub_instances{phase=\"" + phase + "\"} " + std::to_string(n) + "\n";
  }
  return out;
}

}  // namespace flotilla::hub
