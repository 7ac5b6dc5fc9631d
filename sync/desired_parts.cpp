#include "sync/desired_parts.hpp"

#include <algorithm>
#include <string>

namespace flotilla::sync {

namespace pb = flotilla::v1;

Expected<uint32_t> negotiate_version(uint32_t peer_max, uint32_t peer_min) {
  if (peer_min == 0) peer_min = peer_max;
  const uint32_t version = std::min(peer_max, kProtocolVersion);
  if (peer_min > peer_max || version < std::max(peer_min, kMinProtocolVersion)) {
    return Error("speaks protocol versions " + std::to_string(peer_min) + ".." +
                 std::to_string(peer_max) + ", this side " + std::to_string(kMinProtocolVersion) +
                 ".." + std::to_string(kProtocolVersion));
  }
  return version;
}

namespace {

// The header every part repeats.
pb::DesiredState header_of(const pb::DesiredState& whole) {
  pb::DesiredState h;
  h.set_node(whole.node());
  h.set_from_revision(whole.from_revision());
  h.set_to_revision(whole.to_revision());
  h.set_snapshot(whole.snapshot());
  return h;
}

// Upper bound of what a repeated field element adds to a message: the element, its length
// prefix (at most 5 bytes for our sizes) and its tag (1 byte).
size_t field_cost(size_t element_bytes) { return element_bytes + 6; }

}  // namespace

Expected<std::vector<pb::DesiredState>> split_desired(const pb::DesiredState& whole,
                                                      size_t max_bytes) {
  if (whole.ByteSizeLong() <= max_bytes) return std::vector<pb::DesiredState>{whole};
  pb::DesiredState header = header_of(whole);
  header.set_part(0xffffffffu);  // room for the largest part and parts fields
  header.set_parts(0xffffffffu);
  const size_t base = header.ByteSizeLong();
  header.clear_part();
  header.clear_parts();

  std::vector<pb::DesiredState> parts;
  pb::DesiredState current = header;
  size_t size = base;
  auto room_for = [&](size_t cost) {
    if (size + cost <= max_bytes) return;
    parts.push_back(std::move(current));
    current = header;
    size = base;
  };
  for (const auto& spec : whole.upserts()) {
    const size_t cost = field_cost(spec.ByteSizeLong());
    if (base + cost > max_bytes) {
      return Error("workload '" + spec.name() + "' alone is " + std::to_string(cost) +
                   " bytes, more than a message may hold (" + std::to_string(max_bytes) + ")");
    }
    room_for(cost);
    *current.add_upserts() = spec;
    size += cost;
  }
  for (const auto& name : whole.deletes()) {
    const size_t cost = field_cost(name.size());
    room_for(cost);
    current.add_deletes(name);
    size += cost;
  }
  if (current.upserts_size() > 0 || current.deletes_size() > 0 || parts.empty()) {
    parts.push_back(std::move(current));
  }
  const auto n = static_cast<uint32_t>(parts.size());
  for (uint32_t i = 0; i < n; ++i) {
    parts[i].set_part(i);
    parts[i].set_parts(n);
  }
  return parts;
}

Expected<std::optional<pb::DesiredState>> DesiredAssembler::add(const pb::DesiredState& part) {
  if (part.parts() < 2 || part.parts() > kMaxParts) {
    return Error("desired state in " + std::to_string(part.parts()) + " parts (2.." +
                 std::to_string(kMaxParts) + " allowed)");
  }
  if (part.part() >= part.parts()) {
    return Error("desired state part " + std::to_string(part.part()) + " of " +
                 std::to_string(part.parts()));
  }
  auto same_message = [&](const pb::DesiredState& other) {
    return other.node() == part.node() && other.from_revision() == part.from_revision() &&
           other.to_revision() == part.to_revision() && other.snapshot() == part.snapshot() &&
           other.parts() == part.parts();
  };
  auto first = std::find_if(parts_.begin(), parts_.end(), [](const auto& p) { return p; });
  if (parts_.size() != part.parts() || (first != parts_.end() && !same_message(**first))) {
    parts_.assign(part.parts(), std::nullopt);  // another message: start over
  }
  parts_[part.part()] = part;
  if (collected() < parts_.size()) return std::optional<pb::DesiredState>();
  pb::DesiredState whole = header_of(part);
  for (const auto& p : parts_) {
    for (const auto& spec : p->upserts()) *whole.add_upserts() = spec;
    for (const auto& name : p->deletes()) whole.add_deletes(name);
  }
  parts_.clear();
  return std::optional<pb::DesiredState>(std::move(whole));
}

size_t DesiredAssembler::collected() const {
  return static_cast<size_t>(
      std::count_if(parts_.begin(), parts_.end(), [](const auto& p) { return p.has_value(); }));
}

}  // namespace flotilla::sync
