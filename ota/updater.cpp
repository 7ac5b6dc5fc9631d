#include "ota/updater.hpp"

#include <algorithm>

#include "common/fs.hpp"
#include "common/log.hpp"
#include "ota/signing.hpp"

namespace flotilla::ota {
namespace {

constexpr const char* kTargetAgent = "agent";
constexpr const char* kTargetImage = "image";

auto logger() { return log::get("ota"); }

}  // namespace

const char* phase_name(Phase phase) {
  switch (phase) {
    case Phase::kIdle:
      return "idle";
    case Phase::kDownloading:
      return "downloading";
    case Phase::kVerifying:
      return "verifying";
    case Phase::kInstalling:
      return "installing";
    case Phase::kSwitching:
      return "switching";
    case Phase::kHealthCheck:
      return "health_check";
    case Phase::kCommitted:
      return "committed";
    case Phase::kRolledBack:
      return "rolled_back";
    case Phase::kFailed:
      return "failed";
    case Phase::kAborted:
      return "aborted";
  }
  return "unknown";
}

bool is_final(Phase phase) {
  return phase == Phase::kCommitted || phase == Phase::kRolledBack || phase == Phase::kFailed ||
         phase == Phase::kAborted;
}

bool before_switch(Phase phase) {
  return phase == Phase::kDownloading || phase == Phase::kVerifying || phase == Phase::kInstalling;
}

Updater::Updater(UpdaterOptions options, const Clock& clock, Wake wake)
    : options_(std::move(options)),
      clock_(clock),
      wake_(std::move(wake)),
      rng_(options_.jitter_seed != 0 ? options_.jitter_seed : std::random_device()()),
      worker_(std::make_unique<WorkerPool>(1, 4)) {}

Updater::~Updater() {
  cancel_ = true;
  worker_.reset();
}

std::optional<SlotSet> Updater::slot_set(const std::string& target) const {
  if (target == kTargetImage && !options_.image_slots_dir.empty()) {
    return SlotSet::image(options_.image_slots_dir);
  }
  if (target == kTargetAgent && !options_.agent_slots_dir.empty()) {
    return SlotSet::agent(options_.agent_slots_dir);
  }
  return std::nullopt;
}

std::string Updater::download_dir() const { return options_.state_dir + "/downloads"; }
std::string Updater::payload_path() const {
  return download_dir() + "/g" + std::to_string(state_.generation) + ".payload";
}
std::string Updater::delta_path() const {
  return download_dir() + "/g" + std::to_string(state_.generation) + ".delta";
}
void Updater::remove_downloads() const { (void)fs::remove_all(download_dir()); }

Status Updater::start() {
  if (auto st = fs::make_dirs(options_.state_dir); !st) return st;
  auto store = UpdaterStore::open(options_.state_dir + "/state.db");
  if (!store) return store.error();
  store_ = std::move(*store);
  auto state = store_->load();
  if (!state) return state.error();
  state_ = std::move(*state);
  if (!state_.manifest.empty()) {
    if (auto m = parse_manifest(state_.manifest)) manifest_ = std::move(*m);
  }
  recover();
  queue_report();
  return Ok();
}

std::string Updater::running_version() const {
  auto slots = slot_set(state_.target);
  if (!slots || !store_) return "";
  auto active = slots->active();
  if (!active) return "";
  auto record = store_->slot(state_.target, *active);
  return record && *record ? (*record)->version : "";
}

std::vector<UpdateState> Updater::take_reports() {
  std::vector<UpdateState> out;
  out.swap(reports_);
  return out;
}

void Updater::queue_report() {
  if (reports_.size() >= 32) reports_.erase(reports_.begin());
  reports_.push_back(state_);
}

void Updater::on_hub_connection(bool connected) { hub_connected_ = connected; }

bool Updater::transition(UpdateState next, const std::optional<SlotRecord>& slot) {
  const bool same = next.generation == state_.generation && next.rollout == state_.rollout;
  next.transitions = same ? state_.transitions + 1 : 1;
  if (!is_final(next.phase) && next.transitions > options_.max_transitions) {
    const std::string why = "state loop: more than " + std::to_string(options_.max_transitions) +
                            " steps for one update";
    if (state_.pending || next.pending) {
      rollback(why);
      return false;
    }
    next.phase = Phase::kFailed;
    next.message = why;
  }
  if (next.phase == Phase::kDownloading || is_final(next.phase)) next.bytes_done = 0;
  if (auto st = store_->save(next, slot); !st) {
    logger()->error("{}; the step is retried", st.error().message());
    return false;
  }
  auto log = logger();
  const bool bad = next.phase == Phase::kFailed || next.phase == Phase::kRolledBack;
  log->log(bad ? spdlog::level::warn : spdlog::level::info,
           "ota step rollout={} generation={} version={} phase={} attempts={} message='{}'",
           next.rollout, next.generation, next.version, phase_name(next.phase), next.attempts,
           next.message);
  state_ = std::move(next);
  queue_report();
  if (is_final(state_.phase)) remove_downloads();
  return true;
}

void Updater::fail(const std::string& message) {
  if (state_.pending) {
    rollback(message);
    return;
  }
  UpdateState next = state_;
  next.phase = Phase::kFailed;
  next.message = message;
  transition(next);
}

void Updater::rollback(const std::string& reason) {
  UpdateState next = state_;
  const bool was_running_new = state_.phase == Phase::kHealthCheck;
  next.pending = false;
  next.phase = Phase::kRolledBack;
  next.message = reason;
  auto slots = slot_set(state_.target);
  if (slots) {
    if (auto st = slots->point_to(state_.from_slot); !st) {
      next.phase = Phase::kFailed;
      next.message = reason + "; " + st.error().message();
    }
  }
  if (!transition(next)) return;
  if (!slots || next.phase != Phase::kRolledBack) return;
  if (state_.target == kTargetAgent) {
    if (was_running_new) reexec_path_ = slots->active_path();
  } else if (!options_.switch_command.empty()) {
    run_job(Job::kSwitchBack, [s = *slots, slot = state_.from_slot, cmd = options_.switch_command,
                               t = options_.health_timeout] {
      return detail::run_switch(Job::kSwitchBack, s, slot, cmd, t);
    });
  }
}

void Updater::begin(const Assignment& a) {
  remove_downloads();
  manifest_.reset();
  retries_ = 0;
  retry_at_ = {};
  aborting_ = false;
  health_started_ = false;
  cancel_ = false;
  progress_ = 0;  // the previous update's count must not show up in this one's reports
  progress_delta_ = false;
  UpdateState next;
  next.rollout = a.rollout;
  next.generation = a.generation;
  next.manifest = a.manifest;
  next.signature = a.signature;
  next.payload_url = a.payload_url;
  next.delta_url = a.delta_url;
  next.phase = Phase::kDownloading;
  auto reject = [&](const std::string& message) {
    next.phase = Phase::kFailed;
    next.message = message;
    transition(next);
  };
  const std::string what = "rollout '" + a.rollout + "'";
  if (options_.public_key_pem.empty()) {
    return reject("Failed to verify the manifest of " + what +
                  ": no public key is pinned (--ota-public-key)");
  }
  if (auto st = verify(options_.public_key_pem, a.manifest, a.signature); !st) {
    return reject("Failed to verify the manifest of " + what + ": " + st.error().message());
  }
  auto m = parse_manifest(a.manifest);
  if (!m) return reject("Failed to read the manifest of " + what + ": " + m.error().message());
  next.target = m->target;
  next.version = m->version;
  next.bytes_total = m->size;
  auto slots = slot_set(m->target);
  if (!slots) {
    return reject("Failed to update to " + m->name + " " + m->version + ": target '" + m->target +
                  "' is not configured on this agent" +
                  (m->target == kTargetImage ? " (--ota-image-slots)" : ""));
  }
  if (a.payload_url.empty()) {
    return reject("Failed to update to " + m->name + " " + m->version + ": no payload URL");
  }
  next.from_slot = slots->active_or_default();
  next.to_slot = SlotSet::other(next.from_slot);
  auto record = store_->slot(m->target, next.from_slot);
  if (record && *record && (*record)->sha256 == m->sha256) {
    next.phase = Phase::kCommitted;
    next.message = "already running " + m->version;
    transition(next);
    return;
  }
  if (auto st = fs::make_dirs(download_dir()); !st) return reject(st.error().message());
  manifest_ = std::move(*m);
  transition(next);
}

void Updater::finish_abort(const std::string& message) {
  aborting_ = false;
  cancel_ = false;
  UpdateState next = state_;
  next.phase = Phase::kAborted;
  next.generation = std::max(state_.generation, abort_generation_);
  next.message = message;
  transition(next);
}

}  // namespace flotilla::ota
