// The input grammar of fuzz_agent_messages and fuzz_hub_messages, shared with the seed writer
// (make_seeds.cpp) so that committed seeds keep meaning what they were written for.
//
// An input is read with FuzzedDataProvider: a sequence of steps, each an op (one byte from the
// end of the input) followed by what that op consumes. Strings come from the front
// (ConsumeRandomLengthString: "\\" is a backslash, "\" + any other byte ends the string), numbers
// from the back. Choices from a pool take an index; the index one past the pool reads a free
// string instead.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace flotilla::fuzz {

inline constexpr int kMaxSteps = 12;
// Raw payloads and free strings are cut here; oversized payloads are built by padding instead.
inline constexpr size_t kMaxRawPayload = 8192;
inline constexpr size_t kMaxFreeString = 80;

// Agent side: what the "hub" does to the agent.
enum class AgentOp : uint8_t {
  kRawDesired,        // payload bytes on down/desired
  kBuiltDesired,      // a DesiredState built from the input, near the agent's revision
  kOversizedDesired,  // a built DesiredState padded to the size cap +-2 bytes
  kRawResync,         // payload bytes on down/resync
  kOtherKind,         // payload bytes on down/<kind from kAgentOtherKinds>
  kHubOnline,         // payload bytes as the retained hub/online announcement
  kAdvanceClock,      // the clock moves 0..20 s and the agent runs (reconciler, heartbeat)
  kBrokerToggle,      // the broker goes down (or comes back)
  kCrashInstance,     // one running instance exits with a code chosen by the input
  kRawTwin,           // payload bytes on down/twin
  kBuiltTwin,         // a TwinDesired built from the input (devices of kDevices)
  kLocalDevice,       // a device publishes on the local bridge: topic and payload as chosen
};
inline constexpr uint8_t kAgentOpLast = static_cast<uint8_t>(AgentOp::kLocalDevice);

// Hub side: what an agent (or anything on the broker) sends the hub.
enum class HubOp : uint8_t {
  kRaw,              // topic as chosen, payload bytes
  kBuilt,            // topic as chosen, a well-formed up message built from the input
  kOversized,        // topic as chosen, a built up message padded to the size cap +-2 bytes
  kAdvanceClock,     // the clock moves 0..60 s and the controller ticks (liveness)
  kChangeWorkloads,  // a workload is deleted or applied again with other replicas
  kChangeDevices,    // a device's desired is set (or with a stale ifVersion), deleted or created
};
inline constexpr uint8_t kHubOpLast = static_cast<uint8_t>(HubOp::kChangeDevices);

// How a hub op's topic is written.
enum class TopicForm : uint8_t {
  kCanonical,   // sync::up_topic(node, 16, kind)
  kWrongShard,  // the node's up topic on the next shard
  kDown,        // the node's down topic (the hub must ignore its own direction)
  kFree,        // a free string
};
inline constexpr uint8_t kTopicFormLast = static_cast<uint8_t>(TopicForm::kFree);

// Up message types for kBuilt / kOversized (independent of the topic's kind on purpose).
enum class UpType : uint8_t { kHello, kHeartbeat, kAck, kStatus, kOffline, kTwin };
inline constexpr uint8_t kUpTypeLast = static_cast<uint8_t>(UpType::kTwin);

inline const std::vector<std::string> kAgentOtherKinds = {"hello", "ack", "status", "will",
                                                          "bogus"};
// Local bridge topics: flotilla/local/devices/{device}/twin/{leaf} (agent/twin_sync.hpp).
inline const std::vector<std::string> kLocalLeaves = {"reported", "get", "desired", "rejected"};
inline const std::vector<std::string> kHubNodes = {"edge-1", "edge-2", "edge-3"};
inline const std::vector<std::string> kUpKinds = {"hello", "heartbeat", "ack", "status",
                                                  "will",  "bogus",     "twin"};
// Devices of twin messages: the hub rig's (dev-1 on edge-1, dev-2 on edge-2), one it does not
// know, and a name no device may have.
inline const std::vector<std::string> kDevices = {"dev-1", "dev-2", "dev-x", "Bad/Name"};
// Twin documents: valid, with null properties, not objects, malformed.
inline const std::vector<std::string> kTwinDocs = {"{}",
                                                   R"({"rate":5})",
                                                   R"({"rate":null,"mode":"eco"})",
                                                   R"({"a":{"b":{"c":[1,2]}}})",
                                                   "[1]",
                                                   R"({"rate":)",
                                                   ""};
inline const std::vector<std::string> kWorkloadNames = {"web", "db", "cache", "w_1.x", ""};
inline const std::vector<std::string> kWorkloadTypes = {"process", "container", "vm", ""};
inline const std::vector<std::string> kSpecHashes = {"h1", "h2", ""};
inline const std::vector<std::string> kArgs = {"/bin/sleep", "1000", ""};
inline const std::vector<std::string> kEnvNames = {"PORT", "MODE", "", "A=B"};

}  // namespace flotilla::fuzz
