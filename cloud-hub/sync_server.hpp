// SyncServer: connects the Controller to the transport. It subscribes to the up/* topics of
// every shard this hub owns (QoS 1) and turns each incoming message into a Controller call,
// after checking it: the topic must parse and belong to an owned shard, the payload must be
// within the size cap and decode, and the payload's node must equal the topic's node. Anything
// else is dropped, logged and counted (flotilla_hub_messages_dropped_total{kind,reason}), and
// changes nothing.
//
// Thread-safety: handle() may be called from any thread (the Controller serialises).
#pragma once

#include <cstdint>
#include <memory>

#include <spdlog/logger.h>

#include "cloud-hub/controller.hpp"
#include "cloud-hub/metrics.hpp"
#include "sync/transport.hpp"

namespace flotilla::hub {

class SyncServer {
 public:
  SyncServer(sync::Transport& transport, Controller& controller, Metrics& metrics, uint32_t shards);

  // Installs the handlers, subscribes to every shard's up/* filter, and starts the transport.
  Status start();
  // One incoming message (the transport's message handler; public for tests).
  void handle(const sync::Message& message);

 private:
  void drop(const std::string& kind, const std::string& reason, const std::string& detail);

  sync::Transport& transport_;
  Controller& controller_;
  Metrics& metrics_;
  uint32_t shards_;
  std::shared_ptr<spdlog::logger> log_;
  // Announces this hub (a fresh epoch per connection) on every shard's retained hub/online.
  void announce();
};

}  // namespace flotilla::hub
