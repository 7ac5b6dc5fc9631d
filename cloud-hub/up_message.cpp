#include "cloud-hub/up_message.hpp"

#include <algorithm>
#include <cstdint>
#include <string>
#include <unordered_map>
#include <utility>

namespace flotilla::hub {

namespace pb = flotilla::v1;

std::vector<UpMessage> coalesce_status(std::vector<UpMessage> in, size_t& merged_count) {
  std::vector<UpMessage> out;
  out.reserve(in.size());
  // Per node: the index in `out` of the status batch still open for merging, and where each
  // of its instances' records sits in it.
  struct Open {
    size_t index;
    std::unordered_map<std::string, int> record_of;
    uint64_t max_seq = 0;  // over the run's records and events
  };
  auto raise = [](Open& o, const pb::StatusBatch& b) {
    for (const auto& r : b.instances()) o.max_seq = std::max(o.max_seq, r.seq());
    for (const auto& e : b.events()) o.max_seq = std::max(o.max_seq, e.seq());
  };
  std::unordered_map<std::string, Open> open;
  for (auto& d : in) {
    auto* batch = std::get_if<pb::StatusBatch>(&d);
    const std::string node = std::visit([](const auto& m) { return m.node(); }, d);
    if (batch == nullptr || batch->full()) {
      // Anything else from the node keeps its place after what came before it.
      open.erase(node);
      out.push_back(std::move(d));
      continue;
    }
    auto it = open.find(node);
    if (it == open.end()) {
      Open o{out.size(), {}};
      for (int i = 0; i < batch->instances_size(); ++i) {
        o.record_of[batch->instances(i).instance_id()] = i;
      }
      raise(o, *batch);
      open.emplace(node, std::move(o));
      out.push_back(std::move(d));
      continue;
    }
    auto& merged = std::get<pb::StatusBatch>(out[it->second.index]);
    const uint64_t seen = it->second.max_seq;
    raise(it->second, *batch);
    for (auto& rec : *batch->mutable_instances()) {
      auto [slot, fresh] = it->second.record_of.emplace(rec.instance_id(), merged.instances_size());
      if (fresh) {
        *merged.add_instances() = std::move(rec);
      } else if (rec.seq() > merged.instances(slot->second).seq()) {
        *merged.mutable_instances(slot->second) = std::move(rec);
      }
    }
    for (auto& e : *batch->mutable_events()) {
      // The controller skips events at or below the seq it has seen (replays); within the run
      // that is the run's own seq so far.
      if (e.seq() == 0 || e.seq() > seen) *merged.add_events() = std::move(e);
    }
    merged.set_dropped_events(merged.dropped_events() + batch->dropped_events());
    if (batch->has_acked_revision() && batch->acked_revision() > merged.acked_revision()) {
      merged.set_acked_revision(batch->acked_revision());
    }
    ++merged_count;
  }
  return out;
}

}  // namespace flotilla::hub
