#include "bench/mqtt_wire.hpp"

namespace flotilla::bench {
namespace {

void put_u16(std::string& out, uint16_t v) {
  out.push_back(static_cast<char>(v >> 8));
  out.push_back(static_cast<char>(v & 0xff));
}

void put_str(std::string& out, std::string_view s) {
  put_u16(out, static_cast<uint16_t>(s.size()));
  out.append(s);
}

void put_remaining_length(std::string& out, size_t n) {
  do {
    uint8_t b = n % 128;
    n /= 128;
    if (n > 0) b |= 0x80;
    out.push_back(static_cast<char>(b));
  } while (n > 0);
}

}  // namespace

void append_connect(std::string& out, const ConnectOptions& o) {
  std::string body;
  put_str(body, "MQTT");
  body.push_back(4);  // protocol level 3.1.1
  uint8_t flags = o.clean_session ? 0x02 : 0;
  if (o.will) flags |= 0x04 | 0x08;  // will, QoS 1
  body.push_back(static_cast<char>(flags));
  put_u16(body, o.keepalive_s);
  put_str(body, o.client_id);
  if (o.will) {
    put_str(body, o.will->first);
    put_str(body, o.will->second);
  }
  out.push_back(0x10);
  put_remaining_length(out, body.size());
  out += body;
}

void append_subscribe(std::string& out, uint16_t packet_id, const std::vector<std::string>& filters,
                      uint8_t qos) {
  size_t len = 2;
  for (const auto& f : filters) len += 2 + f.size() + 1;
  out.push_back(static_cast<char>(0x82));
  put_remaining_length(out, len);
  put_u16(out, packet_id);
  for (const auto& f : filters) {
    put_str(out, f);
    out.push_back(static_cast<char>(qos));
  }
}

void append_publish(std::string& out, std::string_view topic, std::string_view payload, uint8_t qos,
                    uint16_t packet_id, bool retain) {
  out.push_back(static_cast<char>(0x30 | (qos << 1) | (retain ? 1 : 0)));
  put_remaining_length(out, 2 + topic.size() + (qos > 0 ? 2 : 0) + payload.size());
  put_str(out, topic);
  if (qos > 0) put_u16(out, packet_id);
  out.append(payload);
}

void append_puback(std::string& out, uint16_t packet_id) {
  out.push_back(0x40);
  out.push_back(2);
  put_u16(out, packet_id);
}

void append_pingreq(std::string& out) { out.append("\xc0\x00", 2); }

void append_disconnect(std::string& out) { out.append("\xe0\x00", 2); }

std::optional<Publish> parse_publish(const Packet& p) {
  Publish pub;
  pub.qos = (p.header >> 1) & 3;
  pub.retained = (p.header & 1) != 0;
  std::string_view b = p.body;
  if (b.size() < 2) return std::nullopt;
  size_t tlen = (static_cast<uint8_t>(b[0]) << 8) | static_cast<uint8_t>(b[1]);
  if (b.size() < 2 + tlen) return std::nullopt;
  pub.topic = b.substr(2, tlen);
  size_t pos = 2 + tlen;
  if (pub.qos > 0) {
    if (b.size() < pos + 2) return std::nullopt;
    pub.packet_id = static_cast<uint16_t>((static_cast<uint8_t>(b[pos]) << 8) |
                                          static_cast<uint8_t>(b[pos + 1]));
    pos += 2;
  }
  pub.payload = b.substr(pos);
  return pub;
}

uint16_t packet_id_of(const Packet& p) {
  if (p.body.size() < 2) return 0;
  return static_cast<uint16_t>((static_cast<uint8_t>(p.body[0]) << 8) |
                               static_cast<uint8_t>(p.body[1]));
}

std::optional<Packet> PacketParser::next(bool& error) {
  const size_t avail = buffer_.size() - pos_;
  if (avail < 2) return std::nullopt;
  size_t len = 0, mult = 1, i = 1;
  for (;; ++i) {
    if (i > 4) {
      error = true;
      return std::nullopt;
    }
    if (i >= avail) return std::nullopt;
    uint8_t b = static_cast<uint8_t>(buffer_[pos_ + i]);
    len += (b & 0x7f) * mult;
    mult *= 128;
    if ((b & 0x80) == 0) break;
  }
  const size_t header_len = i + 1;
  if (avail < header_len + len) return std::nullopt;
  Packet p;
  p.header = static_cast<uint8_t>(buffer_[pos_]);
  p.body = std::string_view(buffer_).substr(pos_ + header_len, len);
  pos_ += header_len + len;
  return p;
}

void PacketParser::compact() {
  buffer_.erase(0, pos_);
  pos_ = 0;
}

}  // namespace flotilla::bench
