// A fleet PKI made by the real `flotctl pki` and a real mosquitto running the shipped TLS
// configuration (deploy/mosquitto/flotilla.conf and flotilla.acl, adapted to a temp folder and a
// free loopback port), for the integration tests that need the broker's TLS and topic ACLs; and
// a publish that waits for the broker's acknowledgement.
#pragma once

#include <string>
#include <vector>

#include "sync/transport.hpp"
#include "test/support/process.hpp"

namespace flotilla::testing {

// `flotctl pki ...`; a failure is a test failure.
void pki(const std::vector<std::string>& args);

// A fleet CA in `dir` with the broker's, the hub's and two nodes' (node-a, node-b) certificates.
void make_pki(const std::string& dir);

// The shipped broker configuration with its paths pointed at `pki_dir` and the shipped ACL
// file, listening on 127.0.0.1:port.
std::string shipped_config(const std::string& pki_dir, int port);

// mosquitto with the shipped TLS configuration on 127.0.0.1 and a free port, in `dir`.
class TlsMosquitto {
 public:
  TlsMosquitto(std::string dir, std::string pki_dir);
  ~TlsMosquitto();
  bool start();
  bool restart();
  std::string uri() const { return "ssl://127.0.0.1:" + std::to_string(port_); }
  std::string log() const { return proc_.log(); }

 private:
  std::string dir_;
  std::string pki_;
  int port_;
  ChildProcess proc_;
};

// Publishes at QoS 1 on `transport` and waits (5 s at most) for the broker's acknowledgement;
// false when it failed or did not come. mosquitto acknowledges a publish its ACL drops, too: the
// broker has then decided where the message goes.
bool publish_acked(sync::Transport& transport, const std::string& topic,
                   const std::string& payload);

}  // namespace flotilla::testing
