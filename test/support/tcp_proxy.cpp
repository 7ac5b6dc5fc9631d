#include "test/support/tcp_proxy.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace flotilla::testing {
namespace {

// Per direction and connection; a slow reader stops the relay from reading its peer.
constexpr size_t kMaxBuffered = 1 << 20;

sockaddr_in loopback(int port) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  return addr;
}

void no_delay(int fd) {
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

// Closes with SO_LINGER 0, so the peer sees a reset, as from a broken link.
void reset(int fd) {
  if (fd < 0) return;
  linger l{1, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
  ::close(fd);
}

int connect_upstream(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  sockaddr_in addr = loopback(port);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    ::close(fd);
    return -1;
  }
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
  no_delay(fd);
  return fd;
}

// Reads what is there into `buf`; false on end of stream or error.
bool read_into(int fd, std::string& buf) {
  char chunk[64 * 1024];
  ssize_t n = ::recv(fd, chunk, sizeof(chunk), 0);
  if (n > 0) {
    buf.append(chunk, static_cast<size_t>(n));
    return true;
  }
  return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR);
}

// Writes what the socket takes from `buf`; false on error.
bool write_from(int fd, std::string& buf) {
  while (!buf.empty()) {
    ssize_t n = ::send(fd, buf.data(), buf.size(), MSG_NOSIGNAL);
    if (n > 0) {
      buf.erase(0, static_cast<size_t>(n));
      continue;
    }
    return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR);
  }
  return true;
}

}  // namespace

struct TcpProxy::Conn {
  int client = -1;
  int upstream = -1;        // -1 while held: accepted in stall mode, connected on resume
  std::string to_upstream;  // read from the client, not yet written upstream
  std::string to_client;    // read from upstream, not yet written to the client
};

TcpProxy::TcpProxy(int upstream_port) : upstream_port_(upstream_port) {
  listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (listen_fd_ < 0) throw std::runtime_error("TcpProxy: socket failed");
  sockaddr_in addr = loopback(0);
  socklen_t len = sizeof(addr);
  if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      ::listen(listen_fd_, 64) != 0 ||
      ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    ::close(listen_fd_);
    throw std::runtime_error("TcpProxy: cannot listen on 127.0.0.1");
  }
  port_ = ntohs(addr.sin_port);
  wake_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (wake_fd_ < 0) {
    ::close(listen_fd_);
    throw std::runtime_error("TcpProxy: eventfd failed");
  }
  thread_ = std::thread([this] { run(); });
}

TcpProxy::~TcpProxy() {
  stopping_ = true;
  uint64_t one = 1;
  (void)::write(wake_fd_, &one, sizeof(one));
  thread_.join();
  ::close(listen_fd_);
  ::close(wake_fd_);
}

void TcpProxy::set_mode(Mode mode) {
  mode_ = mode;
  uint64_t one = 1;
  (void)::write(wake_fd_, &one, sizeof(one));
}

void TcpProxy::run() {
  std::vector<std::unique_ptr<Conn>> conns;
  auto close_conn = [&](Conn& c, bool hard) {
    if (hard) {
      reset(c.client);
      reset(c.upstream);
    } else {
      if (c.client >= 0) ::close(c.client);
      if (c.upstream >= 0) ::close(c.upstream);
    }
    c.client = c.upstream = -1;
    --open_;
  };
  Mode applied = Mode::kForward;
  while (!stopping_) {
    const Mode mode = mode_.load();
    if (mode != applied) {
      if (mode == Mode::kDrop) {
        for (auto& c : conns) close_conn(*c, /*hard=*/true);
        conns.clear();
      } else if (mode == Mode::kForward) {
        for (auto& c : conns) {
          if (c->upstream < 0) c->upstream = connect_upstream(upstream_port_);
          if (c->upstream < 0) close_conn(*c, /*hard=*/true);
        }
      }
      applied = mode;
    }
    std::erase_if(conns, [](const auto& c) { return c->client < 0; });

    std::vector<pollfd> fds = {{wake_fd_, POLLIN, 0}, {listen_fd_, POLLIN, 0}};
    const size_t watched = conns.size();
    for (const auto& c : conns) {
      if (applied != Mode::kForward || c->upstream < 0) {
        // Stalled: not even watched, so nothing is read, written or noticed.
        fds.push_back({-1, 0, 0});
        fds.push_back({-1, 0, 0});
        continue;
      }
      short client_events = static_cast<short>((c->to_upstream.size() < kMaxBuffered ? POLLIN : 0) |
                                               (c->to_client.empty() ? 0 : POLLOUT));
      short upstream_events = static_cast<short>((c->to_client.size() < kMaxBuffered ? POLLIN : 0) |
                                                 (c->to_upstream.empty() ? 0 : POLLOUT));
      fds.push_back({c->client, client_events, 0});
      fds.push_back({c->upstream, upstream_events, 0});
    }
    if (::poll(fds.data(), fds.size(), 1000) < 0 && errno != EINTR) break;
    if (fds[0].revents != 0) {
      uint64_t count = 0;
      (void)::read(wake_fd_, &count, sizeof(count));
    }
    if (mode_.load() != applied) continue;  // apply the new mode before moving a byte

    for (size_t i = 0; i < watched; ++i) {
      Conn& c = *conns[i];
      const pollfd& pc = fds[2 + 2 * i];
      const pollfd& pu = fds[3 + 2 * i];
      if (pc.fd < 0) continue;
      constexpr short kReadable = POLLIN | POLLHUP | POLLERR;
      bool open = true;
      if ((pc.revents & kReadable) != 0) open = read_into(c.client, c.to_upstream) && open;
      if ((pu.revents & kReadable) != 0) open = read_into(c.upstream, c.to_client) && open;
      // Pass on what arrived, also when one side just closed (its last words still count).
      const size_t pending = c.to_client.size();
      bool written = write_from(c.upstream, c.to_upstream) && write_from(c.client, c.to_client);
      to_clients_ += pending - c.to_client.size();
      if (!open || !written) close_conn(c, /*hard=*/false);
    }
    if (const uint64_t cut = cut_at_.load(); cut > 0 && to_clients_.load() >= cut) {
      cut_at_ = 0;
      for (auto& c : conns) {
        if (c->client >= 0) close_conn(*c, /*hard=*/true);
      }
    }

    if ((fds[1].revents & POLLIN) != 0) {
      int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd >= 0) {
        ++accepted_;
        if (applied == Mode::kDrop) {
          reset(fd);
          continue;
        }
        no_delay(fd);
        auto c = std::make_unique<Conn>();
        c->client = fd;
        if (applied == Mode::kForward) {
          c->upstream = connect_upstream(upstream_port_);
          if (c->upstream < 0) {
            reset(fd);
            continue;
          }
        }
        ++open_;
        conns.push_back(std::move(c));
      }
    }
  }
  for (auto& c : conns) {
    if (c->client >= 0) close_conn(*c, /*hard=*/true);
  }
}

}  // namespace flotilla::testing
