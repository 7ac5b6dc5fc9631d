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
#include <fuzzer/FuzzedDataProvider.h>

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>

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
};

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
  const uint64_t rejected = after.counters.rejected_messages - before.counters.rejected_messages;
  FUZZ_CHECK(after.warnings - before.warnings >= rejected,
             "a rejected message was not logged: " + describe(after));
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
