// SyncServer: connects the Controller to the transport. It subscribes to the up/* topics of
// every shard this hub owns (QoS 1) and turns each incoming message into a Controller call,
// after checking it: the topic must parse and belong to an owned shard, the payload must be
// within the size cap and decode, and the payload's node must equal the topic's node. Anything
// else is dropped, logged and counted (flotilla_hub_messages_dropped_total{kind,reason}), and
// changes nothing.
//
// Ingest: the transport's thread only queues what arrives; one ingest thread takes whatever has
// queued up (up to kMaxBatch messages) and hands it to Controller::batch(), so a burst costs one
// store commit, and the transport goes back to reading at once. Within such a burst, a node's
// consecutive status batches (not `full` ones, and with nothing else from that node between
// them) are merged into one, keeping each instance's newest record: what the controller would
// have written and then overwritten is written once. So the busier the hub, the less it writes. The
// queue is bounded in bytes: when it is full the transport's thread waits, and the broker holds the
// rest (QoS 1, persistent session). With `ingest_thread` off (unit tests over FakeBroker) messages
// are handled inline.
//
// Thread-safety: handle() may be called from any thread (the Controller serialises).
#pragma once

#include <array>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>

#include <spdlog/logger.h>

#include "cloud-hub/controller.hpp"
#include "cloud-hub/metrics.hpp"
#include "cloud-hub/up_message.hpp"
#include "sync/transport.hpp"

namespace flotilla::hub {

class SyncServer {
 public:
  static constexpr size_t kMaxBatch = 2000;                    // messages per store commit
  static constexpr size_t kMaxQueuedBytes = size_t{64} << 20;  // then the transport waits

  SyncServer(sync::Transport& transport, Controller& controller, Metrics& metrics, uint32_t shards,
             bool ingest_thread = true);
  ~SyncServer();

  // Installs the handlers, subscribes to every shard's up/* filter, and starts the transport.
  Status start();
  // Stops the ingest thread after it has handled what is queued. Call after the transport
  // stopped delivering.
  void stop();
  // One incoming message, handled now (public for tests).
  void handle(const sync::Message& message);
  // Blocks until everything queued so far has been handled.
  void wait_idle();

 private:
  void drop(const std::string& kind, const std::string& reason, const std::string& detail);
  // The checked message, or nullopt after dropping it (logged and counted).
  std::optional<UpMessage> decode(const sync::Message& message);
  void dispatch(const UpMessage& message);
  // Handled messages by UpMessage alternative, for flotilla_hub_messages_handled_total{kind}
  // (counted once their batch committed: what a benchmark of ingest should read).
  using KindCounts = std::array<uint64_t, std::variant_size_v<UpMessage>>;
  void count_handled(const KindCounts& handled);
  void enqueue(const sync::Message& message);
  void ingest_loop();

  sync::Transport& transport_;
  Controller& controller_;
  Metrics& metrics_;
  uint32_t shards_;
  std::shared_ptr<spdlog::logger> log_;
  bool ingest_thread_;

  std::mutex queue_mu_;
  std::condition_variable queue_cv_;  // signals both "something queued" and "room freed"
  std::deque<sync::Message> queue_;
  size_t queued_bytes_ = 0;
  bool busy_ = false;  // the ingest thread is handling a batch it took off the queue
  bool stopping_ = false;
  std::thread ingest_;

  // Announces this hub (a fresh epoch per connection) on every shard's retained hub/online.
  void announce();
};

}  // namespace flotilla::hub
