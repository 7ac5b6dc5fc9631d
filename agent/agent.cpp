#include "agent/agent.hpp"

#include <algorithm>
#include <future>

#include "common/log.hpp"
#include "sync/topics.hpp"

namespace flotilla::agent {

Agent::Agent(AgentConfig config, Store& store, runtime::Driver& driver, sync::Transport& transport,
             const Clock& clock, std::string boot_id, sync::Transport* devices)
    : config_(std::move(config)),
      store_(store),
      transport_(transport),
      clock_(clock),
      probe_checker_(driver),
      prober_(
          probe_checker_, clock,
          [this](std::function<void()> check) { return probe_workers_.post(std::move(check)); }),
      reconciler_(config_.node, config_.reconciler, store, driver, clock, &prober_),
      sync_(config_, store, transport, clock, std::move(boot_id),
            [queue = queue_](uint64_t batch_id, Status st) {
              queue->push(PublishDone{batch_id, std::move(st)});
            }),
      devices_(devices),
      twins_(config_, store, transport, devices, clock, [queue = queue_](uint64_t id, Status st) {
        queue->push(TwinPublishDone{id, std::move(st)});
      }) {
  if (!config_.data_dir.empty()) {
    updater_ = std::make_unique<ota::Updater>(make_updater_options(config_), clock,
                                              [queue = queue_] { queue->wake(); });
    ota_ = std::make_unique<OtaSync>(config_, transport, *updater_);
  }
}

Agent::~Agent() {
  if (!started_) return;
  transport_.stop();
  if (devices_ != nullptr) devices_->stop();
}

Status Agent::start() {
  if (!config_.hub_public_keys.empty()) {
    auto keys = store_.load_hub_keys();
    if (!keys) return keys.error();
    verifier_ = std::make_unique<sync::Verifier>(config_.hub_public_keys, std::move(*keys));
    if (verifier_->trusted_ids().empty()) {
      return Error("--hub-public-key '" + config_.hub_public_key_file +
                   "': every key in it was replaced by a key rotation, and agent.db holds no "
                   "newer one; give the hub's current public key");
    }
    log::get("agent")->info("hub messages must be signed; trusted keys={}",
                            verifier_->trusted_text());
    sync_.set_hub_keys(verifier_->trusted_ids());
  }
  if (auto st = reconciler_.recover(); !st) return st;
  reconciler_.tick();  // converge at once, connected or not
  next_tick_ = clock_.now() + config_.reconciler.tick;
  transport_.set_handlers(
      [queue = queue_](sync::Message m) { queue->push(std::move(m)); },
      [queue = queue_](bool connected) { queue->push(ConnectionChanged{connected}); });
  if (auto st = sync_.subscribe(); !st) return st;
  if (devices_ != nullptr) {
    devices_->set_handlers(
        [queue = queue_](sync::Message m) { queue->push(std::move(m)); },
        [queue = queue_](bool connected) { queue->push(DeviceBrokerChanged{connected}); });
  }
  if (auto st = twins_.start(); !st) return st;
  if (updater_) {
    if (auto st = updater_->start(); !st) return st;
  }
  if (auto st = transport_.start(); !st) return st;
  if (devices_ != nullptr) {
    if (auto st = devices_->start(); !st) return st;
  }
  started_ = true;
  log::get("agent")->info("agent started node={} mqtt={} revision={}", config_.node,
                          config_.mqtt_uri, store_.meta().desired_revision);
  return Ok();
}

void Agent::run_once() {
  bool desired_changed = false;
  const std::string twin_topic = sync::down_topic(config_.node, config_.sync.shards, "twin");
  const std::string ota_topic = ota_ ? ota_->topic() : std::string();
  for (auto& event : queue_->take_all()) {
    if (auto* m = std::get_if<sync::Message>(&event)) {
      if (!TwinSync::is_local_topic(m->topic) && !open_hub_message(*m)) continue;
      if (TwinSync::is_local_topic(m->topic)) {
        twins_.on_local_message(*m);
      } else if (m->topic == twin_topic) {
        twins_.on_hub_message(m->payload);
      } else if (ota_ && m->topic == ota_topic) {
        ota_->on_message(m->payload);
      } else {
        desired_changed |= sync_.on_message(*m);
      }
    } else if (auto* c = std::get_if<ConnectionChanged>(&event)) {
      sync_.on_connection(c->connected);
      twins_.on_hub_connection(c->connected);
      if (ota_) ota_->on_hub_connection(c->connected);
    } else if (auto* d = std::get_if<PublishDone>(&event)) {
      sync_.on_publish_done(d->batch_id, d->status);
    } else if (auto* b = std::get_if<DeviceBrokerChanged>(&event)) {
      twins_.on_local_connection(b->connected);
    } else if (auto* t = std::get_if<TwinPublishDone>(&event)) {
      twins_.on_publish_done(t->batch_id, t->status);
    }
  }
  if (desired_changed || clock_.now() >= next_tick_) {
    reconciler_.tick();
    next_tick_ = clock_.now() + config_.reconciler.tick;
  }
  sync_.tick(static_cast<uint32_t>(reconciler_.running_count()));
  twins_.tick();
  if (ota_) ota_->tick();
}

bool Agent::open_hub_message(sync::Message& m) {
  if (!verifier_) {
    if (!sync::looks_signed(m.payload)) return true;
    auto payload = sync::unseal_unverified(m.payload);
    if (!payload) {
      sync_.reject(m.topic, payload.error().message());
      return false;
    }
    if (!warned_unverified_) {
      warned_unverified_ = true;
      log::get("agent")->warn(
          "the hub signs its messages, but without --hub-public-key this agent cannot check "
          "them: anyone who can publish on the broker can command it");
    }
    m.payload = std::move(*payload);
    return true;
  }
  auto opened = verifier_->open(m.topic, m.payload);
  if (!opened) {
    ++sync_.counters().signature_rejections;
    sync_.reject(m.topic, opened.error().message());
    return false;
  }
  if (opened->rotated) {
    ++sync_.counters().key_rotations;
    log::get("agent")->warn("hub signing key rotated; trusted keys={}", verifier_->trusted_text());
    sync_.set_hub_keys(verifier_->trusted_ids());  // the next Hello tells the hub
    // Not stored: the next start trusts the old key again and takes the new one the same way
    // while the hub still sends the endorsement.
    if (auto st = store_.save_hub_keys(verifier_->state()); !st) {
      log::get("agent")->error("{}", st.error().message());
    }
  }
  m.payload = std::move(opened->payload);
  return true;
}

std::vector<std::string> Agent::trusted_hub_keys() const {
  return verifier_ ? verifier_->trusted_ids() : std::vector<std::string>{};
}

void Agent::run(const std::atomic<bool>& stop) {
  while (!stop.load() && reexec_path().empty()) {
    run_once();
    // Wake for the next tick; queued events wake us earlier.
    auto wait = std::chrono::duration_cast<Millis>(next_tick_ - clock_.now());
    queue_->wait(std::clamp(wait, Millis(1), config_.reconciler.tick));
  }
}

void Agent::prepare_reexec() {
  if (!started_) return;
  transport_.stop();
  if (devices_ != nullptr) devices_->stop();
  started_ = false;
  log::get("agent")->info("agent re-executing for an OTA update path={}", reexec_path());
}

void Agent::shutdown() {
  if (!started_) return;
  if (sync_.connected()) {
    auto said = std::make_shared<std::promise<void>>();
    auto future = said->get_future();
    sync_.say_goodbye([said](Status) { said->set_value(); });
    future.wait_for(std::chrono::seconds(1));
  }
  transport_.stop();
  if (devices_ != nullptr) devices_->stop();
  started_ = false;
  log::get("agent")->info("agent stopped node={}; workloads keep running", config_.node);
}

}  // namespace flotilla::agent
