// Controller: JSON views of nodes, workloads and events for the REST API, and gauges.
#include <algorithm>
#include <ctime>

#include "cloud-hub/controller.hpp"
#include "cloud-hub/quantity.hpp"

namespace flotilla::hub {
namespace {

namespace pb = flotilla::v1;
using json = nlohmann::json;

std::map<std::string, std::vector<InstanceRecord>> instances_by_workload(
    std::vector<InstanceRecord> all) {
  std::map<std::string, std::vector<InstanceRecord>> out;
  for (auto& rec : all) out[rec.status.workload()].push_back(std::move(rec));
  return out;
}

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
                   const std::vector<InstanceRecord>& instances) {
  json j = json::parse(w.manifest, nullptr, false);
  if (!j.is_object()) j = {{"metadata", {{"name", w.name}}}};
  j["metadata"]["generation"] = w.generation;
  j["metadata"]["creationTimestamp"] = format_time(w.created_ms);
  j["metadata"]["updateTimestamp"] = format_time(w.updated_ms);
  json list = json::array();
  std::set<std::string> running_nodes;
  for (const auto& rec : instances) {
    list.push_back(instance_json(rec, w.spec_hash));
    // Ready: running and, when the agent reports readiness, passing its readiness probe.
    bool ready = rec.status.phase() == pb::PHASE_RUNNING &&
                 (!rec.status.has_ready() || rec.status.ready());
    if (ready && placed.count(rec.node) > 0) running_nodes.insert(rec.node);
  }
  j["status"] = {
      {"specHash", w.spec_hash},
      {"desiredInstances", placed.size() + static_cast<size_t>(std::max<int64_t>(w.pending, 0))},
      {"readyInstances", running_nodes.size()},
      {"pending", w.pending},
      {"pendingReason", w.pending_reason},
      {"nodes", placed},
      {"instances", list}};
  return j;
}

bool labels_match(const std::map<std::string, std::string>& selector,
                  const std::map<std::string, std::string>& labels) {
  for (const auto& [k, v] : selector) {
    auto it = labels.find(k);
    if (it == labels.end() || it->second != v) return false;
  }
  return true;
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
  std::lock_guard lock(mu_);
  auto nodes = store_.list_nodes();
  if (!nodes) return nodes.error();
  auto instances = store_.list_instances();
  if (!instances) return instances.error();
  auto placements = store_.placements();
  if (!placements) return placements.error();
  auto [shown, next] = page(*nodes, options, [](const NodeRecord& n) { return n.labels; });
  json items = json::array();
  for (const NodeRecord* n : shown) {
    items.push_back(node_json_locked(*n, *instances, *placements, false));
  }
  return json{{"items", items}, {"continue", next}};
}

Expected<std::optional<json>> Controller::node_view(const std::string& name) {
  std::lock_guard lock(mu_);
  auto node = store_.get_node(name);
  if (!node) return node.error();
  if (!*node) return std::optional<json>();
  auto instances = store_.list_instances();
  if (!instances) return instances.error();
  auto placements = store_.placements();
  if (!placements) return placements.error();
  return std::optional<json>(node_json_locked(**node, *instances, *placements, true));
}

json Controller::node_json_locked(const NodeRecord& n, const std::vector<InstanceRecord>& instances,
                                  const std::map<std::string, std::set<std::string>>& placements,
                                  bool detail) {
  json j = {
      {"name", n.name},
      {"labels", n.labels},
      {"capacity",
       {{"cpu", format_cpu_millis(n.cpu_millis)}, {"memory", format_memory_bytes(n.memory_bytes)}}},
      {"arch", n.arch},
      {"runtimes", n.runtimes},
      {"taints", taints_json(n.taints)},
      {"state", n.ready ? "Ready" : "NotReady"},
      {"agentVersion", n.agent_version},
      {"protocolVersion", n.protocol_version},
      {"bootId", n.boot_id},
      {"registeredAt", format_time(n.registered_ms)},
      {"lastSeenAt", format_time(n.last_seen_ms)},
      {"revision", n.revision},
      {"ackedRevision", n.acked_revision}};
  auto live = live_.find(n.name);
  if (live != live_.end() && live->second.last_seen != TimePoint{}) {
    j["lastSeenSecondsAgo"] =
        std::chrono::duration_cast<std::chrono::seconds>(clock_.now() - live->second.last_seen)
            .count();
  } else {
    j["lastSeenSecondsAgo"] = nullptr;
  }
  json workloads = json::array();
  for (const auto& [workload, nodes] : placements) {
    if (nodes.count(n.name) > 0) workloads.push_back(workload);
  }
  j["workloads"] = workloads;
  int64_t count = 0;
  json list = json::array();
  for (const auto& rec : instances) {
    if (rec.node != n.name) continue;
    ++count;
    if (detail) {
      json one = instance_json(rec, "");
      one.erase("current");
      one["workload"] = rec.status.workload();
      list.push_back(one);
    }
  }
  j["instances"] = count;
  if (detail) j["instanceStatus"] = list;
  return j;
}

Expected<json> Controller::workloads_view(const ListOptions& options) {
  std::lock_guard lock(mu_);
  auto workloads = store_.list_workloads();
  if (!workloads) return workloads.error();
  auto placements = store_.placements();
  if (!placements) return placements.error();
  auto instances = store_.list_instances();
  if (!instances) return instances.error();
  auto by_workload = instances_by_workload(std::move(*instances));
  auto [shown, next] = page(*workloads, options, workload_labels);
  json items = json::array();
  for (const WorkloadRecord* w : shown) {
    items.push_back(workload_json(*w, (*placements)[w->name], by_workload[w->name]));
  }
  return json{{"items", items}, {"continue", next}};
}

Expected<std::optional<json>> Controller::workload_view(const std::string& name) {
  std::lock_guard lock(mu_);
  auto w = store_.get_workload(name);
  if (!w) return w.error();
  if (!*w) return std::optional<json>();
  auto placements = store_.placements();
  if (!placements) return placements.error();
  auto instances = store_.list_instances();
  if (!instances) return instances.error();
  auto by_workload = instances_by_workload(std::move(*instances));
  return std::optional<json>(workload_json(**w, (*placements)[name], by_workload[name]));
}

Expected<json> Controller::events_view(const EventFilter& filter) {
  std::lock_guard lock(mu_);
  auto events = store_.list_events(filter);
  if (!events) return events.error();
  json items = json::array();
  for (const auto& e : *events) {
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
  std::lock_guard lock(mu_);
  std::string out;
  auto c = store_.counts();
  if (!c) {
    metrics_.count("flotilla_hub_store_errors_total");
    return out;
  }
  out += "# TYPE flotilla_hub_nodes gauge\n";
  out += "flotilla_hub_nodes{state=\"Ready\"} " + std::to_string(c->ready_nodes) + "\n";
  out +=
      "flotilla_hub_nodes{state=\"NotReady\"} " + std::to_string(c->nodes - c->ready_nodes) + "\n";
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
