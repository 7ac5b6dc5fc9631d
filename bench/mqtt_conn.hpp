// MqttConn: one non-blocking MQTT 3.1.1 client connection driven by an EventLoop.
//
// Output is appended to a buffer and written once per loop round, so a burst of publishes costs
// one write; QoS 1 publishes are pipelined (no per-message round trip) up to `max_inflight`,
// beyond which they wait in a local queue. Closing without DISCONNECT makes the broker publish
// the will, as a crashed agent's would.
//
// Thread-safety: loop thread only.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <string>
#include <unordered_map>
#include <vector>

#include "bench/event_loop.hpp"
#include "bench/mqtt_wire.hpp"

namespace flotilla::bench {

class MqttConn {
 public:
  struct Handlers {
    std::function<void()> on_up;  // CONNACK accepted
    std::function<void(const Publish&)> on_message;
    std::function<void()> on_down;  // closed by us or by the peer
  };
  using AckHandler = std::function<void()>;

  MqttConn(EventLoop& loop, uint16_t port, ConnectOptions options, Handlers handlers,
           size_t max_inflight = 20000);
  ~MqttConn();
  MqttConn(const MqttConn&) = delete;
  MqttConn& operator=(const MqttConn&) = delete;

  // Starts a TCP connect to 127.0.0.1:port and queues CONNECT. False when the socket failed.
  bool connect();
  // Drops the TCP connection without DISCONNECT: the broker sends the will.
  void close_abruptly();
  void disconnect();

  bool up() const { return state_ == State::kUp; }
  bool idle() const { return state_ == State::kIdle; }
  size_t inflight() const { return acks_.size() + queued_.size(); }

  void subscribe(const std::vector<std::string>& filters, uint8_t qos);
  // `on_ack` runs when the broker acknowledged a QoS 1 message.
  void publish(const std::string& topic, std::string_view payload, uint8_t qos,
               AckHandler on_ack = {});

 private:
  enum class State { kIdle, kConnecting, kUp };

  void on_events(uint32_t events);
  void read_all();
  void flush();
  void mark_dirty();
  void teardown();
  uint16_t next_id();
  void send_publish(const std::string& topic, std::string_view payload, uint8_t qos,
                    AckHandler on_ack);

  EventLoop& loop_;
  uint16_t port_;
  ConnectOptions options_;
  Handlers handlers_;
  size_t max_inflight_;
  int fd_ = -1;
  State state_ = State::kIdle;
  bool dirty_ = false;
  bool want_write_ = false;
  std::string out_;
  PacketParser parser_;
  uint16_t last_id_ = 0;
  std::unordered_map<uint16_t, AckHandler> acks_;
  struct Queued {
    std::string topic;
    std::string payload;
    AckHandler on_ack;
  };
  std::deque<Queued> queued_;
  std::function<void()> flush_fn_;
};

}  // namespace flotilla::bench
