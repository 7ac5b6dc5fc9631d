// Protocol versions, what v2 added (a DesiredState larger than one message travels in parts) and
// what v3 added (an agent talking to a v3 hub acks in its status batches).
//
// Versions. An agent's Hello states the newest version it speaks (`protocol_version`) and the
// oldest (`min_protocol_version`; 0 from v1 agents, which speak only v1). The hub speaks
// kMinProtocolVersion..kProtocolVersion and talks to each node in the newest version both speak;
// a node with no common version is refused (its hello is dropped, logged and counted). The
// messages of v1 are unchanged in v2, so a v1 agent keeps working against a v2 hub: it is only
// never sent parts (a desired state too large for one message is reported and held, as v1 did).
// v3 adds StatusBatch.acked_revision, which the hub takes as an Ack; an agent folds its ack into
// the status batch that follows an apply only when the hub's HubOnline says v3 or newer, so a
// v3 agent keeps sending Ack messages to an older hub, and a v2 agent's Acks still count.
//
// Parts (v2). split_desired() cuts a DesiredState into messages of at most `max_bytes`, each a
// copy of the header (node, from, to, snapshot) with `part` = 0..parts-1 and a share of the
// upserts and deletes. DesiredAssembler collects them on the agent: parts may arrive duplicated
// or in any order; a part of another (from, to, snapshot, parts) starts over; whole() is the
// original message once every part is in. Nothing is applied until then, so a half-received
// desired state never changes the agent's store.
//
// Thread-safety: DesiredAssembler is not thread-safe; the rest are pure functions.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <vector>

#include "common/expected.hpp"
#include "sync/flotilla.pb.h"
#include "sync/topics.hpp"

namespace flotilla::sync {

inline constexpr uint32_t kPartsSinceVersion = 2;        // DesiredState parts
inline constexpr uint32_t kAckInStatusSinceVersion = 3;  // StatusBatch.acked_revision

// The version to speak with a peer that speaks [peer_min, peer_max] (peer_min 0: only
// peer_max), or an error naming both ranges.
Expected<uint32_t> negotiate_version(uint32_t peer_max, uint32_t peer_min);

// `whole` as one message when it fits in max_bytes, else as parts that each fit. Fails only
// when a single upsert is larger than max_bytes by itself.
Expected<std::vector<flotilla::v1::DesiredState>> split_desired(
    const flotilla::v1::DesiredState& whole, size_t max_bytes);

class DesiredAssembler {
 public:
  static constexpr uint32_t kMaxParts = 4096;

  // Takes one part (a message with parts > 1). Returns the whole message once every part of
  // it has arrived, nullopt while parts are missing, or an error for a part that cannot be
  // (index out of range, too many parts); an error leaves what was collected as it was.
  Expected<std::optional<flotilla::v1::DesiredState>> add(const flotilla::v1::DesiredState& part);
  // Parts of the message being collected that arrived so far.
  size_t collected() const;

 private:
  std::vector<std::optional<flotilla::v1::DesiredState>> parts_;
};

}  // namespace flotilla::sync
