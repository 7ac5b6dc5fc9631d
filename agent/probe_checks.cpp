#include "agent/probe_checks.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace flotilla::agent {
namespace {

using SteadyClock = std::chrono::steady_clock;

class Socket {
 public:
  Socket() : fd_(::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) {}
  ~Socket() {
    if (fd_ >= 0) ::close(fd_);
  }
  Socket(const Socket&) = delete;
  Socket& operator=(const Socket&) = delete;
  int fd() const { return fd_; }

 private:
  int fd_;
};

int left_ms(SteadyClock::time_point deadline) {
  auto left = std::chrono::duration_cast<Millis>(deadline - SteadyClock::now()).count();
  return left > 0 ? static_cast<int>(left) : 0;
}

// Waits for `events` on fd until the deadline; false on timeout or error.
bool wait_for(int fd, short events, SteadyClock::time_point deadline) {
  while (true) {
    pollfd p{fd, events, 0};
    int rc = ::poll(&p, 1, left_ms(deadline));
    if (rc < 0 && errno == EINTR) continue;
    return rc > 0;
  }
}

// Connects to 127.0.0.1:port; an empty string on success, else why not.
std::string connect_local(const Socket& s, uint16_t port, SteadyClock::time_point deadline) {
  if (s.fd() < 0) return std::string("socket: ") + std::strerror(errno);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(s.fd(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    if (errno != EINPROGRESS) return std::strerror(errno);
    if (!wait_for(s.fd(), POLLOUT, deadline)) return "timed out connecting";
    int err = 0;
    socklen_t len = sizeof err;
    ::getsockopt(s.fd(), SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0) return std::strerror(err);
  }
  int one = 1;
  ::setsockopt(s.fd(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return "";
}

}  // namespace

ProbeOutcome tcp_check(uint16_t port, Millis timeout) {
  Socket s;
  std::string why = connect_local(s, port, SteadyClock::now() + timeout);
  if (!why.empty()) return {false, "tcp 127.0.0.1:" + std::to_string(port) + ": " + why};
  return {true, ""};
}

ProbeOutcome http_get_check(uint16_t port, const std::string& path, Millis timeout) {
  auto deadline = SteadyClock::now() + timeout;
  std::string where = "GET http://127.0.0.1:" + std::to_string(port) + path;
  Socket s;
  if (std::string why = connect_local(s, port, deadline); !why.empty()) {
    return {false, where + ": " + why};
  }
  std::string request = "GET " + path + " HTTP/1.0\r\nHost: 127.0.0.1:" + std::to_string(port) +
                        "\r\nUser-Agent: flotilla-probe\r\nConnection: close\r\n\r\n";
  size_t sent = 0;
  while (sent < request.size()) {
    ssize_t n = ::send(s.fd(), request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
    if (n > 0) {
      sent += static_cast<size_t>(n);
    } else if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
      if (!wait_for(s.fd(), POLLOUT, deadline)) return {false, where + ": timed out sending"};
    } else {
      return {false, where + ": " + std::strerror(errno)};
    }
  }
  // Only the status line matters: "HTTP/1.x NNN ...".
  std::string head;
  while (head.find("\r\n") == std::string::npos && head.size() < 256) {
    if (!wait_for(s.fd(), POLLIN, deadline)) return {false, where + ": timed out waiting"};
    char buf[256];
    ssize_t n = ::recv(s.fd(), buf, sizeof buf, 0);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) continue;
    if (n <= 0) break;
    head.append(buf, static_cast<size_t>(n));
  }
  if (head.rfind("HTTP/", 0) != 0 || head.size() < 12 || head[8] != ' ') {
    return {false, where + ": not an HTTP answer"};
  }
  int code = 0;
  for (size_t i = 9; i < 12; ++i) {
    if (head[i] < '0' || head[i] > '9') return {false, where + ": bad HTTP status line"};
    code = code * 10 + (head[i] - '0');
  }
  if (code >= 200 && code < 400) return {true, ""};
  return {false, where + ": HTTP " + std::to_string(code)};
}

ProbeOutcome NodeProbeChecker::check(const v1::Probe& probe, const runtime::Handle& handle) {
  Millis timeout(probe.timeout_ms() > 0 ? probe.timeout_ms() : 1000);
  if (probe.exec_size() > 0) {
    std::vector<std::string> argv(probe.exec().begin(), probe.exec().end());
    auto code = driver_.exec(handle, argv, timeout);
    if (!code) return {false, code.error().message()};
    if (*code != 0) return {false, "exec '" + argv[0] + "': exit code " + std::to_string(*code)};
    return {true, ""};
  }
  if (probe.http_port() > 0 && probe.http_port() <= 65535) {
    return http_get_check(static_cast<uint16_t>(probe.http_port()),
                          probe.http_path().empty() ? "/" : probe.http_path(), timeout);
  }
  if (probe.tcp_port() > 0 && probe.tcp_port() <= 65535) {
    return tcp_check(static_cast<uint16_t>(probe.tcp_port()), timeout);
  }
  return {false, "probe has no exec, httpGet or tcpSocket"};
}

}  // namespace flotilla::agent
