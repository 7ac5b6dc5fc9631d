// agent::OtaSync: the agent's side of OTA updates (docs/ota-updater.md, docs/protocol.md).
//
// From the hub (down/ota, UpdateAssignment): decoded, checked to be addressed to this node
// (garbage and misaddressed messages are dropped and counted) and handed to the ota::Updater,
// which ignores older or equal generations. To the hub (up/ota, UpdateReport, QoS 1): one report
// per saved updater step, plus download progress, each with a persisted, strictly increasing
// seq; while disconnected only the newest state is kept, and every (re)connect sends the current
// state again (newest wins at the hub). The hub connection is the updater's first health
// condition after a switch.
//
// Thread-safety: every method on the agent's loop thread.
#pragma once

#include <cstdint>
#include <string>

#include "agent/config.hpp"
#include "ota/updater.hpp"
#include "sync/transport.hpp"

namespace flotilla::agent {

// The updater's options for this agent: state in <data>/ota, the agent's own slots in
// <data>/ota/agent, zstd patch-from deltas (ota/delta.hpp).
ota::UpdaterOptions make_updater_options(const AgentConfig& config);

struct OtaCounters {
  uint64_t rejected_messages = 0;  // undecodable or not addressed to this node
  uint64_t reports_sent = 0;
  uint64_t publish_failures = 0;
};

class OtaSync {
 public:
  // The transport and updater outlive the OtaSync.
  OtaSync(const AgentConfig& config, sync::Transport& hub, ota::Updater& updater);

  const std::string& topic() const { return down_topic_; }
  void on_message(const std::string& payload);
  void on_hub_connection(bool connected);
  // Lets the updater run its next step, then sends what it has to report.
  void tick();

  const OtaCounters& counters() const { return counters_; }
  // Non-empty when the agent must stop and execv this binary (ota::Updater::reexec_path).
  const std::string& reexec_path() const { return updater_.reexec_path(); }

 private:
  bool publish(const ota::UpdateState& state);

  std::string node_;
  std::string down_topic_;
  std::string up_topic_;
  sync::Transport& hub_;
  ota::Updater& updater_;
  bool connected_ = false;
  bool resend_ = false;  // the current state goes out on the next tick (after a connect)
  OtaCounters counters_;
};

}  // namespace flotilla::agent
