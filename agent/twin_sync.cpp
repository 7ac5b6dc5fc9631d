#include "agent/twin_sync.hpp"

#include <csignal>

#include "common/failpoint.hpp"
#include "common/log.hpp"
#include "sync/codec.hpp"
#include "sync/topics.hpp"

namespace flotilla::agent {
namespace {

constexpr size_t kBatchHeadroom = 1024;
constexpr size_t kPerRecordOverhead = 16;

std::string json_text(const twin::Json& j) { return j.dump(); }

}  // namespace

std::string local_twin_topic(std::string_view device, std::string_view leaf) {
  return std::string(kLocalDevicesPrefix) + std::string(device) + "/twin/" + std::string(leaf);
}

sync::TransportOptions make_device_transport_options(const AgentConfig& config) {
  sync::TransportOptions opts;
  opts.server_uri = config.device_mqtt_uri;
  opts.client_id = "flotilla-agent-" + config.node + "-devices";
  opts.clean_session = true;
  opts.max_backoff = Millis(2000);
  return opts;
}

TwinSync::TwinSync(const AgentConfig& config, Store& store, sync::Transport& hub,
                   sync::Transport* local, const Clock& clock, PostDone post_done)
    : node_(config.node),
      shards_(config.sync.shards),
      max_inflight_(config.sync.max_inflight_batches),
      publish_retry_(config.sync.publish_retry),
      store_(store),
      hub_(hub),
      local_(local),
      clock_(clock),
      post_done_(std::move(post_done)) {}

Status TwinSync::start() {
  auto twins = store_.load_twins();
  if (!twins) return twins.error();
  twins_ = std::move(*twins);
  if (local_ == nullptr) return Ok();
  for (const char* leaf : {"reported", "get"}) {
    if (auto st = local_->subscribe(local_twin_topic("+", leaf), 1); !st) return st;
  }
  return Ok();
}

bool TwinSync::is_local_topic(std::string_view topic) {
  return topic.substr(0, kLocalDevicesPrefix.size()) == kLocalDevicesPrefix;
}

void TwinSync::publish_to_device(const std::string& device) {
  if (local_ == nullptr || !local_connected_) return;  // republished on (re)connect
  auto it = twins_.find(device);
  if (it == twins_.end()) {
    // Forgotten: clear the retained documents so a restarting device finds none.
    (void)local_->publish_retained(local_twin_topic(device, "desired"), "");
    (void)local_->publish_retained(local_twin_topic(device, "delta"), "");
    return;
  }
  const twin::Twin& t = it->second;
  twin::Json desired = {{"version", t.desired_version()}, {"desired", t.desired()}};
  twin::Json delta = {{"version", t.desired_version()}, {"delta", t.delta()}};
  (void)local_->publish_retained(local_twin_topic(device, "desired"), json_text(desired));
  (void)local_->publish_retained(local_twin_topic(device, "delta"), json_text(delta));
}

void TwinSync::on_hub_message(const std::string& payload) {
  store_reports();  // what follows builds on the twins as stored
  auto log = log::get("agent");
  auto msg = sync::decode<v1::TwinDesired>(payload);
  if (!msg || msg->node() != node_) {
    ++counters_.rejected_messages;
    log->warn("twin message dropped reason='{}'",
              msg ? "not addressed to this node" : msg.error().message());
    return;
  }
  std::vector<TwinWrite> writes;
  std::map<std::string, twin::Twin> next;  // the changed twins, adopted after they are stored
  std::set<std::string> listed;
  std::set<std::string> changed_devices;  // to publish to the device bridge once stored
  for (const auto& dd : msg->devices()) {
    const std::string& device = dd.device();
    if (auto st = sync::validate_node_name(device); !st) {
      ++counters_.rejected_messages;
      log->warn("twin of device '{}' dropped: invalid name: {}", device, st.error().message());
      continue;
    }
    listed.insert(device);
    if (dd.removed()) {
      if (twins_.count(device) != 0 || next.count(device) != 0) {
        writes.push_back({device, std::nullopt, false});
        changed_devices.insert(device);
        next.erase(device);
      }
      continue;
    }
    auto doc = twin::parse(dd.desired(), "desired");
    // A device listed twice builds on its earlier entry in this message.
    auto earlier = next.find(device);
    auto current = twins_.find(device);
    twin::Twin t = earlier != next.end()     ? earlier->second
                   : current != twins_.end() ? current->second
                                             : twin::Twin();
    const bool is_new = earlier == next.end() && current == twins_.end();
    Expected<twin::Update> adopted =
        doc ? t.adopt_desired(*doc, dd.desired_version()) : Expected<twin::Update>(doc.error());
    if (!adopted) {
      ++counters_.rejected_messages;
      log->warn("Failed to adopt desired twin of '{}': {}", device, adopted.error().message());
      continue;
    }
    bool changed = adopted->changed() || is_new;
    if (dd.reported_version() > t.reported_version()) {
      // The hub holds a reported version we never made: our store was lost. Ours must win.
      if (auto s = t.supersede_reported(dd.reported_version()); s && s->changed()) changed = true;
    }
    // Report (the ack) for every change, for a resend (non-full: the hub waits for our ack), and
    // when the hub's reported or desired version is not ours.
    bool report = changed || !msg->full() || dd.reported_version() != t.reported_version() ||
                  dd.desired_version() != t.desired_version();
    if (changed || report) {
      writes.push_back({device, t, report});
      if (adopted->changed()) ++counters_.desired_adopted;
      if (changed) changed_devices.insert(device);
      next[device] = std::move(t);
    }
  }
  if (msg->full()) {
    const uint32_t parts = std::max<uint32_t>(1, msg->parts());
    if (parts != full_parts_ || msg->part() == 0) {
      full_parts_ = parts;
      full_seen_.clear();
      full_listed_.clear();
    }
    full_seen_.insert(msg->part());
    full_listed_.insert(listed.begin(), listed.end());
    if (full_seen_.size() >= full_parts_) {
      for (const auto& [device, t] : twins_) {
        if (full_listed_.count(device) != 0) continue;
        writes.push_back({device, std::nullopt, false});
        changed_devices.insert(device);
      }
      full_parts_ = 0;
      full_seen_.clear();
      full_listed_.clear();
    }
  }
  if (writes.empty()) return;
  if (auto st = store_.put_twins(writes); !st) {
    // Not reported: the hub resends, and the next attempt may succeed.
    log->error("{}", st.error().message());
    return;
  }
  for (const auto& w : writes) {
    if (!w.twin) {
      twins_.erase(w.device);
      log->info("twin forgotten device={}", w.device);
    } else {
      twins_[w.device] = *w.twin;  // as stored, in order (a device may be listed twice)
      log->debug("twin desired device={} version={}", w.device, twins_[w.device].desired_version());
    }
    if (changed_devices.count(w.device) != 0) publish_to_device(w.device);
  }
}

void TwinSync::reject_report(const std::string& device, const std::string& why) {
  ++counters_.reports_rejected;
  log::get("agent")->warn("device report rejected device={} reason='{}'", device, why);
  if (local_ == nullptr) return;
  (void)local_->publish(local_twin_topic(device, "rejected"), json_text({{"error", why}}), 1);
}

void TwinSync::handle_report(const std::string& device, const std::string& payload) {
  if (payload.size() > twin::kMaxTextBytes) {
    return reject_report(device, "report: " + std::to_string(payload.size()) +
                                     " bytes is over the " + std::to_string(twin::kMaxTextBytes) +
                                     "-byte limit");
  }
  auto body = twin::Json::parse(payload, nullptr, /*allow_exceptions=*/false);
  if (body.is_discarded() || !body.is_object())
    return reject_report(device, "report: not a JSON object");
  if (!body.contains("reported")) return reject_report(device, "report: no 'reported' patch");
  std::optional<uint64_t> observed;
  if (auto it = body.find("observedDesired"); it != body.end()) {
    if (!it->is_number_unsigned()) {
      return reject_report(device, "observedDesired: not a non-negative integer");
    }
    observed = it->get<uint64_t>();
  }
  // On top of a report of this loop iteration not yet stored, else of the cached twin.
  auto pending = pending_reports_.find(device);
  auto current = twins_.find(device);
  twin::Twin t = pending != pending_reports_.end() ? pending->second
                 : current != twins_.end()         ? current->second
                                                   : twin::Twin();
  auto update = t.report(body["reported"], observed);
  if (!update) return reject_report(device, update.error().message());
  if (!update->changed()) return;
  pending_reports_[device] = std::move(t);
}

void TwinSync::store_reports() {
  if (pending_reports_.empty()) return;
  std::vector<TwinWrite> writes;
  for (const auto& [device, t] : pending_reports_) writes.push_back({device, t, true});
  std::map<std::string, twin::Twin> reports;
  reports.swap(pending_reports_);
  if (auto st = store_.put_twins(writes); !st) {
    log::get("agent")->error("{}", st.error().message());
    for (const auto& [device, t] : reports) {
      reject_report(device, "Failed to store the report; send it again");
    }
    return;
  }
  counters_.reports_accepted += reports.size();
  // Fault tests: a kill -9 after a report is stored and before anything was published or sent.
  if (failpoint("agent.twin_after_persist")) std::raise(SIGKILL);
  for (auto& [device, t] : reports) {
    twins_[device] = std::move(t);
    publish_to_device(device);  // the delta follows reported
  }
}

void TwinSync::on_local_message(const sync::Message& message) {
  std::string_view rest = std::string_view(message.topic).substr(kLocalDevicesPrefix.size());
  auto slash = rest.find('/');
  if (slash == std::string_view::npos) return;
  std::string device(rest.substr(0, slash));
  std::string_view leaf = rest.substr(slash);
  if (auto st = sync::validate_node_name(device); !st) {
    ++counters_.reports_rejected;
    log::get("agent")->warn("device message dropped topic='{}' reason='device {}'", message.topic,
                            st.error().message().substr(5));
    return;
  }
  if (leaf == "/twin/reported") return handle_report(device, message.payload);
  if (leaf == "/twin/get") return publish_to_device(device);
}

void TwinSync::on_local_connection(bool connected) {
  local_connected_ = connected;
  if (!connected) {
    log::get("agent")->warn("device broker connection lost");
    return;
  }
  log::get("agent")->info("device broker connected; republishing {} twins", twins_.size());
  for (const auto& [device, t] : twins_) publish_to_device(device);
}

void TwinSync::on_hub_connection(bool connected) {
  if (connected == hub_connected_) return;
  hub_connected_ = connected;
  for (auto& [id, rows] : inflight_) stale_.emplace(id, std::move(rows));
  while (stale_.size() > 64) stale_.erase(stale_.begin());
  inflight_.clear();
  inflight_devices_.clear();
  rescan_ = true;
  retry_at_ = TimePoint{};
  // Parts of a full TwinDesired from before are not completed by the hub's next one.
  full_parts_ = 0;
  full_seen_.clear();
  full_listed_.clear();
}

void TwinSync::tick() {
  store_reports();
  flush();
}

void TwinSync::flush() {
  if (!hub_connected_ || static_cast<int>(inflight_.size()) >= max_inflight_) return;
  if (!rescan_ && store_.twin_outbox_version() == scanned_version_) return;
  if (clock_.now() < retry_at_) return;
  rescan_ = false;
  scanned_version_ = store_.twin_outbox_version();
  auto rows = store_.outbox_twins();
  if (!rows) {
    log::get("agent")->error("{}", rows.error().message());
    retry_at_ = clock_.now() + publish_retry_;
    rescan_ = true;
    return;
  }
  const size_t limit = sync::kMaxMessageBytes - kBatchHeadroom;
  size_t next = 0;
  while (static_cast<int>(inflight_.size()) < max_inflight_ && next < rows->size()) {
    v1::TwinReported batch;
    batch.set_node(node_);
    std::vector<OutboxTwin> keys;
    size_t size = batch.ByteSizeLong();
    for (; next < rows->size(); ++next) {
      const OutboxTwin& row = (*rows)[next];
      if (inflight_devices_.count(row.device) != 0) continue;
      auto it = twins_.find(row.device);
      if (it == twins_.end()) {
        keys.push_back(row);  // forgotten since: nothing to send, the row just goes
        continue;
      }
      v1::DeviceReported r;
      r.set_device(row.device);
      r.set_reported(twin::canonical(it->second.reported()));
      r.set_reported_version(it->second.reported_version());
      r.set_observed_desired(it->second.observed_desired());
      r.set_desired_version(it->second.desired_version());
      size_t add = r.ByteSizeLong() + kPerRecordOverhead;
      if (batch.devices_size() > 0 && size + add > limit) break;
      *batch.add_devices() = std::move(r);
      keys.push_back(row);
      size += add;
    }
    if (keys.empty()) break;
    uint64_t id = ++next_batch_id_;
    for (const auto& k : keys) inflight_devices_.insert(k.device);
    inflight_.emplace(id, std::move(keys));
    ++counters_.batches_sent;
    PostDone post = post_done_;
    (void)hub_.publish(sync::up_topic(node_, shards_, "twin"), sync::encode(batch), 1,
                       [post, id](Status st) { post(id, std::move(st)); });
  }
  if (next < rows->size()) rescan_ = true;
}

void TwinSync::on_publish_done(uint64_t batch_id, const Status& status) {
  std::vector<OutboxTwin> rows;
  bool current = false;
  if (auto it = inflight_.find(batch_id); it != inflight_.end()) {
    rows = std::move(it->second);
    inflight_.erase(it);
    current = true;
  } else if (auto old = stale_.find(batch_id); old != stale_.end()) {
    rows = std::move(old->second);
    stale_.erase(old);
  } else {
    return;
  }
  if (current) {
    for (const auto& r : rows) inflight_devices_.erase(r.device);
  }
  rescan_ = true;
  if (!status) {
    ++counters_.publish_failures;
    if (hub_connected_ && current) retry_at_ = clock_.now() + publish_retry_;
    return;
  }
  if (auto st = store_.delete_sent_twins(rows); !st)
    log::get("agent")->error("{}", st.error().message());
}

}  // namespace flotilla::agent
