// LoopQueue: how the transport's thread hands work to the agent's single loop thread.
//
// Transport callbacks (messages, connection changes, publish completions) only push here; the
// loop thread takes everything queued and handles it, so the store, reconciler and sync logic
// never run concurrently. Messages beyond kMaxQueuedMessages are dropped (and counted): the hub
// resends desired state, so a flood cannot exhaust memory.
//
// Thread-safety: push() and wake() from any thread; take_all() and wait() from the loop thread.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <variant>

#include "common/expected.hpp"
#include "sync/transport.hpp"

namespace flotilla::agent {

struct ConnectionChanged {
  bool connected = false;
};

struct PublishDone {
  uint64_t batch_id = 0;
  Status status;
};

// The same, for the device bridge's broker and TwinReported batches (agent/twin_sync.hpp).
struct DeviceBrokerChanged {
  bool connected = false;
};

struct TwinPublishDone {
  uint64_t batch_id = 0;
  Status status;
};

using LoopEvent = std::variant<sync::Message, ConnectionChanged, PublishDone, DeviceBrokerChanged,
                               TwinPublishDone>;

class LoopQueue {
 public:
  static constexpr size_t kMaxQueuedMessages = 10000;

  void push(LoopEvent event) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (std::holds_alternative<sync::Message>(event) && messages_ >= kMaxQueuedMessages) {
        ++dropped_;
        return;
      }
      if (std::holds_alternative<sync::Message>(event)) ++messages_;
      events_.push_back(std::move(event));
    }
    cv_.notify_one();
  }

  // Wakes a wait() without an event (e.g. to stop).
  void wake() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      woken_ = true;
    }
    cv_.notify_one();
  }

  std::deque<LoopEvent> take_all() {
    std::lock_guard<std::mutex> lock(mu_);
    std::deque<LoopEvent> out;
    out.swap(events_);
    messages_ = 0;
    return out;
  }

  // Blocks until an event is queued, wake() is called or `timeout` passes.
  void wait(std::chrono::milliseconds timeout) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait_for(lock, timeout, [this] { return !events_.empty() || woken_; });
    woken_ = false;
  }

  uint64_t dropped() const {
    std::lock_guard<std::mutex> lock(mu_);
    return dropped_;
  }

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<LoopEvent> events_;
  size_t messages_ = 0;
  uint64_t dropped_ = 0;
  bool woken_ = false;
};

}  // namespace flotilla::agent
