// Minimal MQTT 3.1.1 wire format for the fleet simulator: the packets a client sends
// (CONNECT, SUBSCRIBE, PUBLISH, PUBACK, PINGREQ, DISCONNECT) and an incremental parser for
// what a broker sends back. It exists so one thread can drive thousands of connections with
// pipelined QoS 1 publishes; product code keeps using sync::Transport over Paho.
//
// Thread-safety: plain functions and a parser object owned by one connection.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace flotilla::bench {

enum class PacketType : uint8_t {
  kConnack = 2,
  kPublish = 3,
  kPuback = 4,
  kSuback = 9,
  kPingresp = 13,
};

struct ConnectOptions {
  std::string client_id;
  uint16_t keepalive_s = 60;
  bool clean_session = true;
  std::optional<std::pair<std::string, std::string>> will;  // topic, payload; sent at QoS 1
};

// Each function appends one packet to `out`.
void append_connect(std::string& out, const ConnectOptions& options);
void append_subscribe(std::string& out, uint16_t packet_id, const std::vector<std::string>& filters,
                      uint8_t qos);
void append_publish(std::string& out, std::string_view topic, std::string_view payload, uint8_t qos,
                    uint16_t packet_id, bool retain = false);
void append_puback(std::string& out, uint16_t packet_id);
void append_pingreq(std::string& out);
void append_disconnect(std::string& out);

struct Packet {
  uint8_t header = 0;  // first byte: type << 4 | flags
  std::string_view body;
  PacketType type() const { return static_cast<PacketType>(header >> 4); }
};

// A decoded PUBLISH (views into the parser's buffer, valid until the next feed()).
struct Publish {
  std::string_view topic;
  std::string_view payload;
  uint8_t qos = 0;
  uint16_t packet_id = 0;
  bool retained = false;  // the broker's retained copy, sent because we subscribed
};
std::optional<Publish> parse_publish(const Packet& packet);
// Packet id of a PUBACK or SUBACK; 0 when malformed.
uint16_t packet_id_of(const Packet& packet);

// Splits a byte stream into packets.
class PacketParser {
 public:
  void feed(std::string_view bytes) { buffer_.append(bytes); }
  // The next complete packet; nullopt when more bytes are needed. Sets `error` on garbage.
  std::optional<Packet> next(bool& error);
  // Drops the bytes of packets already returned.
  void compact();

 private:
  std::string buffer_;
  size_t pos_ = 0;
};

}  // namespace flotilla::bench
