#include "cloud-hub/sync_server.hpp"

#include "cloud-hub/up_message.hpp"

#include <algorithm>
#include <cstdio>
#include <iterator>
#include <limits>
#include <random>
#include <type_traits>
#include <unordered_map>

#include "common/log.hpp"
#include "common/thread_name.hpp"
#include "sync/codec.hpp"
#include "sync/desired_parts.hpp"
#include "sync/topics.hpp"

namespace flotilla::hub {
namespace {

namespace pb = flotilla::v1;

// A HubOnline with a fresh random epoch: agents that see a new epoch say hello again.
std::string new_announcement() {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  char epoch[17];
  std::snprintf(epoch, sizeof(epoch), "%016llx", static_cast<unsigned long long>(rng()));
  pb::HubOnline online;
  online.set_epoch(epoch);
  online.set_protocol_version(sync::kProtocolVersion);
  return sync::encode(online);
}

}  // namespace

SyncServer::SyncServer(sync::Transport& transport, Controller& controller, Metrics& metrics,
                       uint32_t shards, bool ingest_thread)
    : transport_(transport),
      controller_(controller),
      metrics_(metrics),
      shards_(shards),
      log_(log::get("sync")),
      ingest_thread_(ingest_thread) {
  for (uint32_t i = 0; i < shards_; ++i) lanes_.push_back(std::make_unique<Lane>());
}

SyncServer::~SyncServer() { stop(); }

void SyncServer::stop() {
  stopping_ = true;
  for (auto& lane : lanes_) {
    { std::lock_guard lock(lane->mu); }  // a waiter sees stopping_ once it waits again
    lane->cv.notify_all();
  }
  for (auto& lane : lanes_) {
    if (lane->thread.joinable()) lane->thread.join();
  }
}

void SyncServer::enqueue(const sync::Message& m) {
  // A topic that does not parse goes to shard 0, whose thread drops it.
  auto topic = sync::parse_topic(m.topic);
  const uint32_t shard = topic && topic->shard < shards_ ? topic->shard : 0;
  Lane& lane = *lanes_[shard];
  const size_t cap = std::max<size_t>(kMaxQueuedBytes / shards_, size_t{1} << 20);
  std::unique_lock lock(lane.mu);
  // Waiting here stops the transport reading: the broker keeps the rest (QoS 1).
  lane.cv.wait(lock, [&] { return stopping_ || lane.bytes < cap; });
  lane.bytes += m.payload.size() + m.topic.size();
  lane.queue.emplace_back(m, std::chrono::steady_clock::now());
  lock.unlock();
  lane.cv.notify_all();
}

void SyncServer::ingest_loop(uint32_t shard) {
  set_thread_name("hub-ingest-" + std::to_string(shard));
  Lane& lane = *lanes_[shard];
  const MetricLabels labels{{"shard", std::to_string(shard)}};
  std::vector<sync::Message> batch;
  for (;;) {
    {
      std::unique_lock lock(lane.mu);
      lane.cv.wait(lock, [&] { return stopping_ || !lane.queue.empty(); });
      if (lane.queue.empty()) return;  // stopping, and all handled
      lane.busy = true;
      const size_t n = std::min(lane.queue.size(), kMaxBatch);
      for (size_t i = 0; i < n; ++i) {
        auto& front = lane.queue.front().first;
        lane.bytes -= front.payload.size() + front.topic.size();
        batch.push_back(std::move(front));
        lane.queue.pop_front();
      }
    }
    lane.cv.notify_all();
    std::vector<UpMessage> decoded;
    decoded.reserve(batch.size());
    for (const auto& m : batch) {
      if (auto d = decode(m)) decoded.push_back(std::move(*d));
    }
    KindCounts handled{};
    for (const auto& d : decoded) ++handled[d.index()];
    size_t merged = 0;
    const auto coalesced = coalesce_status(std::move(decoded), merged);
    if (merged > 0) metrics_.count("flotilla_hub_status_batches_coalesced_total", {}, merged);
    if (lane.owned) {
      controller_.batch(shard, [&] {
        for (const auto& d : coalesced) dispatch(d);
      });
    } else {
      for (const auto& d : coalesced) dispatch_update(d);
    }
    count_handled(handled);
    metrics_.count("flotilla_hub_ingest_batches_total");
    metrics_.count("flotilla_hub_ingest_batched_messages_total", {}, batch.size());
    metrics_.count("flotilla_hub_shard_messages_total", labels, batch.size());
    batch.clear();
    {
      std::lock_guard lock(lane.mu);
      lane.busy = false;
    }
    lane.cv.notify_all();
  }
}

void SyncServer::wait_idle() {
  for (auto& lane : lanes_) wait_idle(*lane);
}

void SyncServer::wait_idle(Lane& lane) {
  if (!ingest_thread_) return;
  std::unique_lock lock(lane.mu);
  lane.cv.wait(lock, [&] { return stopping_ || (lane.queue.empty() && !lane.busy); });
}

void SyncServer::set_owned(uint32_t shard, bool owned) {
  Lane& lane = *lanes_.at(shard);
  if (lane.owned.exchange(owned) == owned) return;
  const std::string filter = sync::shard_up_filter(shard);
  if (!owned) {
    {
      std::lock_guard lock(fleet_mu_);
      sync_fleet_updates_locked(shard);  // before the shard's whole filter goes
    }
    if (auto st = transport_.unsubscribe(filter); !st) {
      log_->warn("unsubscribe failed shard={} error='{}'", shard, st.error().message());
    }
    wait_idle(lane);
    log_->info("shard {} let go", shard);
    return;
  }
  if (auto st = transport_.subscribe(filter, 1); !st) {
    log_->warn("subscribe failed shard={} error='{}'", shard, st.error().message());
  }
  {
    std::lock_guard lock(fleet_mu_);
    sync_fleet_updates_locked(shard);  // after the whole filter came
  }
  // Not connected: the announcement on connect covers this shard (owned is set).
  if (transport_.connected()) announce(shard, new_announcement());
  log_->info("shard {} taken", shard);
}

void SyncServer::set_fleet_updates(bool on) {
  std::lock_guard lock(fleet_mu_);
  if (fleet_updates_.exchange(on) == on) return;
  log_->info("{} the hellos and update reports of shards owned by other instances",
             on ? "hearing" : "no longer hearing");
  for (uint32_t shard = 0; shard < shards_; ++shard) sync_fleet_updates_locked(shard);
}

void SyncServer::sync_fleet_updates_locked(uint32_t shard) {
  Lane& lane = *lanes_[shard];
  const bool want = fleet_updates_ && !lane.owned;
  if (lane.fleet_updates == want) return;
  lane.fleet_updates = want;
  const std::string base = "flotilla/v1/s/" + std::to_string(shard) + "/n/+/up/";
  for (const char* kind : {"hello", "ota"}) {
    auto st = want ? transport_.subscribe(base + kind, 1) : transport_.unsubscribe(base + kind);
    if (!st) {
      log_->warn("{} failed topic={} error='{}'", want ? "subscribe" : "unsubscribe", base + kind,
                 st.error().message());
    }
  }
}

std::string SyncServer::gauges_text() {
  std::string depth = "# TYPE flotilla_hub_shard_queue_messages gauge\n";
  std::string lag = "# TYPE flotilla_hub_shard_lag_seconds gauge\n";
  const auto now = std::chrono::steady_clock::now();
  for (uint32_t i = 0; i < lanes_.size(); ++i) {
    Lane& lane = *lanes_[i];
    size_t n = 0;
    double age = 0;
    {
      std::lock_guard lock(lane.mu);
      n = lane.queue.size();
      if (n > 0) age = std::chrono::duration<double>(now - lane.queue.front().second).count();
    }
    const std::string labels = "{shard=\"" + std::to_string(i) + "\"} ";
    depth += "flotilla_hub_shard_queue_messages" + labels + std::to_string(n) + "\n";
    lag += "flotilla_hub_shard_lag_seconds" + labels + std::to_string(age) + "\n";
  }
  return depth + lag;
}

Status SyncServer::start() {
  if (ingest_thread_) {
    for (uint32_t i = 0; i < lanes_.size(); ++i) {
      if (!lanes_[i]->thread.joinable()) {
        lanes_[i]->thread = std::thread([this, i] { ingest_loop(i); });
      }
    }
  }
  transport_.set_handlers(
      [this](const sync::Message& m) {
        if (ingest_thread_) {
          enqueue(m);
        } else {
          handle(m);
        }
      },
      [this](bool connected) {
        if (connected) {
          log_->info("connected to broker");
          announce();
        } else {
          log_->warn("disconnected from broker");
        }
      });
  for (uint32_t shard = 0; shard < shards_; ++shard) {
    if (!lanes_[shard]->owned) continue;
    if (auto st = transport_.subscribe(sync::shard_up_filter(shard), 1); !st) {
      return st.error().WithContext("Failed to subscribe to shard " + std::to_string(shard));
    }
  }
  return transport_.start();
}

void SyncServer::announce() {
  const std::string payload = new_announcement();
  uint32_t owned = 0;
  for (uint32_t shard = 0; shard < shards_; ++shard) {
    if (!lanes_[shard]->owned) continue;
    announce(shard, payload);
    ++owned;
  }
  log_->info("hub announced shards={} of {}", owned, shards_);
}

void SyncServer::announce(uint32_t shard, const std::string& payload) {
  if (auto st = transport_.publish_retained(sync::hub_online_topic(shard), payload); !st) {
    log_->warn("hub announcement failed shard={} error='{}'", shard, st.error().message());
  }
}

void SyncServer::drop(const std::string& kind, const std::string& reason,
                      const std::string& detail) {
  metrics_.count("flotilla_hub_messages_dropped_total", {{"kind", kind}, {"reason", reason}});
  log_->warn("message dropped kind={} reason={} detail='{}'", kind, reason, detail);
}

void SyncServer::handle(const sync::Message& m) {
  if (auto d = decode(m)) {
    auto topic = sync::parse_topic(m.topic);  // decode() checked it
    if (lanes_[topic->shard]->owned) {
      dispatch(*d);
    } else {
      dispatch_update(*d);
    }
    KindCounts handled{};
    ++handled[d->index()];
    count_handled(handled);
  }
}

void SyncServer::count_handled(const KindCounts& handled) {
  static const char* const kKinds[] = {"hello", "heartbeat", "ack", "status",
                                       "will",  "twin",      "ota"};
  static_assert(std::size(kKinds) == std::tuple_size_v<KindCounts>);
  for (size_t k = 0; k < handled.size(); ++k) {
    if (handled[k] > 0) {
      metrics_.count("flotilla_hub_messages_handled_total", {{"kind", kKinds[k]}}, handled[k]);
    }
  }
}

std::optional<UpMessage> SyncServer::decode(const sync::Message& m) {
  auto topic = sync::parse_topic(m.topic);
  if (!topic) {
    drop("unknown", "bad_topic", topic.error().message());
    return std::nullopt;
  }
  const std::string& kind = topic->kind;
  if (topic->direction != sync::Direction::kUp) {
    drop(kind, "bad_topic", m.topic);
    return std::nullopt;
  }
  if (topic->shard != sync::shard_of(topic->node, shards_)) {
    drop(kind, "wrong_shard", m.topic);
    return std::nullopt;
  }
  // Of another instance's shard, only what set_fleet_updates asked for.
  if (!lanes_[topic->shard]->owned &&
      !(fleet_updates_ && rollouts_ != nullptr && (kind == "hello" || kind == "ota"))) {
    drop(kind, "not_owned", m.topic);
    return std::nullopt;
  }
  metrics_.count("flotilla_hub_messages_received_total", {{"kind", kind}});

  // Decodes as M and checks the payload's node against the topic's.
  auto checked = [&](auto type_tag) -> std::optional<UpMessage> {
    using M = decltype(type_tag);
    auto msg = sync::decode<M>(m.payload);
    if (!msg) {
      drop(kind, m.payload.size() > sync::kMaxMessageBytes ? "too_large" : "malformed",
           msg.error().message());
      return std::nullopt;
    }
    if (msg->node() != topic->node) {
      drop(kind, "node_mismatch",
           "payload node '" + msg->node() + "' on topic of node '" + topic->node + "'");
      return std::nullopt;
    }
    return UpMessage(std::move(*msg));
  };

  // Revisions are stored as SQLite integers and the hub issues revision + 1: a claim beyond
  // INT64_MAX was never issued by any hub and would wrap.
  auto revision_ok = [&](uint64_t revision) {
    if (revision <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) return true;
    drop(kind, "bad_revision", "revision " + std::to_string(revision) + " out of range");
    return false;
  };

  std::optional<UpMessage> d;
  if (kind == "hello") {
    d = checked(pb::Hello());
    if (d && !revision_ok(std::get<pb::Hello>(*d).acked_revision())) d.reset();
    if (d) {
      const auto& hello = std::get<pb::Hello>(*d);
      if (auto v = sync::negotiate_version(hello.protocol_version(), hello.min_protocol_version());
          !v) {
        drop(kind, "unsupported_version", "node '" + hello.node() + "' " + v.error().message());
        d.reset();
      }
    }
  } else if (kind == "heartbeat") {
    d = checked(pb::Heartbeat());
    if (d && !revision_ok(std::get<pb::Heartbeat>(*d).acked_revision())) d.reset();
  } else if (kind == "ack") {
    d = checked(pb::Ack());
    if (d && !revision_ok(std::get<pb::Ack>(*d).revision())) d.reset();
  } else if (kind == "status") {
    d = checked(pb::StatusBatch());
  } else if (kind == "will") {
    d = checked(pb::Offline());
  } else if (kind == "twin") {
    d = checked(pb::TwinReported());
  } else if (kind == "ota") {
    d = checked(pb::UpdateReport());
  } else {
    drop(kind, "bad_topic", m.topic);
  }
  return d;
}

void SyncServer::dispatch(const UpMessage& d) {
  std::visit(
      [this](const auto& msg) {
        using M = std::decay_t<decltype(msg)>;
        if constexpr (std::is_same_v<M, pb::Hello>) {
          controller_.on_hello(msg);
          // Level-triggered: an unfinished update is sent again after every hello.
          if (rollouts_ != nullptr) rollouts_->on_hello(msg.node());
        }
        if constexpr (std::is_same_v<M, pb::Heartbeat>) controller_.on_heartbeat(msg);
        if constexpr (std::is_same_v<M, pb::Ack>) controller_.on_ack(msg);
        if constexpr (std::is_same_v<M, pb::StatusBatch>) controller_.on_status(msg);
        if constexpr (std::is_same_v<M, pb::Offline>) controller_.on_will(msg);
        if constexpr (std::is_same_v<M, pb::TwinReported>) controller_.on_twin_reported(msg);
        if constexpr (std::is_same_v<M, pb::UpdateReport>) {
          if (rollouts_ != nullptr) rollouts_->on_report(msg);
        }
      },
      d);
}

void SyncServer::dispatch_update(const UpMessage& d) {
  if (rollouts_ == nullptr) return;
  if (const auto* hello = std::get_if<pb::Hello>(&d)) rollouts_->on_hello(hello->node());
  if (const auto* report = std::get_if<pb::UpdateReport>(&d)) rollouts_->on_report(*report);
}

}  // namespace flotilla::hub
