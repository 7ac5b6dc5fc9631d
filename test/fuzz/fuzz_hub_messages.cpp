// fuzz_hub_messages: a hub (Controller + SyncServer, in-memory store) over FakeBroker, fed a
// sequence of up messages on topics chosen by the input (canonical, wrong shard, down direction
// or free), plus clock ticks and workload changes; see fuzz_inputs.hpp for the grammar.
//
// Invariants after every step: nothing crashes or throws; no node's desired revision decreases;
// every DesiredState the hub sends fits the size cap and passes the agent's validation for its
// node. Every message the hub receives is dropped exactly when its topic does not parse as an up
// topic of the right shard, its payload is oversized or undecodable, or the payload's node
// differs from the topic's; then it is counted once in flotilla_hub_messages_dropped_total with
// that reason, logged, changes nothing in the store and makes the hub send nothing. Device twins:
// no device's desired or reported version decreases; stored documents parse as twin documents;
// every TwinDesired the hub sends is for its topic's node and carries valid documents. After every
// input the store answers what the REST API and the protocol ask (nodes, workloads, instances,
// events, desired rows and messages, devices) and the API's views render.
#include <fuzzer/FuzzedDataProvider.h>

#include <cstddef>
#include <cstdint>
#include <limits>
#include <map>
#include <string>
#include <type_traits>

#include "agent/desired_validation.hpp"
#include "common/twin.hpp"
#include "test/fuzz/fuzz_check.hpp"
#include "test/fuzz/fuzz_inputs.hpp"
#include "test/fuzz/hub_rig.hpp"
#include "test/fuzz/message_builders.hpp"

namespace flotilla::fuzz {
namespace {

constexpr const char* kDropped = "flotilla_hub_messages_dropped_total";

LogCounter& sync_log() {
  static auto counter = count_warnings_of("sync");
  return *counter;
}

struct HubState {
  std::string digest;  // everything a dropped message must leave alone
  std::map<std::string, uint64_t> revisions;
  std::map<std::string, std::pair<uint64_t, uint64_t>> twins;  // device -> desired, reported v.
  uint64_t dropped = 0;
  uint64_t warnings = 0;
};

uint64_t dropped_total(const hub::Metrics& metrics) {
  // Sum over every {kind, reason} series of the counter in the Prometheus rendering.
  uint64_t total = 0;
  const std::string text = metrics.render();
  const std::string prefix = std::string(kDropped) + "{";
  for (size_t pos = 0; (pos = text.find(prefix, pos)) != std::string::npos;) {
    size_t end = text.find('\n', pos);
    size_t space = text.rfind(' ', end);
    total += std::stoull(text.substr(space + 1, end - space - 1));
    pos = end;
  }
  return total;
}

// Reads what a dropped message must leave alone; any failure to read is a finding.
HubState observe(HubRig& rig) {
  HubState s;
  auto& store = rig.store();
  auto nodes = store.list_nodes();
  FUZZ_CHECK(nodes.ok(), "list_nodes: " + nodes.error().message());
  for (const auto& n : *nodes) {
    s.revisions[n.name] = n.revision;
    s.digest += n.name + "|" + n.arch + "|" + n.boot_id + "|" + n.agent_version + "|" +
                std::to_string(n.ready) + "|" + std::to_string(n.last_seen_ms) + "|" +
                std::to_string(n.revision) + "|" + std::to_string(n.acked_revision) + "|" +
                std::to_string(n.compacted_floor) + "|" + std::to_string(n.status_seq) + "\n";
    auto rows = store.desired_for_node(n.name);
    FUZZ_CHECK(rows.ok(), "desired_for_node: " + rows.error().message());
    for (const auto& r : *rows) s.digest += r.workload + "@" + std::to_string(r.revision) + "\n";
  }
  auto workloads = store.list_workloads();
  FUZZ_CHECK(workloads.ok(), "list_workloads: " + workloads.error().message());
  for (const auto& w : *workloads) {
    s.digest +=
        w.name + "#" + std::to_string(w.generation) + "#" + std::to_string(w.pending) + "\n";
  }
  auto instances = store.list_instances();
  FUZZ_CHECK(instances.ok(), "list_instances: " + instances.error().message());
  for (const auto& i : *instances) s.digest += i.node + "/" + i.status.SerializeAsString() + "\n";
  hub::EventFilter newest;
  newest.limit = 1;
  auto events = store.list_events(newest);
  FUZZ_CHECK(events.ok(), "list_events: " + events.error().message());
  if (!events->empty()) s.digest += "event " + std::to_string(events->back().id) + "\n";
  auto devices = store.list_devices();
  FUZZ_CHECK(devices.ok(), "list_devices: " + devices.error().message());
  for (const auto& d : *devices) {
    s.twins[d.name] = {d.desired_version, d.reported_version};
    s.digest += "device " + d.name + "@" + d.node + " " + d.desired + " v" +
                std::to_string(d.desired_version) + " " + d.reported + " v" +
                std::to_string(d.reported_version) + " o" + std::to_string(d.observed_desired) +
                "\n";
    for (const auto* doc : {&d.desired, &d.reported}) {
      auto parsed = twin::parse(*doc, "stored");
      FUZZ_CHECK(parsed.ok() && parsed->is_object() && twin::canonical(*parsed) == *doc,
                 "device " + d.name + " holds a document that is not canonical twin JSON: " + *doc);
    }
  }
  s.dropped = dropped_total(rig.metrics());
  s.warnings = sync_log().warnings();
  return s;
}

// After each input: what the REST API and the sync protocol read still works (and renders).
void check_queryable(HubRig& rig) {
  auto nodes = rig.store().list_nodes();
  FUZZ_CHECK(nodes.ok(), "list_nodes: " + nodes.error().message());
  for (const auto& n : *nodes) {
    auto msg = rig.store().desired_message(n);
    FUZZ_CHECK(msg.ok(), "desired_message(" + n.name + "): " + msg.error().message());
    auto view = rig.controller().node_view(n.name);
    FUZZ_CHECK(view.ok() && view->has_value(), "node_view(" + n.name + ") failed");
    (void)(*view)->dump();  // throws on what the API could not render
  }
  auto nodes_view = rig.controller().nodes_view();
  FUZZ_CHECK(nodes_view.ok(), "nodes_view: " + nodes_view.error().message());
  (void)nodes_view->dump();
  auto workloads_view = rig.controller().workloads_view();
  FUZZ_CHECK(workloads_view.ok(), "workloads_view: " + workloads_view.error().message());
  (void)workloads_view->dump();
  auto devices_view = rig.controller().devices_view();
  FUZZ_CHECK(devices_view.ok(), "devices_view: " + devices_view.error().message());
  for (const auto& d : (*devices_view)["items"]) {
    auto one = rig.controller().device_view(d["name"].get<std::string>());
    FUZZ_CHECK(one.ok() && one->has_value(), "device_view(" + d["name"].dump() + ") failed");
    (void)(*one)->dump();
  }
  auto events_view = rig.controller().events_view({});
  FUZZ_CHECK(events_view.ok(), "events_view: " + events_view.error().message());
  (void)events_view->dump();
  (void)rig.controller().gauges_text();
  (void)rig.metrics().render();
}

// Checks the down messages the hub sent during the step and returns how many there were (not
// counting `mine`, our own publish, which the recording client also hears on a down topic).
size_t check_sent(const HubRig& rig, const sync::Message& mine) {
  size_t sent = 0;
  bool skipped_mine = false;
  for (const auto& m : rig.down_messages()) {
    if (!skipped_mine && m.topic == mine.topic && m.payload == mine.payload) {
      skipped_mine = true;
      continue;
    }
    ++sent;
    FUZZ_CHECK(m.payload.size() <= sync::kMaxMessageBytes, "hub sent an oversized message");
    auto topic = sync::parse_topic(m.topic);
    FUZZ_CHECK(topic.ok(), "hub sent on a bad topic '" + m.topic + "'");
    if (topic->kind == "twin") {
      auto t = sync::decode<v1::TwinDesired>(m.payload);
      FUZZ_CHECK(t.ok() && t->node() == topic->node, "hub sent a bad TwinDesired to " + m.topic);
      for (const auto& d : t->devices()) {
        if (d.removed()) continue;
        auto doc = twin::parse(d.desired(), "desired");
        FUZZ_CHECK(doc.ok(), "hub sent device " + d.device() + " an invalid desired document");
      }
      continue;
    }
    if (topic->kind != "desired") continue;
    auto d = sync::decode<v1::DesiredState>(m.payload);
    FUZZ_CHECK(d.ok(), "hub sent an undecodable DesiredState");
    auto valid = agent::validate_desired(*d, topic->node);
    FUZZ_CHECK(valid.ok(), "hub sent a DesiredState its agent rejects: " +
                               (valid ? "" : valid.error().message()));
  }
  return sent;
}

void check_every_step(const HubState& before, const HubState& after) {
  for (const auto& [node, revision] : before.revisions) {
    auto it = after.revisions.find(node);
    FUZZ_CHECK(it != after.revisions.end(), "node '" + node + "' vanished");
    FUZZ_CHECK(it->second >= revision, "desired revision of '" + node + "' went back from " +
                                           std::to_string(revision) + " to " +
                                           std::to_string(it->second));
  }
  for (const auto& [device, versions] : before.twins) {
    auto it = after.twins.find(device);
    if (it == after.twins.end()) continue;  // deleted (kChangeDevices)
    FUZZ_CHECK(it->second.first >= versions.first && it->second.second >= versions.second,
               "a version of device '" + device + "' went back: desired " +
                   std::to_string(versions.first) + " -> " + std::to_string(it->second.first) +
                   ", reported " + std::to_string(versions.second) + " -> " +
                   std::to_string(it->second.second));
  }
  FUZZ_CHECK(after.warnings - before.warnings >= after.dropped - before.dropped,
             "a dropped message was not logged");
}

// "" when the payload decodes as M for `node`, else the drop reason.
template <typename M>
std::string payload_problem(const std::string& payload, const std::string& node) {
  M msg;
  if (!msg.ParseFromArray(payload.data(), static_cast<int>(payload.size()))) return "malformed";
  if (msg.node() != node) return "node_mismatch";
  constexpr auto kMaxRevision = static_cast<uint64_t>(std::numeric_limits<int64_t>::max());
  if constexpr (std::is_same_v<M, v1::Hello>) {
    if (msg.acked_revision() > kMaxRevision) return "bad_revision";
    // Versions in common: ours are kMinProtocolVersion..kProtocolVersion (desired_parts.hpp).
    const uint32_t min =
        msg.min_protocol_version() == 0 ? msg.protocol_version() : msg.min_protocol_version();
    if (min > msg.protocol_version() || msg.protocol_version() < sync::kMinProtocolVersion ||
        min > sync::kProtocolVersion) {
      return "unsupported_version";
    }
  } else if constexpr (std::is_same_v<M, v1::Heartbeat>) {
    if (msg.acked_revision() > kMaxRevision) return "bad_revision";
  } else if constexpr (std::is_same_v<M, v1::Ack>) {
    if (msg.revision() > kMaxRevision) return "bad_revision";
  }
  return "";
}

// The reason the hub must drop this message with ("" when it must take it), by the rules of
// docs/protocol.md and the metric's documented reasons.
std::string must_drop(const std::string& topic_text, const std::string& payload) {
  auto topic = sync::parse_topic(topic_text);
  if (!topic) return "bad_topic";
  if (topic->direction != sync::Direction::kUp) return "bad_topic";
  if (topic->shard != sync::shard_of(topic->node, HubRig::kShards)) return "wrong_shard";
  if (payload.size() > sync::kMaxMessageBytes) return "too_large";
  const std::string& k = topic->kind;
  const std::string& n = topic->node;
  if (k == "hello") return payload_problem<v1::Hello>(payload, n);
  if (k == "heartbeat") return payload_problem<v1::Heartbeat>(payload, n);
  if (k == "ack") return payload_problem<v1::Ack>(payload, n);
  if (k == "status") return payload_problem<v1::StatusBatch>(payload, n);
  if (k == "will") return payload_problem<v1::Offline>(payload, n);
  if (k == "twin") return payload_problem<v1::TwinReported>(payload, n);
  return "bad_topic";
}

std::string make_topic(FuzzedDataProvider& in, const std::string& node, const std::string& kind) {
  const auto form = static_cast<TopicForm>(in.ConsumeIntegralInRange<uint8_t>(0, kTopicFormLast));
  const uint32_t shard = sync::shard_of(node, HubRig::kShards);
  switch (form) {
    case TopicForm::kCanonical:
      return sync::up_topic(node, HubRig::kShards, kind);
    case TopicForm::kWrongShard:
      return sync::make_topic({(shard + 1) % HubRig::kShards, node, sync::Direction::kUp, kind});
    case TopicForm::kDown:
      return sync::down_topic(node, HubRig::kShards, kind);
    case TopicForm::kFree:
      break;
  }
  return in.ConsumeRandomLengthString(kMaxFreeString * 2);
}

void send(HubRig& rig, FuzzedDataProvider& in, HubOp op, HubState& state) {
  const std::string node = pick(in, kHubNodes);
  const std::string kind = pick(in, kUpKinds);
  const std::string topic = make_topic(in, node, kind);
  std::string payload;
  if (op == HubOp::kRaw) {
    payload = in.ConsumeRandomLengthString(kMaxRawPayload);
  } else {
    uint64_t revision = 0;
    uint64_t seq = 0;
    if (auto known = rig.store().get_node(node); known.ok() && known->has_value()) {
      revision = (*known)->revision;
      seq = (*known)->status_seq;
    }
    const auto type = static_cast<UpType>(in.ConsumeIntegralInRange<uint8_t>(0, kUpTypeLast));
    payload = build_up(in, type, node, revision, seq);
    if (op == HubOp::kOversized) {
      payload = pad_to_cap(std::move(payload), in.ConsumeIntegralInRange<int>(-2, 2));
    }
  }
  bool delivered = false;
  for (uint32_t k = 0; k < HubRig::kShards && !delivered; ++k) {
    delivered = sync::topic_matches(sync::shard_up_filter(k), topic);
  }
  const std::string why = delivered ? must_drop(topic, payload) : "";
  auto parsed = sync::parse_topic(topic);
  const hub::MetricLabels series = {{"kind", parsed ? parsed->kind : "unknown"}, {"reason", why}};
  const HubState before = std::move(state);
  const uint64_t series_before = rig.metrics().value(kDropped, series);
  rig.clear_down();
  FUZZ_CHECK(rig.publish(topic, payload), "the broker refused a publish");
  const HubState after = observe(rig);
  check_every_step(before, after);
  const size_t sent = check_sent(rig, {topic, payload});
  const uint64_t dropped = after.dropped - before.dropped;
  FUZZ_CHECK(dropped == (why.empty() ? 0u : 1u),
             "topic '" + topic + "' (" + std::to_string(payload.size()) + " bytes): want " +
                 (why.empty() ? "no drop" : "a drop (" + why + ")") + ", got " +
                 std::to_string(dropped));
  if (!why.empty()) {
    FUZZ_CHECK(rig.metrics().value(kDropped, series) == series_before + 1,
               "the drop was not counted as " + hub::render_labels(series));
    FUZZ_CHECK(after.digest == before.digest,
               "a dropped message changed the store:\n" + before.digest + "->\n" + after.digest);
    FUZZ_CHECK(sent == 0, "a dropped message made the hub send something");
  }
  state = after;
}

// What a REST client does to the rig's devices. A set with a stale ifVersion is refused and
// changes nothing.
void change_devices(HubRig& rig, FuzzedDataProvider& in, const HubState& state) {
  auto& c = rig.controller();
  const std::string device = in.ConsumeBool() ? "dev-2" : "dev-1";
  switch (in.ConsumeIntegralInRange<int>(0, 3)) {
    case 0: {
      auto r = c.set_device_desired(device, {{"rate", in.ConsumeIntegralInRange<int>(0, 3)}}, {});
      FUZZ_CHECK(r.ok(), "set_device_desired: " + (r ? "" : r.error().message()));
      return;
    }
    case 1: {
      auto it = state.twins.find(device);
      if (it == state.twins.end()) return;
      auto r = c.set_device_desired(device, {{"rate", 9}}, it->second.first + 1);
      FUZZ_CHECK(r.ok() && r->code == hub::DeviceOutcome::Code::kConflict,
                 "a stale ifVersion was not refused");
      FUZZ_CHECK(observe(rig).digest == state.digest, "a refused set changed the store");
      return;
    }
    case 2: {
      auto r = c.delete_device(device);
      FUZZ_CHECK(r.ok(), "delete_device: " + (r ? "" : r.error().message()));
      return;
    }
    default:
      rig.put_device(device, device == "dev-1" ? R"({"node": "edge-1", "desired": {"rate": 2}})"
                                               : R"({"node": "edge-2"})");
      return;
  }
}

void step(HubRig& rig, FuzzedDataProvider& in, HubState& state) {
  const auto op = static_cast<HubOp>(in.ConsumeIntegralInRange<uint8_t>(0, kHubOpLast));
  switch (op) {
    case HubOp::kRaw:
    case HubOp::kBuilt:
    case HubOp::kOversized:
      return send(rig, in, op, state);
    case HubOp::kAdvanceClock:
    case HubOp::kChangeWorkloads:
    case HubOp::kChangeDevices: {
      rig.clear_down();
      if (op == HubOp::kChangeDevices) {
        change_devices(rig, in, state);
      } else if (op == HubOp::kAdvanceClock) {
        rig.advance(Millis(in.ConsumeIntegralInRange<int64_t>(0, 60000)));
      } else if (const int change = in.ConsumeIntegralInRange<int>(0, 3); change == 0) {
        auto deleted = rig.controller().delete_workload("web");
        FUZZ_CHECK(deleted.ok(), "delete_workload: " + deleted.error().message());
      } else {
        auto manifests = HubRig::workloads();
        manifests[1].replicas = change - 1;  // "web"
        rig.apply(manifests);
      }
      HubState after = observe(rig);
      check_every_step(state, after);
      check_sent(rig, {});
      state = std::move(after);
      return;
    }
  }
}

}  // namespace
}  // namespace flotilla::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace flotilla::fuzz;
  static const bool initialised = [] {
    (void)sync_log();  // route the logs before the first hub is made
    (void)count_warnings_of("hub");
    quiet_protobuf();
    return true;
  }();
  (void)initialised;
  FuzzedDataProvider in(data, size);
  HubRig rig;
  HubState state = observe(rig);
  for (int i = 0; i < kMaxSteps && in.remaining_bytes() > 0; ++i) step(rig, in, state);
  check_queryable(rig);
  return 0;
}
