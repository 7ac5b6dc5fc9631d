// Real peers for integration tests, started on loopback in a temporary folder.
#pragma once

#include <string>

#include "test/support/process.hpp"

namespace flotilla::testing {

// Path of an executable on PATH (or in /usr/sbin), empty if absent.
std::string find_executable(const std::string& name);

// Waits until something accepts TCP connections on 127.0.0.1:port.
bool wait_for_port(int port, std::chrono::milliseconds timeout);

// mosquitto on 127.0.0.1:port, anonymous, no persistence. restart() keeps the port.
class Mosquitto {
 public:
  // `extra`: configuration lines appended to the generated ones (e.g. a bridge section).
  Mosquitto(std::string dir, int port, std::string extra = "");
  ~Mosquitto() { stop(); }
  bool start();  // false (with the log readable) if it did not come up
  void stop();   // SIGTERM: a clean broker shutdown
  void kill9();  // a crash: no clean goodbye to any client
  // stop() (or kill9() when `crash`) and start again on the same port, with no state kept
  // (persistence is off): every session, queued message and retained message is gone.
  bool restart(bool crash = false);
  int port() const { return port_; }
  std::string uri() const { return "tcp://127.0.0.1:" + std::to_string(port_); }
  std::string log() const { return proc_.log(); }

 private:
  std::string dir_;
  int port_;
  std::string extra_;
  ChildProcess proc_;
};

}  // namespace flotilla::testing
