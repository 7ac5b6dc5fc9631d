// A controllable TCP proxy for fault tests: put it between a client and a real server (an agent
// and mosquitto) and cut, stall or restore the link while both ends keep running.
//
// It listens on 127.0.0.1 on a free port and relays every accepted connection to
// 127.0.0.1:upstream_port on its own thread. Modes:
//   forward  relay bytes both ways (the start mode);
//   stall    keep every connection open but move no byte either way: a cut link, as the ends
//            see it until their keepalives notice. New connections are accepted and held, so
//            a client's connect attempt hangs until its own timeout;
//   drop     reset every connection (RST) and reset new ones right after accepting them.
// resume() returns to forward: stalled connections carry on where they stopped, and held ones
// are connected upstream then (their queued bytes go through, or they fail if the server
// already gave up on them).
//
// Thread-safety: every public method may be called from any thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <thread>

namespace flotilla::testing {

class TcpProxy {
 public:
  enum class Mode { kForward, kStall, kDrop };

  // Starts listening and relaying. Throws std::runtime_error if the socket cannot be set up.
  explicit TcpProxy(int upstream_port);
  ~TcpProxy();
  TcpProxy(const TcpProxy&) = delete;
  TcpProxy& operator=(const TcpProxy&) = delete;

  int port() const { return port_; }
  void stall() { set_mode(Mode::kStall); }
  void drop() { set_mode(Mode::kDrop); }
  void resume() { set_mode(Mode::kForward); }
  Mode mode() const { return mode_.load(); }

  // Connections accepted so far (including those reset at once in drop mode).
  uint64_t accepted() const { return accepted_.load(); }
  // Connections currently open (relaying or stalled).
  int open_connections() const { return open_.load(); }
  // Bytes relayed from upstream to clients so far (an HTTP server's answers, for example).
  uint64_t bytes_to_clients() const { return to_clients_.load(); }
  // Once bytes_to_clients() reaches `bytes`, resets every open connection, once: a server that
  // dies mid-transfer, as its client sees it. New connections are relayed as before.
  void cut_after(uint64_t bytes) { cut_at_ = bytes; }

 private:
  struct Conn;
  void set_mode(Mode mode);
  void run();

  int upstream_port_;
  int port_ = 0;
  int listen_fd_ = -1;
  int wake_fd_ = -1;  // eventfd: wakes the relay thread on a mode change or at shutdown
  std::atomic<Mode> mode_{Mode::kForward};
  std::atomic<bool> stopping_{false};
  std::atomic<uint64_t> accepted_{0};
  std::atomic<int> open_{0};
  std::atomic<uint64_t> to_clients_{0};
  std::atomic<uint64_t> cut_at_{0};  // 0: no cut pending
  std::thread thread_;
};

}  // namespace flotilla::testing
