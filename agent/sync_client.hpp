// agent::SyncClient: the agent's side of the sync protocol (docs/protocol.md) over a Transport.
//
// On every connect it sends Hello and a full StatusBatch; it applies DesiredState messages
// (snapshot, delta, duplicate, gap) by persisting them in the Store and only then acking; it
// sends a Heartbeat every period and flushes the Store's outbox in size-capped QoS 1 batches,
// a few at a time, deleting rows only after the broker acknowledged their batch. While
// disconnected nothing is sent: status accumulates in the outbox.
//
// Thread-safety: every method runs on the agent's loop thread. Publish completions arrive on
// the transport's thread and must be handed back through `post_done` (the agent's LoopQueue),
// which calls on_publish_done() on the loop thread.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "agent/config.hpp"
#include "agent/store.hpp"
#include "common/clock.hpp"
#include "sync/desired_parts.hpp"
#include "sync/transport.hpp"

namespace flotilla::agent {

// Client id, clean session, keepalive (2 x heartbeat, at least 2 s) and last will.
sync::TransportOptions make_transport_options(const AgentConfig& config,
                                              const std::string& boot_id);

struct SyncCounters {
  uint64_t rejected_messages = 0;     // undecodable, oversized, misaddressed, invalid or unsigned
  uint64_t signature_rejections = 0;  // of those: unsigned, forged or signed by an unknown key
  uint64_t key_rotations = 0;         // hub signing keys taken through an endorsement
  uint64_t duplicates = 0;            // desired state at or below our revision (re-acked)
  uint64_t gaps = 0;                  // deltas not starting at our revision (Hello resent)
  uint64_t applied = 0;               // desired states persisted and acked
  uint64_t parts = 0;                 // desired-state parts received (protocol v2)
  uint64_t hellos = 0;
  uint64_t batches_sent = 0;
  uint64_t publish_failures = 0;
};

class SyncClient {
 public:
  using PostDone = std::function<void(uint64_t batch_id, Status status)>;

  SyncClient(const AgentConfig& config, Store& store, sync::Transport& transport,
             const Clock& clock, std::string boot_id, PostDone post_done);

  // Subscribes to this node's down/* topics (before the transport starts).
  Status subscribe();

  void on_connection(bool connected);
  // Returns true when the desired state changed, so the reconciler should run now.
  bool on_message(const sync::Message& message);
  void on_publish_done(uint64_t batch_id, const Status& status);
  // Heartbeat when due; outbox flush when something is new or a batch completed.
  void tick(uint32_t instances_running);

  bool connected() const { return connected_; }
  const SyncCounters& counters() const { return counters_; }
  SyncCounters& counters() { return counters_; }
  // Ids of the hub signing keys the agent trusts, told in every Hello (the hub shows them, so
  // an operator sees when a key rotation reached every node).
  void set_hub_keys(std::vector<std::string> ids) { hub_keys_ = std::move(ids); }
  // Drops a message from the hub: counts it (reported in heartbeats) and logs why.
  void reject(const std::string& topic, const std::string& why);
  // Publishes Offline (what the will would say) for a clean shutdown; `done` as in publish().
  void say_goodbye(sync::Transport::DoneHandler done);

 private:
  using StatusKey = std::pair<std::string, uint64_t>;  // instance id, seq
  struct Batch {
    std::vector<StatusKey> statuses;
    std::vector<uint64_t> events;
  };

  bool handle_desired(const std::string& payload);
  void on_hub_online(const std::string& payload, bool retained);
  void send_hello();
  void send_ack(uint64_t revision);
  // After persisting `revision`: to a hub speaking v3 the ack rides on the status batch this
  // tick sends (the reconciler reports what the apply started), else it goes alone at the end of
  // the tick; to an older hub it goes now.
  void ack_applied(uint64_t revision);
  bool hub_takes_acks_in_status() const;
  void send_full_status();
  void flush();
  void publish_batch(v1::StatusBatch& batch, Batch keys);
  std::string topic(const char* kind) const;
  size_t batch_limit() const;

  std::string node_;
  std::vector<std::string> hub_keys_;
  SyncConfig config_;
  std::vector<std::string> runtimes_;
  Store& store_;
  sync::Transport& transport_;
  const Clock& clock_;
  std::string boot_id_;
  PostDone post_done_;

  bool connected_ = false;
  // Epoch of the last HubOnline answered with Hello; a new one means a hub (re)connected and may
  // have missed our Hello.
  std::string hello_epoch_;
  uint32_t hub_version_ = 0;  // the newest version the shard's hub speaks, as its HubOnline said
  uint64_t ack_due_ = 0;      // a persisted revision whose ack has not gone out yet (v3 hubs)
  bool acked_since_start_ = false;
  TimePoint next_heartbeat_{};
  TimePoint retry_at_{};
  bool rescan_ = true;
  uint64_t scanned_version_ = 0;
  uint64_t next_batch_id_ = 0;
  std::map<uint64_t, Batch> inflight_;  // batches of this connection awaiting their ack
  std::map<uint64_t, Batch> stale_;     // batches sent before the last reconnect
  std::set<StatusKey> inflight_statuses_;
  std::set<uint64_t> inflight_events_;
  SyncCounters counters_;
  sync::DesiredAssembler assembler_;  // parts of a desired state too large for one message
};

}  // namespace flotilla::agent
