// fuzz_twin: device twins (common/twin.hpp) fed arbitrary documents and patches.
//
// Input: records separated by NUL bytes, each [op][version][JSON text...] (see the switch; the
// version byte 255 stands for kMaxVersion). The ops drive a hub twin and an agent twin as the
// protocol would: set/replace desired at the hub, report at the agent, adopt each other's
// documents, supersede after a lost store. The text goes through twin::parse and, when nlohmann
// alone accepts it, straight into the twin call too, so the twin's own validation is fuzzed.
//
// Invariants: nothing crashes or throws; parse accepts only what validate accepts, and its
// canonical text is a fixed point; an error, stale, conflict or unchanged outcome leaves the twin
// exactly as it was; a change bumps the version (by one when the twin owns the side, to the
// peer's version when it adopts); stale means "not newer", conflict means "if_version differs";
// after every op both documents are objects within the limits, hold no null property, and the
// delta is a subset of desired that, applied to reported, leaves no delta.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/twin.hpp"
#include "test/fuzz/fuzz_check.hpp"

namespace {

using flotilla::Expected;
using flotilla::twin::Json;
using flotilla::twin::Outcome;
using flotilla::twin::Twin;
using flotilla::twin::Update;
namespace twin = flotilla::twin;

std::string state(const Twin& t) {
  return twin::canonical(t.desired()) + "|" + std::to_string(t.desired_version()) + "|" +
         twin::canonical(t.reported()) + "|" + std::to_string(t.reported_version()) + "|" +
         std::to_string(t.observed_desired());
}

// No null property reached through objects (merge patch deletes them).
bool no_null_properties(const Json& v) {
  if (!v.is_object()) return true;
  for (const auto& [key, child] : v.items()) {
    if (child.is_null() || !no_null_properties(child)) return false;
  }
  return true;
}

// Every property of `part` is in `whole`: equal, or both objects and contained.
bool contained(const Json& part, const Json& whole) {
  if (!part.is_object() || !whole.is_object()) return false;
  for (const auto& [key, value] : part.items()) {
    const auto it = whole.find(key);
    if (it == whole.end()) return false;
    if (value == *it) continue;
    if (!value.is_object() || !contained(value, *it)) return false;
  }
  return true;
}

void check_document(const Json& doc, const char* side) {
  FUZZ_CHECK(doc.is_object(), std::string(side) + " is not an object");
  auto st = twin::validate(doc, side);
  FUZZ_CHECK(st.ok(), "a stored document breaks the rules: " + st.error().message());
  FUZZ_CHECK(twin::check_size(doc, side).ok(), std::string(side) + " is over the size limit");
  FUZZ_CHECK(no_null_properties(doc), std::string(side) + " holds a null property");
  auto again = twin::parse(twin::canonical(doc), side);
  FUZZ_CHECK(again.ok(), "canonical text does not parse: " + twin::canonical(doc));
  FUZZ_CHECK(twin::canonical(*again) == twin::canonical(doc), "canonical text is no fixed point");
}

void check_twin(const Twin& t) {
  check_document(t.desired(), "desired");
  check_document(t.reported(), "reported");
  FUZZ_CHECK(t.desired_version() <= twin::kMaxVersion && t.reported_version() <= twin::kMaxVersion,
             "version above the limit: " + state(t));
  const Json d = t.delta();
  FUZZ_CHECK(contained(d, t.desired()), "delta is not part of desired: " + twin::canonical(d));
  const Json after = twin::merge_patch(t.reported(), d);
  FUZZ_CHECK(twin::delta(t.desired(), after).empty(),
             "applying the delta leaves a delta: " + twin::canonical(d));
}

// `before` is the twin's state before the call; `old_version` the version of the side it writes.
void check_outcome(const Expected<Update>& u, const Twin& t, const std::string& before,
                   uint64_t old_version, uint64_t new_version, const char* op) {
  if (!u.ok()) {
    FUZZ_CHECK(!u.error().message().empty(), std::string(op) + " failed without a reason");
    FUZZ_CHECK(state(t) == before, std::string(op) + " failed but changed the twin");
    return;
  }
  if (u->outcome == Outcome::kChanged) {
    FUZZ_CHECK(new_version > old_version, std::string(op) + " changed without a newer version");
    FUZZ_CHECK(u->version == new_version, std::string(op) + " reports the wrong version");
  } else {
    FUZZ_CHECK(state(t) == before, std::string(op) + " said " +
                                       std::string(twin::to_string(u->outcome)) +
                                       " but changed the twin");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Twin hub, agent;
  std::string_view input(reinterpret_cast<const char*>(data), size);
  int records = 0;
  while (!input.empty() && ++records <= 64) {
    const size_t end = input.find('\0');
    const std::string_view record = input.substr(0, end);
    input.remove_prefix(end == std::string_view::npos ? input.size() : end + 1);
    if (record.size() < 2) continue;
    const auto op = static_cast<uint8_t>(record[0]);
    const auto vbyte = static_cast<uint8_t>(record[1]);
    const uint64_t v = vbyte == 255 ? twin::kMaxVersion : vbyte;
    const std::string_view text = record.substr(2);

    auto parsed = twin::parse(text, "patch");
    std::optional<Json> doc;
    if (parsed) {
      FUZZ_CHECK(twin::validate(*parsed, "patch").ok(), "parse accepted what validate rejects");
      doc = *parsed;
    } else {
      FUZZ_CHECK(!parsed.error().message().empty(), "parse failed without a reason");
      // What nlohmann alone accepts tests the twin's own checks (shallow text only: the twin
      // calls take values, which the hub and agent get from twin::parse).
      if (text.size() <= 4096) {
        Json raw = Json::parse(text, nullptr, false);
        if (!raw.is_discarded()) doc = std::move(raw);
      }
    }

    const std::string hub_before = state(hub), agent_before = state(agent);
    const uint64_t agent_desired_before = agent.desired_version();
    switch (op % 8) {
      case 0:
      case 1: {  // hub: patch desired, with if_version for odd ops
        if (!doc) break;
        const uint64_t old = hub.desired_version();
        std::optional<uint64_t> if_version;
        if (op % 2) if_version = v;
        auto u = hub.set_desired(*doc, if_version);
        check_outcome(u, hub, hub_before, old, hub.desired_version(), "set_desired");
        if (u && u->changed()) FUZZ_CHECK(hub.desired_version() == old + 1, "bump is not +1");
        if (u && u->outcome == Outcome::kConflict)
          FUZZ_CHECK(if_version && *if_version != old, "conflict with a matching if_version");
        if (u && if_version && *if_version == old)
          FUZZ_CHECK(u->outcome != Outcome::kConflict, "conflict with a matching version");
        break;
      }
      case 2: {  // hub: replace desired
        if (!doc) break;
        const uint64_t old = hub.desired_version();
        auto u = hub.replace_desired(*doc, (v % 3) ? std::nullopt : std::optional<uint64_t>(old));
        check_outcome(u, hub, hub_before, old, hub.desired_version(), "replace_desired");
        if (u && u->changed()) FUZZ_CHECK(hub.desired_version() == old + 1, "bump is not +1");
        break;
      }
      case 3: {  // agent: adopt a desired document
        if (!doc) break;
        const uint64_t old = agent.desired_version();
        auto u = agent.adopt_desired(*doc, v);
        check_outcome(u, agent, agent_before, old, agent.desired_version(), "adopt_desired");
        if (u && u->outcome == Outcome::kStale) FUZZ_CHECK(v <= old, "stale but newer");
        if (u && u->changed()) FUZZ_CHECK(agent.desired_version() == v, "adopted another version");
        break;
      }
      case 4: {  // agent: a device reports
        if (!doc) break;
        const uint64_t old = agent.reported_version();
        auto u = agent.report(*doc, (v % 2) ? std::optional<uint64_t>(v) : std::nullopt);
        check_outcome(u, agent, agent_before, old, agent.reported_version(), "report");
        if (u && u->changed()) FUZZ_CHECK(agent.reported_version() == old + 1, "bump is not +1");
        break;
      }
      case 5: {  // hub: adopt a reported document
        if (!doc) break;
        const uint64_t old = hub.reported_version();
        auto u = hub.adopt_reported(*doc, v, v / 2);
        check_outcome(u, hub, hub_before, old, hub.reported_version(), "adopt_reported");
        if (u && u->outcome == Outcome::kStale) FUZZ_CHECK(v <= old, "stale but newer");
        break;
      }
      case 6: {  // the wire, both ways: each side adopts the owner's document
        auto d = agent.adopt_desired(hub.desired(), hub.desired_version());
        FUZZ_CHECK(d.ok(), "the agent rejects the hub's desired: " + d.error().message());
        if (hub.desired_version() > agent_desired_before)
          FUZZ_CHECK(agent.desired() == hub.desired(), "the agent did not take newer desired");
        auto r = hub.adopt_reported(agent.reported(), agent.reported_version(),
                                    agent.observed_desired());
        FUZZ_CHECK(r.ok(), "the hub rejects the agent's reported: " + r.error().message());
        break;
      }
      case 7: {  // a lost store: supersede a peer's version
        const uint64_t old_d = hub.desired_version(), old_r = agent.reported_version();
        auto d = hub.supersede_desired(v);
        check_outcome(d, hub, hub_before, old_d, hub.desired_version(), "supersede_desired");
        if (d && v >= old_d) FUZZ_CHECK(hub.desired_version() == v + 1, "did not move past");
        auto r = agent.supersede_reported(v);
        check_outcome(r, agent, agent_before, old_r, agent.reported_version(),
                      "supersede_reported");
        break;
      }
    }
    check_twin(hub);
    check_twin(agent);
  }
  return 0;
}
