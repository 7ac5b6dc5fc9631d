// fuzz_agent_messages: a whole agent over FakeBroker, fed a sequence of down messages (and clock,
// broker and instance events) chosen by the input; see fuzz_inputs.hpp for the grammar.
//
// Invariants after every step: nothing crashes; the desired revision never decreases; the
// desired set and revision change only when a desired state was applied. For every desired
// message delivered, exactly one of rejected / duplicate / gap / applied is counted, and
//   - an oversized or undecodable payload is rejected, logged, and changes nothing;
//   - a rejected message changes nothing;
//   - an applied one sets the revision to its to_revision, leaves exactly the desired set that
//     snapshot / delta semantics give (docs/protocol.md), and is acked with that revision;
//   - a duplicate is re-acked with the agent's revision.
// Undecodable resync and hub/online payloads, and down messages of unknown kinds, are rejected
// and logged too.
// Device twins (down/twin from the hub, reports from devices on the local bridge topics): the
// twins in memory are the twins in the store, each a valid twin; no device's desired or
// reported version decreases; an undecodable or misaddressed TwinDesired is rejected and changes
// nothing; a listed device ends with at least the desired version it was sent; a device report
// is either rejected (answered on its `rejected` topic, nothing changed) or raises the device's
// reported version by one, or changes nothing; what goes up on twin is a TwinReported of ours.
#include <fuzzer/FuzzedDataProvider.h>

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>

#include "agent/twin_sync.hpp"
#include "common/twin.hpp"
#include "test/fuzz/agent_rig.hpp"
#include "test/fuzz/fuzz_check.hpp"
#include "test/fuzz/fuzz_inputs.hpp"
#include "test/fuzz/message_builders.hpp"

namespace flotilla::fuzz {
namespace {

using Desired = std::map<std::string, std::string>;  // workload -> serialized WorkloadSpec

// Map fields serialize in no particular order unless asked to.
std::string canonical(const v1::WorkloadSpec& spec) {
  std::string out;
  {
    google::protobuf::io::StringOutputStream stream(&out);
    google::protobuf::io::CodedOutputStream coded(&stream);
    coded.SetSerializationDeterministic(true);
    spec.SerializeToCodedStream(&coded);
  }
  return out;
}

struct State {
  uint64_t revision = 0;
  Desired desired;
  agent::SyncCounters counters;
  uint64_t warnings = 0;
  std::string twins;                                              // every twin, as text
  std::map<std::string, std::pair<uint64_t, uint64_t>> versions;  // desired, reported
  agent::TwinCounters twin_counters;
};

std::string twin_text(const std::string& device, const twin::Twin& t) {
  return device + " " + twin::canonical(t.desired()) + " v" + std::to_string(t.desired_version()) +
         " " + twin::canonical(t.reported()) + " v" + std::to_string(t.reported_version()) + " o" +
         std::to_string(t.observed_desired()) + "\n";
}

LogCounter& agent_log() {
  static auto counter = count_warnings_of("agent");
  return *counter;
}

State observe(AgentRig& rig) {
  State s;
  s.revision = rig.store().meta().desired_revision;
  auto loaded = rig.store().load_desired();
  FUZZ_CHECK(loaded.ok(), "cannot load the desired set: " + loaded.error().message());
  for (const auto& [name, spec] : *loaded) s.desired[name] = canonical(spec);
  s.counters = rig.sync().counters();
  s.warnings = agent_log().warnings();
  for (const auto& [device, t] : rig.twins().twins()) {
    s.twins += twin_text(device, t);
    s.versions[device] = {t.desired_version(), t.reported_version()};
    auto valid = twin::Twin::restore(twin::canonical(t.desired()), t.desired_version(),
                                     twin::canonical(t.reported()), t.reported_version(),
                                     t.observed_desired());
    FUZZ_CHECK(valid.ok(), "twin of " + device +
                               " is not a valid twin: " + (valid ? "" : valid.error().message()));
  }
  auto stored = rig.store().load_twins();
  FUZZ_CHECK(stored.ok(), "cannot load the twins: " + (stored ? "" : stored.error().message()));
  std::string stored_text;
  for (const auto& [device, t] : *stored) stored_text += twin_text(device, t);
  FUZZ_CHECK(stored_text == s.twins, "the twins in memory are not the stored ones:\n" + s.twins +
                                         "stored:\n" + stored_text);
  s.twin_counters = rig.twins().counters();
  return s;
}

std::string describe(const State& s) {
  std::string out = "revision=" + std::to_string(s.revision) + " desired={";
  for (const auto& [name, spec] : s.desired) out += name + " ";
  return out + "} rejected=" + std::to_string(s.counters.rejected_messages) +
         " duplicates=" + std::to_string(s.counters.duplicates) +
         " gaps=" + std::to_string(s.counters.gaps) +
         " applied=" + std::to_string(s.counters.applied);
}

// What the agent must have after applying `msg` on top of `before`.
Desired apply_model(const Desired& before, const v1::DesiredState& msg) {
  Desired out = msg.snapshot() ? Desired{} : before;
  for (const auto& spec : msg.upserts()) out[spec.name()] = canonical(spec);
  if (!msg.snapshot()) {
    for (const auto& name : msg.deletes()) out.erase(name);
  }
  return out;
}

void check_every_step(const State& before, const State& after) {
  FUZZ_CHECK(after.revision >= before.revision,
             "desired revision went back: " + describe(before) + " -> " + describe(after));
  if (after.counters.applied == before.counters.applied) {
    FUZZ_CHECK(
        after.revision == before.revision && after.desired == before.desired,
        "desired state changed without an apply: " + describe(before) + " -> " + describe(after));
  }
  const uint64_t rejected =
      after.counters.rejected_messages - before.counters.rejected_messages +
      after.twin_counters.rejected_messages - before.twin_counters.rejected_messages +
      after.twin_counters.reports_rejected - before.twin_counters.reports_rejected;
  FUZZ_CHECK(after.warnings - before.warnings >= rejected,
             "a rejected message was not logged: " + describe(after));
  for (const auto& [device, v] : before.versions) {
    auto it = after.versions.find(device);
    if (it == after.versions.end()) continue;  // forgotten (removed, or not in a full list)
    FUZZ_CHECK(
        it->second.first >= v.first && it->second.second >= v.second,
        "a twin version of " + device + " went back:\n" + before.twins + "->\n" + after.twins);
  }
}

// What the agent sent up on twin during the step: TwinReported messages of this node.
void check_twin_up(const AgentRig& rig) {
  for (const auto& r : rig.up<v1::TwinReported>("twin")) {
    FUZZ_CHECK(r.node() == AgentRig::kNode, "the agent reported twins of another node");
    for (const auto& d : r.devices()) {
      FUZZ_CHECK(twin::parse(d.reported(), "reported").ok(),
                 "the agent sent an invalid reported document of " + d.device());
    }
  }
}

// One down/twin payload delivered to the agent.
void check_twin_desired(const std::string& payload, const State& before, const State& after) {
  const uint64_t rejected =
      after.twin_counters.rejected_messages - before.twin_counters.rejected_messages;
  v1::TwinDesired msg;
  const bool decodes = payload.size() <= sync::kMaxMessageBytes &&
                       msg.ParseFromArray(payload.data(), static_cast<int>(payload.size()));
  const std::string what = "\n" + before.twins + "->\n" + after.twins;
  if (!decodes || msg.node() != AgentRig::kNode) {
    FUZZ_CHECK(rejected == 1, "an undecodable or misaddressed TwinDesired was not rejected");
    FUZZ_CHECK(after.twins == before.twins, "a rejected TwinDesired changed twins:" + what);
    return;
  }
  std::map<std::string, int> listed;
  for (const auto& d : msg.devices()) listed[d.device()] += 1;
  for (const auto& d : msg.devices()) {
    if (listed[d.device()] != 1 || d.removed() || !twin::parse(d.desired(), "desired").ok() ||
        !sync::validate_node_name(d.device()).ok() || d.desired_version() > twin::kMaxVersion) {
      continue;
    }
    auto it = after.versions.find(d.device());
    if (it == after.versions.end()) {
      // Only a full list that ends without it (its parts then name it nowhere) forgets it.
      FUZZ_CHECK(msg.full(), "device " + d.device() + " sent desired was forgotten:" + what);
      continue;
    }
    FUZZ_CHECK(it->second.first >= d.desired_version(),
               "device " + d.device() + " holds desired version " +
                   std::to_string(it->second.first) + " after being sent " +
                   std::to_string(d.desired_version()) + what);
  }
}

// One message a device published on the local broker.
void check_local(const AgentRig& rig, const std::string& device, const std::string& leaf,
                 const State& before, const State& after) {
  const uint64_t rejected =
      after.twin_counters.reports_rejected - before.twin_counters.reports_rejected;
  const std::string what = "\n" + before.twins + "->\n" + after.twins;
  if (!sync::validate_node_name(device).ok()) {
    FUZZ_CHECK(rejected == 1 && after.twins == before.twins,
               "a message of a device with an invalid name was taken:" + what);
    return;
  }
  if (leaf != "reported") {
    FUZZ_CHECK(rejected == 0 && after.twins == before.twins,
               "a device message on " + leaf + " changed twins:" + what);
    return;
  }
  if (rejected == 1) {
    FUZZ_CHECK(after.twins == before.twins, "a rejected report changed twins:" + what);
    bool answered = false;
    for (const auto& m : rig.local_messages()) {
      answered |= m.topic == agent::local_twin_topic(device, "rejected");
    }
    FUZZ_CHECK(answered, "a rejected report of " + device + " was not answered on 'rejected'");
    return;
  }
  FUZZ_CHECK(rejected == 0, "one report was rejected more than once");
  if (after.twins == before.twins) return;  // it changed nothing
  auto was = before.versions.find(device);
  const uint64_t reported_before = was == before.versions.end() ? 0 : was->second.second;
  auto now = after.versions.find(device);
  FUZZ_CHECK(
      now != after.versions.end() && now->second.second == reported_before + 1,
      "an accepted report of " + device + " did not raise its reported version by one:" + what);
}

// Checks the outcome of one delivered down/desired payload.
void check_desired(AgentRig& rig, const std::string& payload, const State& before,
                   const State& after) {
  const auto& b = before.counters;
  const auto& a = after.counters;
  const uint64_t rejected = a.rejected_messages - b.rejected_messages;
  const uint64_t duplicates = a.duplicates - b.duplicates;
  const uint64_t gaps = a.gaps - b.gaps;
  const uint64_t applied = a.applied - b.applied;
  const std::string what = describe(before) + " -> " + describe(after);
  FUZZ_CHECK(rejected + duplicates + gaps + applied == 1,
             "a desired message was not counted exactly once: " + what);
  v1::DesiredState msg;
  const bool decodes = payload.size() <= sync::kMaxMessageBytes &&
                       msg.ParseFromArray(payload.data(), static_cast<int>(payload.size()));
  if (!decodes) FUZZ_CHECK(rejected == 1, "an undecodable desired state was not rejected: " + what);
  if (rejected + duplicates + gaps > 0) {
    FUZZ_CHECK(after.revision == before.revision && after.desired == before.desired,
               "a desired state that was not applied changed something: " + what);
  }
  auto acks = rig.up<v1::Ack>("ack");
  if (duplicates == 1 && rig.broker_up()) {
    FUZZ_CHECK(!acks.empty() && acks.back().revision() == before.revision,
               "a duplicate was not re-acked with the agent's revision: " + what);
  }
  if (applied == 1) {
    FUZZ_CHECK(after.revision == msg.to_revision(), "applied but revision is not to_revision");
    FUZZ_CHECK(after.desired == apply_model(before.desired, msg),
               "applied desired set differs from snapshot/delta semantics: " + what);
    if (rig.broker_up()) {
      FUZZ_CHECK(!acks.empty() && acks.back().revision() == msg.to_revision(),
                 "an applied desired state was not acked with its revision: " + what);
    }
  }
}

// A payload on a down topic other than desired: rejected (and logged) when the topic's kind is
// unknown or the payload does not decode as `M`.
template <typename M>
void check_rejected_unless_decodes(const std::string& payload, bool known_kind, const State& before,
                                   const State& after) {
  M msg;
  const bool decodes = payload.size() <= sync::kMaxMessageBytes &&
                       msg.ParseFromArray(payload.data(), static_cast<int>(payload.size()));
  const uint64_t rejected = after.counters.rejected_messages - before.counters.rejected_messages;
  const bool want_reject = !known_kind || !decodes;
  FUZZ_CHECK(rejected == (want_reject ? 1u : 0u),
             "want " + std::to_string(want_reject) + " rejection, got " + std::to_string(rejected) +
                 " for " + M().GetTypeName());
}

void step(AgentRig& rig, FuzzedDataProvider& in, State& state) {
  const auto op = static_cast<AgentOp>(in.ConsumeIntegralInRange<uint8_t>(0, kAgentOpLast));
  const std::string node = AgentRig::kNode;
  const uint32_t shards = AgentRig::kShards;
  rig.clear_up();
  const State before = std::move(state);
  switch (op) {
    case AgentOp::kRawDesired:
    case AgentOp::kBuiltDesired:
    case AgentOp::kOversizedDesired: {
      std::string payload;
      if (op == AgentOp::kRawDesired) {
        payload = in.ConsumeRandomLengthString(kMaxRawPayload);
      } else {
        payload = sync::encode(build_desired(in, node, before.revision));
        if (op == AgentOp::kOversizedDesired) {
          payload = pad_to_cap(std::move(payload), in.ConsumeIntegralInRange<int>(-2, 2));
        }
      }
      const bool delivered = rig.publish(sync::down_topic(node, shards, "desired"), payload);
      rig.run_once();
      const State after = observe(rig);
      check_every_step(before, after);
      if (delivered) check_desired(rig, payload, before, after);
      state = after;
      return;
    }
    case AgentOp::kRawResync:
    case AgentOp::kOtherKind: {
      const std::string kind = op == AgentOp::kRawResync ? "resync" : pick(in, kAgentOtherKinds);
      std::string payload = in.ConsumeRandomLengthString(kMaxRawPayload);
      const std::string topic = sync::down_topic(node, shards, kind);
      const bool delivered = rig.publish(topic, payload) &&
                             sync::topic_matches(sync::node_down_filter(node, shards), topic);
      rig.run_once();
      const State after = observe(rig);
      check_every_step(before, after);
      state = after;
      if (!delivered || kind == "desired") return;  // a free kind may spell "desired"
      check_rejected_unless_decodes<v1::Resync>(payload, kind == "resync", before, after);
      if (kind == "resync" &&
          after.counters.rejected_messages == before.counters.rejected_messages) {
        FUZZ_CHECK(!rig.up<v1::Hello>("hello").empty(), "a resync was not answered with Hello");
      }
      return;
    }
    case AgentOp::kHubOnline: {
      std::string payload = in.ConsumeRandomLengthString(kMaxRawPayload);
      const bool delivered =
          rig.publish(sync::hub_online_topic(sync::shard_of(node, shards)), payload, true);
      rig.run_once();
      const State after = observe(rig);
      check_every_step(before, after);
      if (delivered) check_rejected_unless_decodes<v1::HubOnline>(payload, true, before, after);
      state = after;
      return;
    }
    case AgentOp::kRawTwin:
    case AgentOp::kBuiltTwin: {
      std::string payload = op == AgentOp::kRawTwin ? in.ConsumeRandomLengthString(kMaxRawPayload)
                                                    : sync::encode(build_twin_desired(in, node));
      const bool delivered = rig.publish(sync::down_topic(node, shards, "twin"), payload);
      rig.run_once();
      const State after = observe(rig);
      check_every_step(before, after);
      check_twin_up(rig);
      if (delivered) check_twin_desired(payload, before, after);
      state = after;
      return;
    }
    case AgentOp::kLocalDevice: {
      const std::string device = pick(in, kDevices);
      const std::string leaf = pick(in, kLocalLeaves);
      std::string payload;
      if (in.ConsumeBool()) {
        payload = in.ConsumeRandomLengthString(kMaxRawPayload);
      } else {
        // One read after the other: the operands of + are not sequenced.
        const std::string doc = pick(in, kTwinDocs);
        const uint64_t observed = twin_version(in);
        payload =
            R"({"reported":)" + doc + R"(,"observedDesired":)" + std::to_string(observed) + "}";
      }
      const std::string topic = agent::local_twin_topic(device, leaf);
      const bool delivered =
          rig.publish_local(topic, payload) &&
          (sync::topic_matches(agent::local_twin_topic("+", "reported"), topic) ||
           sync::topic_matches(agent::local_twin_topic("+", "get"), topic));
      rig.run_once();
      const State after = observe(rig);
      check_every_step(before, after);
      check_twin_up(rig);
      if (delivered) check_local(rig, device, leaf, before, after);
      state = after;
      return;
    }
    case AgentOp::kAdvanceClock:
      rig.advance(Millis(in.ConsumeIntegralInRange<int64_t>(0, 20000)));
      break;
    case AgentOp::kBrokerToggle:
      rig.toggle_broker();
      break;
    case AgentOp::kCrashInstance: {
      auto running = rig.driver().running();
      const int code = in.ConsumeIntegralInRange<int>(0, 2);
      if (!running.empty()) {
        const auto& id = running[in.ConsumeIntegralInRange<size_t>(0, running.size() - 1)];
        if (code == 2) {
          rig.driver().crash(id, 9);
        } else {
          rig.driver().exit(id, code);
        }
      }
      rig.advance(Millis(200));
      break;
    }
  }
  state = observe(rig);
  check_every_step(before, state);
}

}  // namespace
}  // namespace flotilla::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace flotilla::fuzz;
  static const bool initialised = [] {
    (void)agent_log();  // route the logs before the first agent is made
    quiet_protobuf();
    return true;
  }();
  (void)initialised;
  FuzzedDataProvider in(data, size);
  AgentRig rig;
  State state = observe(rig);
  for (int i = 0; i < kMaxSteps && in.remaining_bytes() > 0; ++i) step(rig, in, state);
  return 0;
}
