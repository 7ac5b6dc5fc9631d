// VirtualFleet: simulated agents that speak protocol v1 (docs/protocol.md) over real MQTT.
//
// Each virtual node says Hello (labels, capacity, runtimes ["process"]) and a full StatusBatch
// on connect and on every HubOnline epoch it has not answered, sends heartbeats, keeps its
// desired set in memory (snapshot / delta / duplicate / gap handling as the agent does), acks
// each revision once "persisted", and reports every new instance as Running in one coalesced
// StatusBatch per node per loop round. `nodes_per_connection` nodes share one MQTT connection;
// with 1, each node has its own connection (client id flotilla-agent-{node}) and its own will.
//
// Device twins (bench/virtual_twins.hpp) and OTA updates (bench/virtual_ota.hpp) hook in through
// set_down_hooks: without hooks for a kind a node ignores down/{kind}.
//
// Thread-safety: construct, then use only on the loop thread (scenarios go through
// EventLoop::post / call_on_loop); counters() may be read from any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "bench/call_on_loop.hpp"
#include "bench/event_loop.hpp"
#include "bench/mqtt_conn.hpp"
#include "sync/flotilla.pb.h"

namespace flotilla::bench {

using SteadyTime = std::chrono::steady_clock::time_point;

struct FleetOptions {
  uint16_t broker_port = 1883;
  uint32_t nodes = 10;
  uint32_t nodes_per_connection = 1;
  uint32_t shards = 16;
  std::string prefix = "sim";
  std::map<std::string, std::string> labels{{"fleet", "sim"}};
  int64_t cpu_millis = 4000;
  int64_t memory_bytes = 4LL << 30;
  std::chrono::milliseconds heartbeat{5000};
  uint32_t max_connecting = 256;  // TCP/MQTT handshakes in progress at once
};

struct FleetCounters {
  std::atomic<uint64_t> connections_up{0};
  std::atomic<uint64_t> connects{0};
  std::atomic<uint64_t> connection_losses{0};
  std::atomic<uint64_t> hellos{0};
  std::atomic<uint64_t> heartbeats{0};
  std::atomic<uint64_t> acks{0};
  std::atomic<uint64_t> status_batches{0};
  std::atomic<uint64_t> status_records{0};
  std::atomic<uint64_t> desired_msgs{0};
  std::atomic<uint64_t> desired_bytes{0};
  std::atomic<uint64_t> desired_snapshots{0};
  std::atomic<uint64_t> desired_gaps{0};
  std::atomic<uint64_t> resyncs{0};
  std::atomic<uint64_t> blast_sent{0};
  std::atomic<uint64_t> blast_acked{0};
  std::atomic<uint64_t> sys_received{0};  // $SYS/broker/messages/received (latest)
  std::atomic<uint64_t> sys_sent{0};      // $SYS/broker/messages/sent (latest)
};

class VirtualFleet {
 public:
  VirtualFleet(EventLoop& loop, FleetOptions options);
  ~VirtualFleet();

  const FleetCounters& counters() const { return counters_; }
  const FleetOptions& options() const { return options_; }
  std::string node_name(uint32_t index) const;

  // Loop thread only from here on.
  // Starts connecting every connection (at most max_connecting handshakes at a time) and a
  // monitor connection subscribed to the broker's $SYS message counters.
  void start();
  // Called by the loop after every round.
  void on_idle();
  // Drops (no DISCONNECT: the broker sends the will) / re-opens the connection of a node.
  void drop_connection_of(uint32_t node);
  void reconnect_connection_of(uint32_t node);
  // The node's agent "dies" while its connection (shared with others) stays up: its will
  // (Offline) is published for it, and it sends nothing more (no heartbeat, hello or status).
  // False when its connection is down (nothing sent).
  bool go_offline(uint32_t node);
  // The index of a node by name (nullopt: not in this fleet).
  std::optional<uint32_t> index_of(const std::string& name) const;

  // Per-node view for the catch-up benchmark.
  struct NodeProbe {
    uint64_t revision = 0;
    uint64_t desired_bytes = 0;  // DesiredState payload bytes received since reset_probe
    uint64_t desired_msgs = 0;
    SteadyTime acked_at{};        // when the broker acknowledged the Ack of `acked_revision`
    uint64_t acked_revision = 0;  // highest revision whose Ack the broker acknowledged
    std::string final_snapshot;   // the node's desired set encoded as a snapshot DesiredState
  };
  NodeProbe probe(uint32_t node) const;
  void reset_probe(uint32_t node);

  // When the broker acknowledged the StatusBatch that first reported each instance of
  // `workload` Running (sim-side startup times).
  std::vector<SteadyTime> running_acked(const std::string& workload) const;

  // Floods the hub with StatusBatch messages of `records` Running records each, from every
  // node, keeping up to `window` unacknowledged batches per connection, `batches` in all.
  void start_blast(uint64_t batches, uint32_t records, uint32_t window, uint32_t instances);
  // Payload size of one blast batch (for the raw-broker comparison).
  size_t blast_payload_size(uint32_t records) const;

  // Messages of one down/{kind} ("twin", "ota"): `on_message` gets each payload with the index
  // of its node; `on_idle` runs at the end of every on_idle(). Empty hooks unhook the kind.
  struct DownHooks {
    std::function<void(uint32_t node, std::string_view payload)> on_message;
    std::function<void()> on_idle;
  };
  void set_down_hooks(const std::string& kind, DownHooks hooks);
  // Publishes `payload` on node's up/{kind} topic over its connection; false (nothing sent)
  // while that connection is down.
  bool publish_up(uint32_t node, const char* kind, std::string_view payload, uint8_t qos,
                  MqttConn::AckHandler on_ack = {});
  bool connected(uint32_t node) const { return conns_[nodes_[node].conn].mqtt->up(); }
  // QoS 1 messages of node's connection not yet acknowledged by the broker.
  size_t inflight_of(uint32_t node) const { return conns_[nodes_[node].conn].mqtt->inflight(); }

 private:
  struct Instance {
    std::string id;
    std::string spec_hash;
  };
  struct Node {
    std::string name;
    uint32_t shard = 0;
    uint32_t conn = 0;
    uint64_t revision = 0;
    uint64_t seq = 0;
    uint64_t instance_counter = 0;
    uint64_t blast_records = 0;  // records blasted so far (picks the next instance id)
    std::string boot_id;
    std::string answered_epoch;
    uint64_t ack_due = 0;  // applied, not yet acked: rides on the next status batch (v3 hubs)
    std::map<std::string, flotilla::v1::WorkloadSpec> desired;
    std::map<std::string, Instance> instances;          // workload -> running instance
    std::vector<flotilla::v1::InstanceStatus> pending;  // records not yet sent
    bool full_pending = false;
    bool dirty = false;
    uint64_t desired_bytes = 0;
    uint64_t desired_msgs = 0;
    uint64_t acked_revision = 0;
    SteadyTime acked_at{};
    uint32_t blast_cursor = 0;
    bool offline = false;  // go_offline(): silent from then on
  };
  struct Conn {
    std::unique_ptr<MqttConn> mqtt;
    std::vector<uint32_t> nodes;
    bool connecting = false;
    bool wanted = true;  // false while deliberately dropped
    SteadyTime retry_at{};
    uint32_t blast_next = 0;
  };

  void connect(uint32_t conn);
  void on_conn_up(uint32_t conn);
  void on_conn_down(uint32_t conn);
  void on_message(uint32_t conn, const Publish& pub);
  void on_hub_online(uint32_t conn, uint32_t shard, std::string_view payload, bool retained);
  void on_desired(Node& node, std::string_view payload);
  void send_hello(Node& node);
  void queue_full_status(Node& node);
  void send_ack(Node& node, uint64_t revision);
  // As the agent: a hub speaking v3 takes the ack in the status batch the apply causes.
  void ack_applied(Node& node);
  void send_heartbeat(Node& node);
  void instance_running(Node& node, const flotilla::v1::WorkloadSpec& spec);
  void instance_removed(Node& node, const std::string& workload);
  void flush_status(Node& node);
  void mark_dirty(Node& node);
  std::string topic(const Node& node, const char* kind) const;
  void blast_step();
  MqttConn& conn_of(const Node& node) { return *conns_[node.conn].mqtt; }

  EventLoop& loop_;
  FleetOptions options_;
  FleetCounters counters_;
  std::vector<Node> nodes_;
  std::vector<uint32_t> hub_version_;  // per shard: the newest version its HubOnline said
  std::vector<Conn> conns_;
  std::unordered_map<std::string, uint32_t> by_name_;
  std::unique_ptr<MqttConn> monitor_;
  uint32_t next_connect_ = 0;
  uint32_t connecting_ = 0;
  std::vector<uint32_t> dirty_;
  SteadyTime last_heartbeat_pass_{};
  double heartbeat_carry_ = 0;
  uint32_t heartbeat_cursor_ = 0;
  // Blast state.
  uint64_t blast_left_ = 0;
  uint32_t blast_records_ = 0;
  uint32_t blast_window_ = 0;
  uint32_t blast_instances_ = 0;
  mutable std::mutex stats_mu_;
  std::map<std::string, std::vector<SteadyTime>> running_acked_;
  std::map<std::string, DownHooks> down_hooks_;
};

}  // namespace flotilla::bench
