#include "bench/virtual_fleet.hpp"

#include <cstdio>
#include <random>

#include "sync/codec.hpp"
#include "sync/desired_parts.hpp"
#include "sync/topics.hpp"

namespace flotilla::bench {
namespace {

namespace pb = flotilla::v1;

int64_t wall_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string random_hex() {
  static std::mt19937_64 rng{std::random_device{}()};
  char buf[17];
  std::snprintf(buf, sizeof(buf), "%016llx", static_cast<unsigned long long>(rng()));
  return buf;
}

}  // namespace

VirtualFleet::VirtualFleet(EventLoop& loop, FleetOptions options)
    : loop_(loop), options_(std::move(options)) {
  nodes_.resize(options_.nodes);
  const uint32_t per = std::max<uint32_t>(1, options_.nodes_per_connection);
  conns_.resize((options_.nodes + per - 1) / per);
  for (uint32_t i = 0; i < options_.nodes; ++i) {
    Node& n = nodes_[i];
    n.name = node_name(i);
    n.shard = sync::shard_of(n.name, options_.shards);
    n.conn = i / per;
    n.boot_id = random_hex();
    conns_[n.conn].nodes.push_back(i);
    by_name_[n.name] = i;
  }
  for (uint32_t c = 0; c < conns_.size(); ++c) {
    ConnectOptions co;
    co.keepalive_s = 600;
    if (per == 1) {
      const Node& n = nodes_[conns_[c].nodes.front()];
      co.client_id = "flotilla-agent-" + n.name;
      pb::Offline will;
      will.set_node(n.name);
      will.set_boot_id(n.boot_id);
      co.will = std::make_pair(topic(n, "will"), sync::encode(will));
    } else {
      co.client_id = "flotilla-fleetsim-" + options_.prefix + "-" + std::to_string(c);
    }
    MqttConn::Handlers h;
    h.on_up = [this, c] { on_conn_up(c); };
    h.on_down = [this, c] { on_conn_down(c); };
    h.on_message = [this, c](const Publish& p) { on_message(c, p); };
    conns_[c].mqtt = std::make_unique<MqttConn>(loop_, options_.broker_port, co, std::move(h));
  }
}

VirtualFleet::~VirtualFleet() = default;

std::string VirtualFleet::node_name(uint32_t index) const {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%s-%06u", options_.prefix.c_str(), index);
  return buf;
}

std::string VirtualFleet::topic(const Node& node, const char* kind) const {
  return sync::up_topic(node.name, options_.shards, kind);
}

void VirtualFleet::start() {
  ConnectOptions co;
  co.client_id = "flotilla-fleetsim-monitor-" + options_.prefix;
  MqttConn::Handlers h;
  h.on_up = [this] {
    monitor_->subscribe({"$SYS/broker/messages/received", "$SYS/broker/messages/sent"}, 0);
  };
  h.on_message = [this](const Publish& p) {
    uint64_t v = std::strtoull(std::string(p.payload).c_str(), nullptr, 10);
    if (p.topic == "$SYS/broker/messages/received") counters_.sys_received = v;
    if (p.topic == "$SYS/broker/messages/sent") counters_.sys_sent = v;
  };
  monitor_ = std::make_unique<MqttConn>(loop_, options_.broker_port, co, std::move(h));
  monitor_->connect();
  last_heartbeat_pass_ = std::chrono::steady_clock::now();
}

void VirtualFleet::connect(uint32_t c) {
  Conn& conn = conns_[c];
  if (!conn.mqtt->idle() || conn.connecting) return;
  if (!conn.mqtt->connect()) {
    conn.retry_at = std::chrono::steady_clock::now() + std::chrono::seconds(1);
    return;
  }
  conn.connecting = true;
  ++connecting_;
  ++counters_.connects;
}

void VirtualFleet::on_conn_up(uint32_t c) {
  Conn& conn = conns_[c];
  if (conn.connecting) {
    conn.connecting = false;
    --connecting_;
  }
  ++counters_.connections_up;
  std::vector<std::string> filters;
  std::vector<bool> shard_seen(options_.shards, false);
  for (uint32_t i : conn.nodes) {
    const Node& n = nodes_[i];
    filters.push_back(sync::node_down_filter(n.name, options_.shards));
    if (!shard_seen[n.shard]) {
      shard_seen[n.shard] = true;
      filters.push_back(sync::hub_online_topic(n.shard));
    }
  }
  // The broker handles a client's packets in order: these subscriptions are in place before
  // the hello below reaches the hub, so its answer cannot be missed.
  conn.mqtt->subscribe(filters, 1);
  for (uint32_t i : conn.nodes) {
    send_hello(nodes_[i]);
    queue_full_status(nodes_[i]);
    if (nodes_[i].revision > 0) send_ack(nodes_[i], nodes_[i].revision);
  }
}

void VirtualFleet::on_conn_down(uint32_t c) {
  Conn& conn = conns_[c];
  if (conn.connecting) {
    conn.connecting = false;
    --connecting_;
  } else {
    --counters_.connections_up;
  }
  ++counters_.connection_losses;
  conn.retry_at = std::chrono::steady_clock::now() + std::chrono::seconds(1);
}

void VirtualFleet::drop_connection_of(uint32_t node) {
  Conn& conn = conns_[nodes_[node].conn];
  conn.wanted = false;
  conn.mqtt->close_abruptly();
}

bool VirtualFleet::go_offline(uint32_t node) {
  Node& n = nodes_[node];
  if (!conn_of(n).up()) return false;
  pb::Offline will;
  will.set_node(n.name);
  will.set_boot_id(n.boot_id);
  conn_of(n).publish(topic(n, "will"), sync::encode(will), 1);
  n.offline = true;
  return true;
}

std::optional<uint32_t> VirtualFleet::index_of(const std::string& name) const {
  auto it = by_name_.find(name);
  if (it == by_name_.end()) return std::nullopt;
  return it->second;
}

void VirtualFleet::reconnect_connection_of(uint32_t node) {
  Conn& conn = conns_[nodes_[node].conn];
  conn.wanted = true;
  connect(nodes_[node].conn);
}

void VirtualFleet::on_message(uint32_t c, const Publish& pub) {
  auto parsed = sync::parse_topic(pub.topic);
  if (!parsed) {
    // hub/online is not a node topic: flotilla/v1/s/{k}/hub/online.
    unsigned shard = 0;
    if (std::sscanf(std::string(pub.topic).c_str(), "flotilla/v1/s/%u/hub/online", &shard) == 1) {
      on_hub_online(c, shard, pub.payload, pub.retained);
    }
    return;
  }
  auto it = by_name_.find(parsed->node);
  if (it == by_name_.end()) return;
  Node& node = nodes_[it->second];
  if (parsed->kind == "desired") {
    on_desired(node, pub.payload);
  } else if (parsed->kind == "resync") {
    ++counters_.resyncs;
    send_hello(node);
    queue_full_status(node);
  } else if (auto hook = down_hooks_.find(parsed->kind);
             hook != down_hooks_.end() && hook->second.on_message) {
    hook->second.on_message(it->second, pub.payload);
  }
}

void VirtualFleet::on_hub_online(uint32_t c, uint32_t shard, std::string_view payload,
                                 bool retained) {
  auto online = sync::decode<pb::HubOnline>(payload);
  if (!online) return;
  if (hub_version_.size() < options_.shards) hub_version_.resize(options_.shards, 0);
  if (shard < hub_version_.size()) hub_version_[shard] = online->protocol_version();
  for (uint32_t i : conns_[c].nodes) {
    Node& n = nodes_[i];
    if (n.shard != shard || n.answered_epoch == online->epoch()) continue;
    n.answered_epoch = online->epoch();
    if (retained) continue;  // as the agent: the connect's hello reaches that hub
    send_hello(n);
    queue_full_status(n);
  }
}

void VirtualFleet::on_desired(Node& node, std::string_view payload) {
  ++counters_.desired_msgs;
  counters_.desired_bytes += payload.size();
  node.desired_bytes += payload.size();
  ++node.desired_msgs;
  auto msg = sync::decode<pb::DesiredState>(payload);
  if (!msg || msg->node() != node.name) return;
  if (!msg->snapshot() && msg->to_revision() <= node.revision) {
    send_ack(node, node.revision);  // duplicate: nothing changes, re-ack
    return;
  }
  if (!msg->snapshot() && msg->from_revision() > node.revision) {
    ++counters_.desired_gaps;
    send_hello(node);  // the hub resends from our revision
    return;
  }
  std::map<std::string, pb::WorkloadSpec> next;
  if (msg->snapshot()) {
    ++counters_.desired_snapshots;
  } else {
    next = node.desired;
  }
  for (const auto& d : msg->deletes()) next.erase(d);
  for (const auto& u : msg->upserts()) next[u.name()] = u;
  // "Persist" (in memory) the new set and revision, then ack, then converge the instances.
  node.desired.swap(next);
  node.revision = msg->to_revision();
  ack_applied(node);
  for (auto it = node.instances.begin(); it != node.instances.end();) {
    if (node.desired.count(it->first) == 0) {
      instance_removed(node, it->first);
      it = node.instances.erase(it);
    } else {
      ++it;
    }
  }
  for (const auto& [name, spec] : node.desired) {
    auto it = node.instances.find(name);
    if (it != node.instances.end() && it->second.spec_hash == spec.spec_hash()) continue;
    if (it != node.instances.end()) instance_removed(node, name);
    instance_running(node, spec);
  }
}

void VirtualFleet::instance_running(Node& node, const pb::WorkloadSpec& spec) {
  Instance inst{spec.name() + "-" + std::to_string(++node.instance_counter), spec.spec_hash()};
  pb::InstanceStatus s;
  s.set_workload(spec.name());
  s.set_instance_id(inst.id);
  s.set_phase(pb::PHASE_RUNNING);
  s.set_spec_hash(spec.spec_hash());
  s.set_pid(static_cast<int64_t>(100000 + node.instance_counter));
  s.set_seq(++node.seq);
  s.set_started_unix_ms(wall_ms());
  node.instances[spec.name()] = std::move(inst);
  node.pending.push_back(std::move(s));
  mark_dirty(node);
}

void VirtualFleet::instance_removed(Node& node, const std::string& workload) {
  auto it = node.instances.find(workload);
  if (it == node.instances.end()) return;
  pb::InstanceStatus s;
  s.set_workload(workload);
  s.set_instance_id(it->second.id);
  s.set_phase(pb::PHASE_SUCCEEDED);
  s.set_spec_hash(it->second.spec_hash);
  s.set_seq(++node.seq);
  s.set_removed(true);
  node.pending.push_back(std::move(s));
  mark_dirty(node);
}

void VirtualFleet::mark_dirty(Node& node) {
  if (node.dirty) return;
  node.dirty = true;
  dirty_.push_back(static_cast<uint32_t>(&node - nodes_.data()));
}

void VirtualFleet::send_hello(Node& node) {
  if (!conn_of(node).up() || node.offline) return;
  pb::Hello h;
  h.set_node(node.name);
  h.set_protocol_version(sync::kProtocolVersion);
  h.set_min_protocol_version(sync::kMinProtocolVersion);  // as the agent: older hubs talk down
  h.set_agent_version("fleetsim");
  h.mutable_labels()->insert(options_.labels.begin(), options_.labels.end());
  h.mutable_capacity()->set_cpu_millis(options_.cpu_millis);
  h.mutable_capacity()->set_memory_bytes(options_.memory_bytes);
  h.set_arch("amd64");
  h.add_runtimes("process");
  h.set_acked_revision(node.revision);
  h.set_boot_id(node.boot_id);
  ++counters_.hellos;
  conn_of(node).publish(topic(node, "hello"), sync::encode(h), 1);
}

void VirtualFleet::queue_full_status(Node& node) {
  node.full_pending = true;
  mark_dirty(node);
}

void VirtualFleet::ack_applied(Node& node) {
  if (node.shard < hub_version_.size() &&
      hub_version_[node.shard] >= sync::kAckInStatusSinceVersion) {
    node.ack_due = node.revision;
    mark_dirty(node);
  } else {
    send_ack(node, node.revision);
  }
}

void VirtualFleet::send_ack(Node& node, uint64_t revision) {
  node.ack_due = 0;
  if (!conn_of(node).up() || node.offline) return;
  pb::Ack a;
  a.set_node(node.name);
  a.set_revision(revision);
  ++counters_.acks;
  conn_of(node).publish(topic(node, "ack"), sync::encode(a), 1, [this, &node, revision] {
    if (revision > node.acked_revision) {
      node.acked_revision = revision;
      node.acked_at = std::chrono::steady_clock::now();
    }
  });
}

void VirtualFleet::send_heartbeat(Node& node) {
  if (node.offline) return;
  pb::Heartbeat hb;
  hb.set_node(node.name);
  hb.set_acked_revision(node.revision);
  hb.set_status_seq(node.seq);
  hb.set_instances_running(static_cast<uint32_t>(node.instances.size()));
  hb.set_boot_id(node.boot_id);
  ++counters_.heartbeats;
  conn_of(node).publish(topic(node, "heartbeat"), sync::encode(hb), 0);
}

void VirtualFleet::flush_status(Node& node) {
  node.dirty = false;
  if (!conn_of(node).up() || node.offline) return;  // re-sent in full on the next connect
  if (node.pending.empty() && !node.full_pending) {
    if (node.ack_due != 0) send_ack(node, node.ack_due);  // nothing to carry it
    return;
  }
  pb::StatusBatch batch;
  batch.set_node(node.name);
  const bool carries_ack = node.shard < hub_version_.size() &&
                           hub_version_[node.shard] >= sync::kAckInStatusSinceVersion;
  if (carries_ack) {
    batch.set_acked_revision(node.revision);
    node.ack_due = 0;
  }
  if (node.full_pending) {
    // A full batch lists every instance's latest record; the agent sends the same.
    batch.set_full(true);
    for (const auto& [workload, inst] : node.instances) {
      bool listed = false;
      for (const auto& p : node.pending) listed |= p.instance_id() == inst.id;
      if (listed) continue;
      auto* s = batch.add_instances();
      s->set_workload(workload);
      s->set_instance_id(inst.id);
      s->set_phase(pb::PHASE_RUNNING);
      s->set_spec_hash(inst.spec_hash);
      s->set_seq(node.seq);
    }
  }
  std::vector<std::string> running;
  for (auto& p : node.pending) {
    if (p.phase() == pb::PHASE_RUNNING) running.push_back(p.workload());
    *batch.add_instances() = std::move(p);
  }
  node.pending.clear();
  node.full_pending = false;
  ++counters_.status_batches;
  counters_.status_records += batch.instances_size();
  conn_of(node).publish(
      topic(node, "status"), sync::encode(batch), 1,
      [this, &node, running = std::move(running), acked = carries_ack ? node.revision : 0] {
        if (acked > node.acked_revision) {
          node.acked_revision = acked;
          node.acked_at = std::chrono::steady_clock::now();
        }
        if (running.empty()) return;
        const SteadyTime now = std::chrono::steady_clock::now();
        std::lock_guard<std::mutex> lock(stats_mu_);
        for (const auto& w : running) running_acked_[w].push_back(now);
      });
}

void VirtualFleet::on_idle() {
  const SteadyTime now = std::chrono::steady_clock::now();
  // Open connections, a bounded number of handshakes at a time.
  while (connecting_ < options_.max_connecting && next_connect_ < conns_.size()) {
    connect(next_connect_++);
  }
  if (next_connect_ >= conns_.size()) {
    for (uint32_t c = 0; c < conns_.size() && connecting_ < options_.max_connecting; ++c) {
      Conn& conn = conns_[c];
      if (conn.wanted && conn.mqtt->idle() && !conn.connecting && now >= conn.retry_at) connect(c);
    }
  }
  // Heartbeats: spread over the period, round-robin over all nodes.
  const double elapsed = std::chrono::duration<double>(now - last_heartbeat_pass_).count();
  last_heartbeat_pass_ = now;
  heartbeat_carry_ +=
      elapsed * options_.nodes / std::chrono::duration<double>(options_.heartbeat).count();
  while (heartbeat_carry_ >= 1.0) {
    heartbeat_carry_ -= 1.0;
    Node& n = nodes_[heartbeat_cursor_];
    heartbeat_cursor_ = (heartbeat_cursor_ + 1) % options_.nodes;
    if (conn_of(n).up()) send_heartbeat(n);
  }
  std::vector<uint32_t> dirty;
  dirty.swap(dirty_);
  for (uint32_t i : dirty) flush_status(nodes_[i]);
  if (blast_left_ > 0) blast_step();
  for (auto& [kind, hooks] : down_hooks_) {
    if (hooks.on_idle) hooks.on_idle();
  }
}

void VirtualFleet::set_down_hooks(const std::string& kind, DownHooks hooks) {
  if (!hooks.on_message && !hooks.on_idle) {
    down_hooks_.erase(kind);
  } else {
    down_hooks_[kind] = std::move(hooks);
  }
}

bool VirtualFleet::publish_up(uint32_t node, const char* kind, std::string_view payload,
                              uint8_t qos, MqttConn::AckHandler on_ack) {
  Node& n = nodes_[node];
  if (!conn_of(n).up()) return false;
  conn_of(n).publish(topic(n, kind), payload, qos, std::move(on_ack));
  return true;
}

VirtualFleet::NodeProbe VirtualFleet::probe(uint32_t index) const {
  const Node& n = nodes_[index];
  NodeProbe p;
  p.revision = n.revision;
  p.desired_bytes = n.desired_bytes;
  p.desired_msgs = n.desired_msgs;
  p.acked_at = n.acked_at;
  p.acked_revision = n.acked_revision;
  pb::DesiredState snap;
  snap.set_node(n.name);
  snap.set_from_revision(0);
  snap.set_to_revision(n.revision);
  snap.set_snapshot(true);
  for (const auto& [name, spec] : n.desired) *snap.add_upserts() = spec;
  p.final_snapshot = sync::encode(snap);
  return p;
}

void VirtualFleet::reset_probe(uint32_t index) {
  nodes_[index].desired_bytes = 0;
  nodes_[index].desired_msgs = 0;
}

std::vector<SteadyTime> VirtualFleet::running_acked(const std::string& workload) const {
  std::lock_guard<std::mutex> lock(stats_mu_);
  auto it = running_acked_.find(workload);
  return it == running_acked_.end() ? std::vector<SteadyTime>{} : it->second;
}

void VirtualFleet::start_blast(uint64_t batches, uint32_t records, uint32_t window,
                               uint32_t instances) {
  blast_left_ = batches;
  blast_instances_ = std::max(instances, records);
  blast_records_ = records;
  blast_window_ = window;
}

size_t VirtualFleet::blast_payload_size(uint32_t records) const {
  pb::StatusBatch batch;
  batch.set_node(nodes_.front().name);
  for (uint32_t r = 0; r < records; ++r) {
    auto* s = batch.add_instances();
    s->set_workload("blast");
    s->set_instance_id("blast-" + std::to_string(r));
    s->set_phase(pb::PHASE_RUNNING);
    s->set_spec_hash(std::string(64, 'a'));
    s->set_pid(123456);
    s->set_seq(1000000 + r);
    s->set_started_unix_ms(wall_ms());
  }
  return sync::encode(batch).size();
}

void VirtualFleet::blast_step() {
  static const std::string kHash(64, 'a');
  const int64_t now_ms = wall_ms();
  for (Conn& conn : conns_) {
    if (blast_left_ == 0) return;
    if (!conn.mqtt->up()) continue;
    while (blast_left_ > 0 && conn.mqtt->inflight() < blast_window_) {
      Node& n = nodes_[conn.nodes[conn.blast_next++ % conn.nodes.size()]];
      pb::StatusBatch batch;
      batch.set_node(n.name);
      for (uint32_t r = 0; r < blast_records_; ++r) {
        auto* s = batch.add_instances();
        s->set_workload("blast");
        s->set_instance_id("blast-" + std::to_string(n.blast_records++ % blast_instances_));
        s->set_phase(pb::PHASE_RUNNING);
        s->set_spec_hash(kHash);
        s->set_pid(123456);
        s->set_seq(++n.seq);
        s->set_started_unix_ms(now_ms);
      }
      --blast_left_;
      ++counters_.blast_sent;
      conn.mqtt->publish(topic(n, "status"), sync::encode(batch), 1,
                         [this] { ++counters_.blast_acked; });
    }
  }
}

}  // namespace flotilla::bench
