#include "bench/mqtt_conn.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

namespace flotilla::bench {

MqttConn::MqttConn(EventLoop& loop, uint16_t port, ConnectOptions options, Handlers handlers,
                   size_t max_inflight)
    : loop_(loop),
      port_(port),
      options_(std::move(options)),
      handlers_(std::move(handlers)),
      max_inflight_(max_inflight),
      flush_fn_([this] { flush(); }) {}

MqttConn::~MqttConn() {
  if (fd_ >= 0) {
    loop_.remove_fd(fd_);
    ::close(fd_);
  }
}

bool MqttConn::connect() {
  if (state_ != State::kIdle) return true;
  fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd_ < 0) return false;
  int one = 1;
  ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port_);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int rc = ::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  if (rc != 0 && errno != EINPROGRESS) {
    ::close(fd_);
    fd_ = -1;
    return false;
  }
  state_ = State::kConnecting;
  out_.clear();
  parser_ = PacketParser();
  append_connect(out_, options_);
  want_write_ = true;
  loop_.add_fd(fd_, EPOLLIN | EPOLLOUT, [this](uint32_t ev) { on_events(ev); });
  return true;
}

void MqttConn::teardown() {
  if (fd_ < 0) return;
  loop_.remove_fd(fd_);
  ::close(fd_);
  fd_ = -1;
  state_ = State::kIdle;
  acks_.clear();
  queued_.clear();
  out_.clear();
  if (handlers_.on_down) handlers_.on_down();
}

void MqttConn::close_abruptly() {
  if (fd_ < 0) return;
  linger lg{1, 0};  // RST: the broker sees an unclean loss at once
  ::setsockopt(fd_, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
  teardown();
}

void MqttConn::disconnect() {
  if (fd_ < 0) return;
  append_disconnect(out_);
  flush();
  teardown();
}

uint16_t MqttConn::next_id() {
  do {
    ++last_id_;
  } while (last_id_ == 0 || acks_.count(last_id_) > 0);
  return last_id_;
}

void MqttConn::mark_dirty() {
  if (dirty_) return;
  dirty_ = true;
  loop_.mark_dirty(&flush_fn_);
}

void MqttConn::subscribe(const std::vector<std::string>& filters, uint8_t qos) {
  if (fd_ < 0) return;
  // Several SUBSCRIBE packets of at most 200 filters keep each one small.
  for (size_t i = 0; i < filters.size(); i += 200) {
    std::vector<std::string> chunk(filters.begin() + i,
                                   filters.begin() + std::min(filters.size(), i + 200));
    append_subscribe(out_, next_id(), chunk, qos);
  }
  mark_dirty();
}

void MqttConn::publish(const std::string& topic, std::string_view payload, uint8_t qos,
                       AckHandler on_ack) {
  if (fd_ < 0) return;
  if (qos > 0 && (acks_.size() >= max_inflight_ || !queued_.empty())) {
    queued_.push_back({topic, std::string(payload), std::move(on_ack)});
    return;
  }
  send_publish(topic, payload, qos, std::move(on_ack));
}

void MqttConn::send_publish(const std::string& topic, std::string_view payload, uint8_t qos,
                            AckHandler on_ack) {
  uint16_t id = 0;
  if (qos > 0) {
    id = next_id();
    acks_.emplace(id, std::move(on_ack));
  }
  append_publish(out_, topic, payload, qos, id);
  mark_dirty();
}

void MqttConn::flush() {
  dirty_ = false;
  if (fd_ < 0 || state_ == State::kIdle) return;
  while (!out_.empty()) {
    ssize_t n = ::send(fd_, out_.data(), out_.size(), MSG_NOSIGNAL);
    if (n > 0) {
      out_.erase(0, static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
    if (n < 0 && errno == EINTR) continue;
    teardown();
    return;
  }
  const bool need = !out_.empty();
  if (need != want_write_) {
    want_write_ = need;
    loop_.modify_fd(fd_, need ? (EPOLLIN | EPOLLOUT) : EPOLLIN);
  }
}

void MqttConn::on_events(uint32_t events) {
  if (events & (EPOLLERR | EPOLLHUP)) {
    if (!(events & EPOLLIN)) return teardown();
  }
  if (events & EPOLLOUT) flush();
  if (fd_ >= 0 && (events & EPOLLIN)) read_all();
}

void MqttConn::read_all() {
  char buf[65536];
  for (;;) {
    ssize_t n = ::recv(fd_, buf, sizeof(buf), 0);
    if (n > 0) {
      parser_.feed(std::string_view(buf, static_cast<size_t>(n)));
      if (static_cast<size_t>(n) < sizeof(buf)) break;
      continue;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
    if (n < 0 && errno == EINTR) continue;
    return teardown();  // EOF or error
  }
  bool error = false;
  while (auto p = parser_.next(error)) {
    switch (p->type()) {
      case PacketType::kConnack:
        if (p->body.size() < 2 || p->body[1] != 0) return teardown();
        state_ = State::kUp;
        if (handlers_.on_up) handlers_.on_up();
        break;
      case PacketType::kPublish: {
        auto pub = parse_publish(*p);
        if (!pub) return teardown();
        if (pub->qos == 1) {
          append_puback(out_, pub->packet_id);
          mark_dirty();
        }
        if (handlers_.on_message) handlers_.on_message(*pub);
        break;
      }
      case PacketType::kPuback: {
        auto it = acks_.find(packet_id_of(*p));
        if (it == acks_.end()) break;
        AckHandler done = std::move(it->second);
        acks_.erase(it);
        while (!queued_.empty() && acks_.size() < max_inflight_) {
          Queued q = std::move(queued_.front());
          queued_.pop_front();
          send_publish(q.topic, q.payload, 1, std::move(q.on_ack));
        }
        if (done) done();
        break;
      }
      default:
        break;  // SUBACK, PINGRESP
    }
    if (fd_ < 0) return;
  }
  if (error) return teardown();
  parser_.compact();
}

}  // namespace flotilla::bench
