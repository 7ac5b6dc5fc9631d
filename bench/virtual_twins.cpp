#include "bench/virtual_twins.hpp"

#include <algorithm>

#include "sync/codec.hpp"

namespace flotilla::bench {
namespace {

namespace pb = flotilla::v1;

// As agent/twin_sync.cpp: room for the batch header and each record's tag and length.
constexpr size_t kBatchLimit = sync::kMaxMessageBytes - 1024;
constexpr size_t kPerRecordOverhead = 16;

pb::DeviceReported record(const std::string& device, uint64_t reported_version,
                          uint64_t observed_desired, uint64_t desired_version) {
  pb::DeviceReported r;
  r.set_device(device);
  r.set_reported(VirtualTwins::reported_doc(reported_version));
  r.set_reported_version(reported_version);
  r.set_observed_desired(observed_desired);
  r.set_desired_version(desired_version);
  return r;
}

}  // namespace

std::string VirtualTwins::reported_doc(uint64_t version) {
  if (version == 0) return "{}";
  return "{\"seq\":" + std::to_string(version) + ",\"temp\":" + std::to_string(version % 50) + "}";
}

VirtualTwins::VirtualTwins(VirtualFleet& fleet, uint32_t devices)
    : fleet_(fleet),
      nodes_(fleet.options().nodes),
      devices_(devices),
      by_node_(nodes_),
      node_dirty_(nodes_, false),
      flood_cursor_(nodes_, 0),
      flood_inflight_(nodes_, 0) {
  for (uint32_t i = 0; i < devices; ++i) by_node_[i % nodes_].push_back(i);
  fleet_.set_down_hooks(
      "twin", {[this](uint32_t node, std::string_view payload) { on_twin(node, payload); },
               [this] { on_idle(); }});
}

uint32_t VirtualTwins::count_desired_at_least(uint64_t version) const {
  return static_cast<uint32_t>(
      std::count_if(devices_.begin(), devices_.end(),
                    [&](const Device& d) { return d.desired_version >= version; }));
}

void VirtualTwins::on_twin(uint32_t node, std::string_view payload) {
  const SteadyTime now = std::chrono::steady_clock::now();
  ++counters_.desired_msgs;
  auto msg = sync::decode<pb::TwinDesired>(payload);
  if (!msg || msg->node() != fleet_.node_name(node)) return;
  for (const auto& dd : msg->devices()) {
    ++counters_.desired_entries;
    auto index = device_index(dd.device());
    if (!index || *index >= devices_.size() || *index % nodes_ != node) {
      ++counters_.unknown;
      continue;
    }
    Device& d = devices_[*index];
    ++d.desired_entries;
    if (dd.removed()) continue;
    bool changed = false;
    if (dd.desired_version() > d.desired_version) {
      d.desired_version = dd.desired_version();
      d.desired_at = now;
      ++counters_.adopted;
      changed = true;
    }
    if (dd.reported_version() > d.reported_version) {
      d.reported_version = dd.reported_version() + 1;  // as Twin::supersede_reported
      changed = true;
    }
    // The agent's rule (agent/twin_sync.cpp): the report doubles as the ack.
    if (changed || !msg->full() || dd.reported_version() != d.reported_version ||
        dd.desired_version() != d.desired_version) {
      d.queued = true;
      if (!node_dirty_[node]) {
        node_dirty_[node] = true;
        dirty_nodes_.push_back(node);
      }
    }
  }
}

void VirtualTwins::on_idle() {
  std::vector<uint32_t> dirty;
  dirty.swap(dirty_nodes_);
  for (uint32_t node : dirty) {
    node_dirty_[node] = false;
    flush_reports(node);
  }
  if (flood_left_ > 0) flood_step();
}

void VirtualTwins::add_record(pb::TwinReported& msg, uint32_t device) const {
  const Device& d = devices_[device];
  *msg.add_devices() =
      record(device_name(device), d.reported_version, d.observed_desired, d.desired_version);
}

void VirtualTwins::flush_reports(uint32_t node) {
  if (!fleet_.connected(node)) return;  // the hub's next full list asks again
  pb::TwinReported msg;
  msg.set_node(fleet_.node_name(node));
  std::vector<uint32_t> sent;
  size_t size = msg.ByteSizeLong();
  bool more = false;
  for (uint32_t i : by_node_[node]) {
    Device& d = devices_[i];
    if (!d.queued || d.inflight) continue;
    const size_t before = msg.ByteSizeLong();
    add_record(msg, i);
    const size_t add = msg.ByteSizeLong() - before + kPerRecordOverhead;
    if (!sent.empty() && size + add > kBatchLimit) {
      msg.mutable_devices()->RemoveLast();
      more = true;
      break;
    }
    size += add;
    d.queued = false;
    d.inflight = true;
    sent.push_back(i);
  }
  if (sent.empty()) return;
  ++counters_.report_msgs;
  counters_.report_records += sent.size();
  fleet_.publish_up(node, "twin", sync::encode(msg), 1, [this, node, sent = std::move(sent)] {
    bool again = false;
    for (uint32_t i : sent) {
      devices_[i].inflight = false;
      again |= devices_[i].queued;
    }
    if (again && !node_dirty_[node]) {
      node_dirty_[node] = true;
      dirty_nodes_.push_back(node);
    }
  });
  if (more && !node_dirty_[node]) {
    node_dirty_[node] = true;
    dirty_nodes_.push_back(node);
  }
}

uint32_t VirtualTwins::records_per_message(uint32_t per_message) const {
  size_t most = 0;
  for (const auto& ds : by_node_) most = std::max(most, ds.size());
  return static_cast<uint32_t>(per_message == 0 ? most : std::min<size_t>(per_message, most));
}

size_t VirtualTwins::flood_payload_size(uint32_t per_message) const {
  pb::TwinReported msg;
  msg.set_node(fleet_.node_name(0));
  const uint32_t n = records_per_message(per_message);
  for (uint32_t r = 0; r < n; ++r) *msg.add_devices() = record(device_name(r), 1000 + r, 1, 1);
  return sync::encode(msg).size();
}

void VirtualTwins::start_flood(uint64_t messages, uint32_t per_message, uint32_t window) {
  flood_left_ = messages;
  per_message_ = per_message;
  window_ = std::max<uint32_t>(1, window);
}

void VirtualTwins::flood_step() {
  for (uint32_t k = 0; k < nodes_ && flood_left_ > 0; ++k) {
    const uint32_t node = (flood_node_ + k) % nodes_;
    const auto& mine = by_node_[node];
    if (mine.empty() || !fleet_.connected(node)) continue;
    const uint32_t per = per_message_ == 0 ? static_cast<uint32_t>(mine.size())
                                           : std::min<uint32_t>(per_message_, mine.size());
    const uint32_t groups = static_cast<uint32_t>((mine.size() + per - 1) / per);
    while (flood_left_ > 0 && flood_inflight_[node] < groups &&
           fleet_.inflight_of(node) < window_) {
      pb::TwinReported msg;
      msg.set_node(fleet_.node_name(node));
      for (uint32_t r = 0; r < per; ++r) {
        const uint32_t i = mine[flood_cursor_[node]];
        flood_cursor_[node] = (flood_cursor_[node] + 1) % mine.size();
        Device& d = devices_[i];
        ++d.reported_version;
        d.observed_desired = d.desired_version;  // the device acted on what it holds
        add_record(msg, i);
      }
      --flood_left_;
      ++flood_inflight_[node];
      ++counters_.flood_sent;
      counters_.flood_records += per;
      ++counters_.report_msgs;
      counters_.report_records += per;
      fleet_.publish_up(node, "twin", sync::encode(msg), 1, [this, node] {
        --flood_inflight_[node];
        ++counters_.flood_acked;
      });
    }
  }
  flood_node_ = (flood_node_ + 1) % nodes_;
}

}  // namespace flotilla::bench
