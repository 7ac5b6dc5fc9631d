#include "agent/ota_sync.hpp"

#include "common/log.hpp"
#include "ota/delta.hpp"
#include "sync/codec.hpp"
#include "sync/topics.hpp"

namespace flotilla::agent {

ota::UpdaterOptions make_updater_options(const AgentConfig& config) {
  ota::UpdaterOptions o;
  o.state_dir = config.data_dir + "/ota";
  o.agent_slots_dir = config.data_dir + "/ota/agent";
  o.public_key_pem = config.ota.public_key_pem;
  o.image_slots_dir = config.ota.image_slots_dir;
  o.switch_command = config.ota.switch_command;
  o.health_command = config.ota.health_command;
  o.health_timeout = config.ota.health_timeout;
  o.apply_delta = [](const std::string& base, const std::string& delta, const std::string& out,
                     uint64_t size) -> Status {
    auto digest = ota::apply_delta(base, delta, out, size);
    if (!digest) return digest.error();
    return Ok();
  };
  return o;
}

OtaSync::OtaSync(const AgentConfig& config, sync::Transport& hub, ota::Updater& updater)
    : node_(config.node),
      down_topic_(sync::down_topic(config.node, config.sync.shards, "ota")),
      up_topic_(sync::up_topic(config.node, config.sync.shards, "ota")),
      hub_(hub),
      updater_(updater) {}

void OtaSync::on_message(const std::string& payload) {
  auto msg = sync::decode<v1::UpdateAssignment>(payload);
  if (!msg || msg->node() != node_) {
    ++counters_.rejected_messages;
    log::get("agent")->warn("ota assignment dropped reason='{}'",
                            msg ? "not addressed to this node" : msg.error().message());
    return;
  }
  ota::Assignment a;
  a.rollout = msg->rollout();
  a.generation = msg->generation();
  a.manifest = msg->manifest();
  a.signature = msg->signature();
  a.payload_url = msg->payload_url();
  a.delta_url = msg->delta_url();
  a.abort = msg->abort();
  updater_.assign(a);
}

void OtaSync::on_hub_connection(bool connected) {
  connected_ = connected;
  updater_.on_hub_connection(connected);
  if (connected) resend_ = true;
}

bool OtaSync::publish(const ota::UpdateState& s) {
  auto seq = updater_.next_report_seq();
  if (!seq) {
    log::get("agent")->error("ota report not sent: {}", seq.error().message());
    return false;
  }
  v1::UpdateReport r;
  r.set_node(node_);
  r.set_rollout(s.rollout);
  r.set_generation(s.generation);
  r.set_phase(static_cast<v1::UpdatePhase>(static_cast<int>(s.phase)));
  r.set_version(s.version);
  r.set_running_version(updater_.running_version());
  r.set_bytes_done(s.bytes_done);
  r.set_bytes_total(s.bytes_total);
  r.set_delta(s.delta);
  r.set_message(s.message);
  r.set_seq(*seq);
  r.set_attempts(s.attempts);
  if (auto st = hub_.publish(up_topic_, sync::encode(r), 1); !st) {
    ++counters_.publish_failures;
    return false;
  }
  ++counters_.reports_sent;
  return true;
}

void OtaSync::tick() {
  updater_.tick();
  auto reports = updater_.take_reports();
  if (!reports.empty()) resend_ = true;
  if (!connected_ || !resend_ || updater_.state().generation == 0) return;
  // Each saved step in order; when nothing new was saved (a reconnect), the current state.
  if (reports.empty()) reports.push_back(updater_.state());
  for (const auto& state : reports) {
    if (!publish(state)) return;  // resend_ stays: the current state goes out next time
  }
  resend_ = false;
}

}  // namespace flotilla::agent
