// An in-memory broker and transports for unit tests: messages are delivered synchronously on
// the publisher's thread (or queued while "offline"), with MQTT filter matching. Lets hub and
// agent logic be tested together in milliseconds, without a real broker.
#pragma once

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "sync/transport.hpp"

namespace flotilla::sync {

class FakeTransport;

class FakeBroker {
 public:
  std::unique_ptr<FakeTransport> connect(const std::string& client_id);
  // Takes the broker down: every client disconnects, publishes fail. up=true brings it back
  // and clients reconnect.
  void set_up(bool up);
  bool up() const;
  // Every message routed so far, for assertions.
  std::vector<Message> log() const;
  // The QoS of every publish routed so far, in order (retained publishes count as QoS 1).
  std::vector<int> log_qos() const;
  size_t delivered_count() const;

 private:
  friend class FakeTransport;
  void attach(FakeTransport* t);
  void detach(FakeTransport* t);
  Status route(const FakeTransport* from, const Message& m, bool retain = false, int qos = 1);
  std::vector<Message> retained_matching(const std::string& filter) const;

  mutable std::recursive_mutex mu_;
  std::set<FakeTransport*> clients_;
  std::vector<Message> log_;
  std::vector<int> log_qos_;
  std::map<std::string, std::string> retained_;
  bool up_ = true;
};

class FakeTransport final : public Transport {
 public:
  FakeTransport(FakeBroker* broker, std::string client_id);
  ~FakeTransport() override;

  void set_handlers(MessageHandler on_message, ConnectionHandler on_connection) override;
  Status start() override;
  void stop() override;
  bool connected() const override;
  size_t backlog() const override { return backlog_; }
  // Pretends this many publishes wait to be sent (a busy MQTT client).
  void set_backlog(size_t n) { backlog_ = n; }
  Status subscribe(const std::string& filter, int qos) override;
  Status unsubscribe(const std::string& filter) override;
  Status publish(const std::string& topic, std::string payload, int qos,
                 DoneHandler done = {}) override;
  Status publish_retained(const std::string& topic, std::string payload) override;
  // Set a will to be routed when this client is dropped by set_up(false) or drop().
  void set_will(Message will) { will_ = std::move(will); }
  // Simulates an abrupt disconnect of this client only (will is published).
  void drop();
  void reconnect();

 private:
  friend class FakeBroker;
  size_t backlog_ = 0;
  void deliver(const Message& m);
  void set_connected(bool c, bool send_will);

  FakeBroker* broker_;
  std::string client_id_;
  MessageHandler on_message_;
  ConnectionHandler on_connection_;
  std::vector<std::string> filters_;  // guarded by the broker's mutex: route() reads them
  std::optional<Message> will_;
  bool started_ = false;
  std::atomic<bool> connected_{false};  // route() reads it on the publisher's thread
  bool dropped_ = false;
};

}  // namespace flotilla::sync
