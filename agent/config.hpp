// Configuration of the agent: plain structs with documented defaults and units. main() fills
// them from flags; tests fill them directly (e.g. short backoffs with a FakeClock).
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "common/clock.hpp"
#include "common/ed25519.hpp"
#include "sync/topics.hpp"

namespace flotilla::agent {

struct ReconcilerConfig {
  // How often the control loop observes instances and converges on the desired set.
  Millis tick{200};
  // Restart backoff: base, doubled per consecutive crash, capped at max.
  Millis backoff_base{1000};
  Millis backoff_max{60000};
  // An instance that ran at least this long before exiting restarts with the base delay again.
  Millis backoff_reset_after{10000};
  // SIGTERM -> SIGKILL delay when the spec does not set termination_grace_ms.
  Millis default_grace{10000};
  // Runtimes this node offers (WorkloadSpec.type values the driver can run).
  std::vector<std::string> runtimes{"process"};
};

// A taint the node reports (--taints key=value:Effect): workloads must tolerate it to run here.
struct NodeTaint {
  std::string key;
  std::string value;   // may be empty
  std::string effect;  // NoSchedule | NoExecute
  bool operator==(const NodeTaint&) const = default;
};

struct SyncConfig {
  uint32_t shards = sync::kDefaultShards;
  // Heartbeat period; the MQTT keepalive is twice this (at least 2 s).
  Millis heartbeat{5000};
  std::map<std::string, std::string> labels;
  std::vector<NodeTaint> taints;
  int64_t cpu_millis = 0;    // 0: 1000 x online CPUs
  int64_t memory_bytes = 0;  // 0: MemTotal from /proc/meminfo
  // Status batches awaiting the broker's acknowledgement at once.
  int max_inflight_batches = 2;
  // Delay before retrying a status publish the transport refused while connected.
  Millis publish_retry{1000};
};

// Which runtimes the node offers and how they are set up (flotilla-agent's NodeDrivers).
struct DriverOptions {
  std::set<std::string> wanted;               // empty: every runtime whose tools are installed
  std::set<std::string> insecure_registries;  // host[:port] pulled from over plain http
  uint64_t image_budget_bytes = 10ULL << 30;  // disk for images not in use, bytes
  std::string vm_accel = "auto";              // auto | kvm | tcg
};

// OTA updates (ota/updater.hpp, docs/ota-updater.md). The agent's own binary is updated in
// <data>/ota/agent (A/B slots); run the agent as <data>/ota/agent/active/flotilla-agent (systemd
// ExecStart) so that a restart starts whichever binary is active.
struct OtaConfig {
  std::string public_key_file;   // --ota-public-key: the pinned Ed25519 key (PEM)
  std::string public_key_pem;    // its text, read when the flags are loaded; empty: updates fail
  std::string image_slots_dir;   // --ota-image-slots: slot-a, slot-b and `active`; empty: none
  std::string switch_command;    // --ota-switch-command: run after the image pointer moved
  std::string health_command;    // --ota-health-command: exit 0 = healthy
  Millis health_timeout{60000};  // --ota-health-timeout (seconds on the command line)
};

struct AgentConfig {
  std::string node;
  std::string mqtt_uri;  // tcp://HOST:PORT or ssl://HOST:PORT
  // TLS (ssl://): --mqtt-ca, --mqtt-cert, --mqtt-key (PEM files, docs/security.md); empty: none.
  std::string mqtt_ca_file;
  std::string mqtt_cert_file;
  std::string mqtt_key_file;
  std::chrono::seconds mqtt_cert_check{60};  // --mqtt-cert-check-seconds: look for a renewal
  // --hub-public-key: the hub's Ed25519 signing key(s), PEM (docs/security.md). When set, every
  // message from the hub must carry a valid signature; empty: signatures are not checked.
  std::string hub_public_key_file;
  std::vector<ed25519::PublicKey> hub_public_keys;
  // The local broker of the device bridge (device twins), tcp://HOST:PORT; empty: no bridge.
  std::string device_mqtt_uri;
  std::string data_dir;  // holds agent.db and the instances' runtime folders
  ReconcilerConfig reconciler;
  SyncConfig sync;
  DriverOptions drivers;
  OtaConfig ota;
};

}  // namespace flotilla::agent
