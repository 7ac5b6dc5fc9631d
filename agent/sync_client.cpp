// SyncClient: connection, Hello, desired state, acks and heartbeats. Status sending (full
// status and the outbox) is in sync_client_status.cpp.
#include "agent/sync_client.hpp"

#include <algorithm>
#include <csignal>

#include "agent/desired_validation.hpp"
#include "agent/node_info.hpp"
#include "common/failpoint.hpp"
#include "common/log.hpp"
#include "sync/codec.hpp"
#include "sync/topics.hpp"

#ifndef FLOTILLA_AGENT_VERSION
#define FLOTILLA_AGENT_VERSION "dev"
#endif

namespace flotilla::agent {

sync::TransportOptions make_transport_options(const AgentConfig& config,
                                              const std::string& boot_id) {
  sync::TransportOptions opts;
  opts.server_uri = config.mqtt_uri;
  opts.tls_ca_file = config.mqtt_ca_file;
  opts.tls_cert_file = config.mqtt_cert_file;
  opts.tls_key_file = config.mqtt_key_file;
  opts.cert_check_interval = config.mqtt_cert_check;
  opts.client_id = "flotilla-agent-" + config.node;
  opts.clean_session = true;
  auto keepalive_ms = std::max<int64_t>(2000, 2 * config.sync.heartbeat.count());
  opts.keepalive = std::chrono::seconds((keepalive_ms + 999) / 1000);
  // Retry at least twice per heartbeat period: with Paho's own connect latency (about 1 s after
  // an outage) a node is back within one heartbeat of the broker's return. The transport adds
  // jitter so a fleet does not reconnect in lockstep.
  opts.max_backoff = std::clamp<Millis>(config.sync.heartbeat / 2, Millis(200), Millis(5000));
  opts.min_backoff = std::min<Millis>(opts.min_backoff, opts.max_backoff);
  v1::Offline offline;
  offline.set_node(config.node);
  offline.set_boot_id(boot_id);
  opts.will =
      sync::Message{sync::up_topic(config.node, config.sync.shards, "will"), sync::encode(offline)};
  return opts;
}

SyncClient::SyncClient(const AgentConfig& config, Store& store, sync::Transport& transport,
                       const Clock& clock, std::string boot_id, PostDone post_done)
    : node_(config.node),
      config_(config.sync),
      runtimes_(config.reconciler.runtimes),
      store_(store),
      transport_(transport),
      clock_(clock),
      boot_id_(std::move(boot_id)),
      post_done_(std::move(post_done)) {}

std::string SyncClient::topic(const char* kind) const {
  return sync::up_topic(node_, config_.shards, kind);
}

Status SyncClient::subscribe() {
  if (auto st = transport_.subscribe(sync::node_down_filter(node_, config_.shards), 1); !st) {
    return st;
  }
  return transport_.subscribe(sync::hub_online_topic(sync::shard_of(node_, config_.shards)), 1);
}

void SyncClient::on_hub_online(const std::string& payload, bool retained) {
  auto online = sync::decode<v1::HubOnline>(payload);
  if (!online) return reject("hub/online", online.error().message());
  hub_version_ = online->protocol_version();
  if (online->epoch() == hello_epoch_) return;
  hello_epoch_ = online->epoch();
  // The retained copy comes with our subscription, which every (re)connect makes and follows
  // with a hello: that hub was subscribed before it announced, so it gets that hello.
  if (retained) return;
  log::get("agent")->info("hub online epoch={}; hello", hello_epoch_);
  if (connected_) {
    send_hello();
    send_full_status();
  }
}

void SyncClient::on_connection(bool connected) {
  if (connected == connected_) return;
  connected_ = connected;
  // Batches of the old connection may never complete: stop waiting for them and resend.
  for (auto& [id, batch] : inflight_) stale_.emplace(id, std::move(batch));
  while (stale_.size() > 64) stale_.erase(stale_.begin());
  inflight_.clear();
  inflight_statuses_.clear();
  inflight_events_.clear();
  rescan_ = true;
  retry_at_ = TimePoint{};
  if (!connected) {
    log::get("agent")->warn("hub connection lost; status is kept in the outbox");
    return;
  }
  log::get("agent")->info("connected to broker node={} revision={}", node_,
                          store_.meta().desired_revision);
  send_hello();
  send_full_status();
  // A kill -9 between persisting and acking leaves the ack unsent: ack again once per start.
  if (!acked_since_start_ && store_.meta().desired_revision > 0) {
    send_ack(store_.meta().desired_revision);
  }
  next_heartbeat_ = clock_.now() + config_.heartbeat;
}

void SyncClient::send_hello() {
  v1::Hello hello;
  hello.set_node(node_);
  hello.set_protocol_version(sync::kProtocolVersion);
  hello.set_min_protocol_version(sync::kMinProtocolVersion);
  hello.set_agent_version(FLOTILLA_AGENT_VERSION);
  hello.mutable_labels()->insert(config_.labels.begin(), config_.labels.end());
  for (const auto& t : config_.taints) {
    v1::Taint* taint = hello.add_taints();
    taint->set_key(t.key);
    taint->set_value(t.value);
    taint->set_effect(t.effect);
  }
  hello.mutable_capacity()->set_cpu_millis(config_.cpu_millis > 0 ? config_.cpu_millis
                                                                  : detect_cpu_millis());
  hello.mutable_capacity()->set_memory_bytes(config_.memory_bytes > 0 ? config_.memory_bytes
                                                                      : detect_memory_bytes());
  hello.set_arch(detect_arch());
  for (const auto& runtime : runtimes_) hello.add_runtimes(runtime);
  hello.set_acked_revision(store_.meta().desired_revision);
  hello.set_boot_id(boot_id_);
  for (const auto& id : hub_keys_) hello.add_hub_keys(id);
  ++counters_.hellos;
  (void)transport_.publish(topic("hello"), sync::encode(hello), 1);
}

bool SyncClient::hub_takes_acks_in_status() const {
  return hub_version_ >= sync::kAckInStatusSinceVersion;
}

void SyncClient::ack_applied(uint64_t revision) {
  if (hub_takes_acks_in_status()) {
    ack_due_ = std::max(ack_due_, revision);
  } else {
    send_ack(revision);
  }
}

void SyncClient::send_ack(uint64_t revision) {
  ack_due_ = 0;
  v1::Ack ack;
  ack.set_node(node_);
  ack.set_revision(revision);
  acked_since_start_ = true;
  (void)transport_.publish(topic("ack"), sync::encode(ack), 1);
}

void SyncClient::reject(const std::string& topic, const std::string& why) {
  ++counters_.rejected_messages;
  log::get("agent")->warn("message dropped topic={} reason='{}' dropped_total={}", topic, why,
                          counters_.rejected_messages);
}

bool SyncClient::on_message(const sync::Message& message) {
  if (message.topic == sync::hub_online_topic(sync::shard_of(node_, config_.shards))) {
    on_hub_online(message.payload, message.retained);
    return false;
  }
  auto parsed = sync::parse_topic(message.topic);
  if (!parsed) {
    reject(message.topic, parsed.error().message());
    return false;
  }
  if (parsed->node != node_ || parsed->direction != sync::Direction::kDown ||
      parsed->shard != sync::shard_of(node_, config_.shards)) {
    reject(message.topic, "not addressed to this node");
    return false;
  }
  if (parsed->kind == "desired") return handle_desired(message.payload);
  if (parsed->kind == "resync") {
    auto resync = sync::decode<v1::Resync>(message.payload);
    if (!resync) {
      reject(message.topic, resync.error().message());
      return false;
    }
    log::get("agent")->info("hub asked for resync reason='{}'", resync->reason());
    if (connected_) {
      send_hello();
      send_full_status();
    }
    return false;
  }
  reject(message.topic, "unknown message kind '" + parsed->kind + "'");
  return false;
}

bool SyncClient::handle_desired(const std::string& payload) {
  const std::string where = topic("desired");
  auto msg = sync::decode<v1::DesiredState>(payload);
  if (!msg) {
    reject(where, msg.error().message());
    return false;
  }
  if (auto st = validate_desired(*msg, node_); !st) {
    reject(where, "Failed to validate desired state: " + st.error().message());
    return false;
  }
  auto log = log::get("agent");
  const uint64_t revision = store_.meta().desired_revision;
  if (msg->parts() > 1 && msg->to_revision() > revision) {
    ++counters_.parts;
    auto whole = assembler_.add(*msg);
    if (!whole) {
      reject(where, "Failed to collect desired state part: " + whole.error().message());
      return false;
    }
    if (!*whole) {
      log->debug("desired state part {}/{} to_revision={}", msg->part() + 1, msg->parts(),
                 msg->to_revision());
      return false;  // the rest is on its way (or is resent: nothing was acked)
    }
    *msg = std::move(**whole);
    // Each part was checked alone; the whole may still repeat a workload across parts.
    if (auto st = validate_desired(*msg, node_); !st) {
      reject(where, "Failed to validate desired state: " + st.error().message());
      return false;
    }
  }
  if (msg->to_revision() <= revision) {
    ++counters_.duplicates;
    log->debug("desired state is a duplicate to_revision={} revision={}", msg->to_revision(),
               revision);
    send_ack(revision);
    return false;
  }
  // A delta holds the final value of everything changed after from_revision (upserts and
  // deletes are disjoint), so it applies to any revision in [from, to): an agent that already
  // applied an earlier, overlapping delta need not ask again.
  if (!msg->snapshot() && msg->from_revision() > revision) {
    ++counters_.gaps;
    log->warn("desired delta does not follow our revision from={} to={} revision={}; hello",
              msg->from_revision(), msg->to_revision(), revision);
    if (connected_) send_hello();
    return false;
  }
  std::vector<v1::WorkloadSpec> upserts(msg->upserts().begin(), msg->upserts().end());
  std::vector<std::string> deletes;
  if (!msg->snapshot()) deletes.assign(msg->deletes().begin(), msg->deletes().end());
  if (auto st = store_.apply_desired(msg->snapshot(), upserts, deletes, msg->to_revision()); !st) {
    // Not acked: the hub resends, and the next attempt may succeed.
    log->error("{}", st.error().message());
    return false;
  }
  ++counters_.applied;
  log->info("desired state applied revision={} snapshot={} upserts={} deletes={}",
            msg->to_revision(), msg->snapshot(), upserts.size(), deletes.size());
  // Fault tests: a kill -9 in the window between persist and ack (docs/protocol.md says the
  // agent re-acks on restart).
  if (failpoint("agent.after_persist_before_ack")) std::raise(SIGKILL);
  ack_applied(msg->to_revision());
  return true;
}

void SyncClient::tick(uint32_t instances_running) {
  if (!connected_) return;
  if (clock_.now() >= next_heartbeat_) {
    v1::Heartbeat hb;
    hb.set_node(node_);
    hb.set_acked_revision(store_.meta().desired_revision);
    hb.set_status_seq(store_.meta().status_seq);
    hb.set_instances_running(instances_running);
    hb.set_boot_id(boot_id_);
    hb.set_rejected_messages(counters_.rejected_messages);
    (void)transport_.publish(topic("heartbeat"), sync::encode(hb), 0);
    next_heartbeat_ = clock_.now() + config_.heartbeat;
  }
  flush();
  if (ack_due_ != 0) send_ack(ack_due_);  // no status batch took it
}

void SyncClient::say_goodbye(sync::Transport::DoneHandler done) {
  v1::Offline offline;
  offline.set_node(node_);
  offline.set_boot_id(boot_id_);
  (void)transport_.publish(topic("will"), sync::encode(offline), 1, std::move(done));
}

}  // namespace flotilla::agent
