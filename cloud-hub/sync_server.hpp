// SyncServer: connects the Controller to the transport. It subscribes to the up/* topics of
// every shard this hub owns (QoS 1) and turns each incoming message into a Controller call,
// after checking it: the topic must parse and belong to an owned shard, the payload must be
// within the size cap and decode, and the payload's node must equal the topic's node. Anything
// else is dropped, logged and counted (flotilla_hub_messages_dropped_total{kind,reason}), and
// changes nothing.
//
// Ingest: the transport's thread only queues what arrives, on the queue of the message's shard;
// each shard has its own ingest thread, which takes whatever has queued up (up to kMaxBatch
// messages) and hands it to Controller::batch(shard, ...), so a burst costs one commit in that
// shard's store, shards ingest in parallel, and the transport goes back to reading at once. Within
// such a burst, a node's consecutive status batches (not `full` ones, and with nothing else from
// that node between them) are merged into one, keeping each instance's newest record: what the
// controller would have written and then overwritten is written once. So the busier the hub, the
// less it writes. Each queue is bounded in bytes: when one is full the transport's thread waits,
// and the broker holds the rest (QoS 1, persistent session). gauges_text() tells each shard's queue
// length and lag (the age of its oldest queued message); flotilla_hub_shard_messages_total{shard}
// counts what each shard handled. With `ingest_thread` off (unit tests over FakeBroker) messages
// are handled inline.
//
// Thread-safety: handle() may be called from any thread (the Controller serialises).
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include <spdlog/logger.h>

#include "cloud-hub/controller.hpp"
#include "cloud-hub/metrics.hpp"
#include "cloud-hub/up_message.hpp"
#include "cloud-hub/update_rollouts.hpp"
#include "sync/transport.hpp"

namespace flotilla::hub {

class SyncServer {
 public:
  static constexpr size_t kMaxBatch = 2000;                    // messages per store commit
  static constexpr size_t kMaxQueuedBytes = size_t{64} << 20;  // then the transport waits

  SyncServer(sync::Transport& transport, Controller& controller, Metrics& metrics, uint32_t shards,
             bool ingest_thread = true);
  ~SyncServer();

  // OTA rollouts: given UpdateReports (up/ota) and told of every Hello. Set before start();
  // unset: up/ota messages are dropped after decoding.
  void set_rollouts(UpdateRollouts* rollouts) { rollouts_ = rollouts; }
  // Installs the handlers, subscribes to every owned shard's up/* filter, and starts the
  // transport.
  Status start();
  // Several hub instances (docs/multi-hub.md): every shard is owned until told otherwise. A shard
  // taken is subscribed to and announced with a fresh epoch on its hub/online topic, so its
  // agents say hello and send their full status to this instance. A shard let go is
  // unsubscribed from, and returns once what was queued for it has been dropped (messages of a
  // shard not owned are dropped, reason not_owned).
  void set_owned(uint32_t shard, bool owned);
  bool owned(uint32_t shard) const { return lanes_[shard]->owned.load(); }
  // Several instances, and OTA rollouts under way on this one (the hub turns it on while
  // UpdateRollouts::awaiting_reports()): also hear the hellos and update reports of the shards
  // this instance does not own (flotilla/v1/s/NN/n/+/up/hello and .../up/ota; their owners hear
  // them too) and hand them to the rollouts only, so a rollout progresses on nodes whichever
  // instance owns their shards. Off: those subscriptions go.
  void set_fleet_updates(bool on);
  // Stops the ingest thread after it has handled what is queued. Call after the transport
  // stopped delivering.
  void stop();
  // One incoming message, handled now (public for tests).
  void handle(const sync::Message& message);
  // Blocks until everything queued so far has been handled.
  void wait_idle();
  // Per-shard queue gauges in the Prometheus text format.
  std::string gauges_text();

 private:
  void drop(const std::string& kind, const std::string& reason, const std::string& detail);
  // The checked message, or nullopt after dropping it (logged and counted).
  std::optional<UpMessage> decode(const sync::Message& message);
  void dispatch(const UpMessage& message);
  // A message of a shard this instance does not own: hellos and update reports to the rollouts.
  void dispatch_update(const UpMessage& message);
  // Subscribes to or unsubscribes from `shard`'s hello and ota topics as set_fleet_updates and
  // ownership want. fleet_mu_ held.
  void sync_fleet_updates_locked(uint32_t shard);
  // Handled messages by UpMessage alternative, for flotilla_hub_messages_handled_total{kind}
  // (counted once their batch committed: what a benchmark of ingest should read).
  using KindCounts = std::array<uint64_t, std::variant_size_v<UpMessage>>;
  void count_handled(const KindCounts& handled);
  // One shard's queue and the thread that empties it.
  struct Lane {
    std::mutex mu;
    std::condition_variable cv;  // signals both "something queued" and "room freed"
    std::deque<std::pair<sync::Message, std::chrono::steady_clock::time_point>> queue;
    size_t bytes = 0;
    bool busy = false;  // the thread is handling a batch it took off the queue
    std::atomic<bool> owned{true};
    bool fleet_updates = false;  // subscribed to its hello and ota topics (fleet_mu_)
    std::thread thread;
  };
  void enqueue(const sync::Message& message);
  void ingest_loop(uint32_t shard);

  sync::Transport& transport_;
  Controller& controller_;
  Metrics& metrics_;
  uint32_t shards_;
  std::shared_ptr<spdlog::logger> log_;
  bool ingest_thread_;
  UpdateRollouts* rollouts_ = nullptr;

  std::vector<std::unique_ptr<Lane>> lanes_;  // by shard
  std::mutex fleet_mu_;
  std::atomic<bool> fleet_updates_{false};
  std::atomic<bool> stopping_{false};

  // Announces this hub (a fresh epoch per connection) on every owned shard's retained hub/online.
  void announce();
  void announce(uint32_t shard, const std::string& payload);
  // Blocks until the shard's queue is empty and its thread idle.
  void wait_idle(Lane& lane);
};

}  // namespace flotilla::hub
