#include "cloud-hub/sync_server.hpp"

#include <cstdio>
#include <random>

#include "common/log.hpp"
#include "sync/codec.hpp"
#include "sync/topics.hpp"

namespace flotilla::hub {
namespace {

namespace pb = flotilla::v1;

}  // namespace

SyncServer::SyncServer(sync::Transport& transport, Controller& controller, Metrics& metrics,
                       uint32_t shards)
    : transport_(transport),
      controller_(controller),
      metrics_(metrics),
      shards_(shards),
      log_(log::get("sync")) {}

Status SyncServer::start() {
  transport_.set_handlers([this](const sync::Message& m) { handle(m); },
                          [this](bool connected) {
                            if (connected) {
                              log_->info("connected to broker");
                              announce();
                            } else {
                              log_->warn("disconnected from broker");
                            }
                          });
  for (uint32_t shard = 0; shard < shards_; ++shard) {
    if (auto st = transport_.subscribe(sync::shard_up_filter(shard), 1); !st) {
      return st.error().WithContext("Failed to subscribe to shard " + std::to_string(shard));
    }
  }
  return transport_.start();
}

void SyncServer::announce() {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  char epoch[17];
  std::snprintf(epoch, sizeof(epoch), "%016llx", static_cast<unsigned long long>(rng()));
  pb::HubOnline online;
  online.set_epoch(epoch);
  online.set_protocol_version(sync::kProtocolVersion);
  std::string payload = sync::encode(online);
  for (uint32_t shard = 0; shard < shards_; ++shard) {
    if (auto st = transport_.publish_retained(sync::hub_online_topic(shard), payload); !st) {
      log_->warn("hub announcement failed shard={} error='{}'", shard, st.error().message());
    }
  }
  log_->info("hub announced epoch={} shards={}", epoch, shards_);
}

void SyncServer::drop(const std::string& kind, const std::string& reason,
                      const std::string& detail) {
  metrics_.count("flotilla_hub_messages_dropped_total", {{"kind", kind}, {"reason", reason}});
  log_->warn("message dropped kind={} reason={} detail='{}'", kind, reason, detail);
}

void SyncServer::handle(const sync::Message& m) {
  auto topic = sync::parse_topic(m.topic);
  if (!topic) return drop("unknown", "bad_topic", topic.error().message());
  const std::string& kind = topic->kind;
  if (topic->direction != sync::Direction::kUp) return drop(kind, "bad_topic", m.topic);
  if (topic->shard != sync::shard_of(topic->node, shards_)) {
    return drop(kind, "wrong_shard", m.topic);
  }
  metrics_.count("flotilla_hub_messages_received_total", {{"kind", kind}});

  // Decodes as M and checks the payload's node against the topic's.
  auto checked = [&](auto type_tag) -> std::optional<decltype(type_tag)> {
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
    return std::move(*msg);
  };

  if (kind == "hello") {
    if (auto msg = checked(pb::Hello())) controller_.on_hello(*msg);
  } else if (kind == "heartbeat") {
    if (auto msg = checked(pb::Heartbeat())) controller_.on_heartbeat(*msg);
  } else if (kind == "ack") {
    if (auto msg = checked(pb::Ack())) controller_.on_ack(*msg);
  } else if (kind == "status") {
    if (auto msg = checked(pb::StatusBatch())) controller_.on_status(*msg);
  } else if (kind == "will") {
    if (auto msg = checked(pb::Offline())) controller_.on_will(*msg);
  } else {
    drop(kind, "bad_topic", m.topic);
  }
}

}  // namespace flotilla::hub
