// NodeProbeChecker: the real probe checks. exec runs the command through the instance's driver
// (inside the container for containers); httpGet and tcpSocket go to 127.0.0.1 on the node,
// where host-network containers, processes and VM port forwards listen.
//
// Thread-safety: check() may run on several threads at once (it uses only Driver::exec, which
// allows that, and its own sockets).
#pragma once

#include "agent/prober.hpp"

namespace flotilla::agent {

class NodeProbeChecker final : public ProbeChecker {
 public:
  explicit NodeProbeChecker(runtime::Driver& driver) : driver_(driver) {}
  ProbeOutcome check(const v1::Probe& probe, const runtime::Handle& handle) override;

 private:
  runtime::Driver& driver_;
};

// One HTTP/1.0 GET of `path` on 127.0.0.1:port within `timeout`: ok on a 2xx or 3xx status.
ProbeOutcome http_get_check(uint16_t port, const std::string& path, Millis timeout);
// A TCP connection to 127.0.0.1:port within `timeout`.
ProbeOutcome tcp_check(uint16_t port, Millis timeout);

}  // namespace flotilla::agent
