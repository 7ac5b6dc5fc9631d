// Device twins: the desired and reported property documents of a device behind an edge node
// (the model of AWS IoT Device Shadow, Azure IoT Hub twins and KubeEdge's DeviceTwin), shared by
// the hub (REST, store) and the agent (SQLite cache, local device bridge). Pure: no network, no
// store, no clock; the wire messages are TwinDesired / TwinReported in sync/flotilla.proto and
// docs/protocol.md ("Device twins") describes how they flow.
//
// Documents are JSON objects. Limits, checked on every input; a rejected input changes nothing:
//  - a document or patch is a JSON object;
//  - nesting: at most kMaxDepth levels of objects and arrays, the document itself being level 1
//    ({"a":{"b":1}} has 2 levels);
//  - keys: 1..kMaxKeyBytes bytes, no control characters (bytes 0x00-0x1f, 0x7f); all strings
//    valid UTF-8; numbers finite;
//  - size: the canonical text of each side, after a patch is applied, at most kMaxDocumentBytes.
// Errors name the path of what is wrong, e.g. "desired.a.b: nesting deeper than 10" or
// "reported.list[3]: ...", so callers add only which device, e.g.
// err.WithContext("Failed to set twin of 'dev-1'").
//
// Patches follow JSON merge patch (RFC 7386): objects merge recursively, null deletes a property,
// any other value replaces. So a stored document never holds a null property value (nulls inside
// arrays are values like any other).
//
// Versions ("versions, not clocks"). Each side has its own version, owned by one writer, bumped
// by exactly one for every accepted change (a patch that leaves the document as it was bumps
// nothing); the other side of the wire only adopts a whole document with a higher version:
//  - desired: written at the hub (set_desired / replace_desired, optionally guarded by
//    if_version: optimistic concurrency, a mismatch is an Outcome::kConflict, HTTP 409); the agent
//    adopts (adopt_desired) the hub's document and version when the version is higher.
//  - reported: written at the agent on behalf of its devices (report: a device's patch and the
//    desired version it acted on); the hub adopts (adopt_reported) the agent's document, version
//    and observedDesired when the version is higher. A stale or repeated update changes nothing.
//  - observedDesired: the desired version the device last acted on; it travels with reported
//    and changing it is a reported change.
//  - versions are at most kMaxVersion (INT64_MAX, what SQLite stores): a larger one is invalid.
//  - lost store: a peer holding a *higher* version of a side than its owner means the owner lost
//    its store (or the Device was deleted and created again). supersede_desired (hub) and
//    supersede_reported (agent) then move the owner's version past the peer's, so that what the
//    owner holds wins again instead of being ignored as stale forever.
//
// Thread-safety: value types and pure functions; a Twin is not synchronised.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "common/expected.hpp"

namespace flotilla::twin {

using Json = nlohmann::json;

inline constexpr size_t kMaxDocumentBytes = 32 * 1024;  // canonical text of one side
inline constexpr size_t kMaxDepth = 10;                 // levels of objects and arrays
inline constexpr size_t kMaxKeyBytes = 128;
inline constexpr uint64_t kMaxVersion = INT64_MAX;
// Text handed to parse(): a patch may be larger than the document it leaves (deletions), but no
// larger than one protocol message (sync kMaxMessageBytes).
inline constexpr size_t kMaxTextBytes = 256 * 1024;

// Checks the rules above except size on `value` (a document or a patch); `path` names it in
// errors ("desired", "reported", "patch").
Status validate(const Json& value, std::string_view path);
// The canonical text of `doc` must fit kMaxDocumentBytes.
Status check_size(const Json& doc, std::string_view path);
// Parses JSON text (at most kMaxTextBytes) and validates it; never throws.
Expected<Json> parse(std::string_view text, std::string_view path);

// RFC 7386 merge patch of `patch` onto `target`.
Json merge_patch(Json target, const Json& patch);
// The desired properties whose values differ from reported: for each desired property, absent
// from reported or different (JSON equality; numbers compare by value, so 1 equals 1.0): when
// both are objects, their delta if not empty; otherwise the desired value. A property absent from
// desired is never in the delta. Applying the delta to reported as a merge patch makes every
// desired property equal.
Json delta(const Json& desired, const Json& reported);
// Compact JSON with keys sorted by bytes: what the store keeps and what the wire carries.
// Equal documents have equal canonical text except for numbers written differently (1 vs 1.0).
std::string canonical(const Json& doc);

enum class Outcome {
  kChanged,    // accepted; the document (or version) changed
  kUnchanged,  // accepted; it already said that: nothing to store or send
  kStale,      // a version not higher than the current one: ignored (duplicate or reordered)
  kConflict,   // if_version differs from the current desired version: nothing changed
};
std::string_view to_string(Outcome o);

// What an accepted call did. An Error instead means the input broke a rule (HTTP 400).
struct [[nodiscard]] Update {
  Outcome outcome = Outcome::kUnchanged;
  uint64_t version = 0;  // the side's version afterwards
  std::string reason;    // kStale, kConflict: why, e.g. "desired version is 5, not 3"
  bool changed() const { return outcome == Outcome::kChanged; }
};

class Twin {
 public:
  Twin() = default;  // empty documents, versions 0

  // A twin as stored (canonical texts and versions), validated like any input.
  static Expected<Twin> restore(std::string_view desired, uint64_t desired_version,
                                std::string_view reported, uint64_t reported_version,
                                uint64_t observed_desired);

  const Json& desired() const { return desired_; }
  const Json& reported() const { return reported_; }
  uint64_t desired_version() const { return desired_version_; }
  uint64_t reported_version() const { return reported_version_; }
  uint64_t observed_desired() const { return observed_desired_; }
  Json delta() const { return twin::delta(desired_, reported_); }

  // Hub. Merges `patch` into desired; with if_version, only when it equals desired_version().
  Expected<Update> set_desired(const Json& patch, std::optional<uint64_t> if_version = {});
  // Hub. Replaces desired with `doc` (null properties are dropped), e.g. a Device's spec.desired.
  Expected<Update> replace_desired(const Json& doc, std::optional<uint64_t> if_version = {});
  // Agent. Takes the hub's whole desired document when `version` is above desired_version().
  Expected<Update> adopt_desired(const Json& doc, uint64_t version);
  // Hub. The agent holds desired version `peer_version`; when that is not below ours, we lost
  // our store: our version moves to peer_version + 1 (kChanged: send desired again).
  Expected<Update> supersede_desired(uint64_t peer_version);

  // Agent. A device's patch of its reported properties and, if given, the desired version it
  // acted on (taken as the device says; unset keeps the last one); bumps reported_version() when
  // the document or observedDesired changed.
  Expected<Update> report(const Json& patch, std::optional<uint64_t> observed_desired = {});
  // Hub. Takes the agent's whole reported document when `version` is above reported_version().
  Expected<Update> adopt_reported(const Json& doc, uint64_t version, uint64_t observed_desired);
  // Agent. The hub holds reported version `peer_version`; when that is not below ours, we lost
  // our store: our version moves to peer_version + 1 (kChanged: send reported again).
  Expected<Update> supersede_reported(uint64_t peer_version);

 private:
  Expected<Update> put_desired(Json next, std::optional<uint64_t> if_version);

  Json desired_ = Json::object();
  Json reported_ = Json::object();
  uint64_t desired_version_ = 0;
  uint64_t reported_version_ = 0;
  uint64_t observed_desired_ = 0;
};

}  // namespace flotilla::twin
