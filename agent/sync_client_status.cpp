// SyncClient: status sending. The full status on connect, and the outbox flushed in size-capped
// QoS 1 batches, at most config.max_inflight_batches at once. A row leaves the outbox only when
// the broker acknowledged the batch that carried it, and only if no newer record replaced it.
#include <map>

#include "agent/sync_client.hpp"
#include "common/log.hpp"
#include "sync/codec.hpp"

namespace flotilla::agent {
namespace {

// Room for the batch's own fields and each record's tag and length prefix.
constexpr size_t kBatchHeadroom = 1024;
constexpr size_t kPerRecordOverhead = 8;

}  // namespace

size_t SyncClient::batch_limit() const { return sync::kMaxMessageBytes - kBatchHeadroom; }

void SyncClient::publish_batch(v1::StatusBatch& batch, Batch keys) {
  if (hub_takes_acks_in_status()) {
    // Persisted before this batch was built: the batch acks it.
    batch.set_acked_revision(store_.meta().desired_revision);
    ack_due_ = 0;
    acked_since_start_ = true;
  }
  uint64_t id = ++next_batch_id_;
  for (const auto& key : keys.statuses) inflight_statuses_.insert(key);
  for (uint64_t seq : keys.events) inflight_events_.insert(seq);
  inflight_.emplace(id, std::move(keys));
  ++counters_.batches_sent;
  PostDone post = post_done_;
  (void)transport_.publish(topic("status"), sync::encode(batch), 1,
                           [post, id](Status st) { post(id, std::move(st)); });
}

void SyncClient::send_full_status() {
  auto log = log::get("agent");
  auto instances = store_.load_instances();
  auto outbox = store_.outbox_statuses();
  if (!instances || !outbox) {
    log->error("Failed to send full status: {}",
               (!instances ? instances.error() : outbox.error()).message());
    return;
  }
  // Outbox rows the full status makes redundant: the instance's current record, and removals
  // (a full status lists every instance, so the hub forgets those not in it).
  std::map<std::string, uint64_t> current;
  for (const auto& rec : *instances) current.emplace(rec.instance_id, rec.seq);
  Batch covered;
  for (const auto& row : *outbox) {
    auto it = current.find(row.instance_id);
    if (it == current.end() || it->second == row.seq)
      covered.statuses.emplace_back(row.instance_id, row.seq);
  }
  v1::StatusBatch full;
  full.set_node(node_);
  full.set_full(true);
  full.set_status_seq(store_.meta().status_seq);
  full.set_dropped_events(store_.meta().dropped_events);
  for (const auto& rec : *instances) *full.add_instances() = to_status(rec);
  if (full.ByteSizeLong() <= batch_limit()) {
    publish_batch(full, std::move(covered));
    return;
  }
  // Too many instances for one message: ordinary batches; removals go out with the outbox.
  log->info("full status does not fit one message; sending {} instances in batches",
            instances->size());
  v1::StatusBatch batch;
  Batch keys;
  size_t size = 0;
  auto start_batch = [&] {
    batch.Clear();
    batch.set_node(node_);
    batch.set_dropped_events(store_.meta().dropped_events);
    keys = Batch{};
    size = batch.ByteSizeLong();
  };
  start_batch();
  for (const auto& rec : *instances) {
    v1::InstanceStatus status = to_status(rec);
    size_t add = status.ByteSizeLong() + kPerRecordOverhead;
    if (batch.instances_size() > 0 && size + add > batch_limit()) {
      publish_batch(batch, std::move(keys));
      start_batch();
    }
    *batch.add_instances() = std::move(status);
    size += add;
    if (current.count(rec.instance_id) != 0) keys.statuses.emplace_back(rec.instance_id, rec.seq);
  }
  if (batch.instances_size() > 0) publish_batch(batch, std::move(keys));
}

void SyncClient::flush() {
  if (!connected_ || static_cast<int>(inflight_.size()) >= config_.max_inflight_batches) return;
  if (!rescan_ && store_.outbox_version() == scanned_version_) return;
  if (clock_.now() < retry_at_) return;
  rescan_ = false;
  scanned_version_ = store_.outbox_version();
  auto statuses = store_.outbox_statuses();
  auto events = store_.outbox_events();
  if (!statuses || !events) {
    log::get("agent")->error("{}", (!statuses ? statuses.error() : events.error()).message());
    retry_at_ = clock_.now() + config_.publish_retry;
    rescan_ = true;
    return;
  }
  size_t next_status = 0;
  size_t next_event = 0;
  auto skip_inflight = [&] {
    while (next_status < statuses->size() &&
           inflight_statuses_.count(
               {(*statuses)[next_status].instance_id, (*statuses)[next_status].seq}) != 0) {
      ++next_status;
    }
    while (next_event < events->size() && inflight_events_.count((*events)[next_event].seq) != 0) {
      ++next_event;
    }
  };
  skip_inflight();
  while (static_cast<int>(inflight_.size()) < config_.max_inflight_batches &&
         (next_status < statuses->size() || next_event < events->size())) {
    v1::StatusBatch batch;
    batch.set_node(node_);
    batch.set_dropped_events(store_.meta().dropped_events);
    Batch keys;
    size_t size = batch.ByteSizeLong();
    while (true) {
      skip_inflight();
      bool take_status = next_status < statuses->size();
      if (!take_status && next_event >= events->size()) break;
      const std::string& record =
          take_status ? (*statuses)[next_status].record : (*events)[next_event].record;
      size_t add = record.size() + kPerRecordOverhead;
      if (size + add > batch_limit() && (!keys.statuses.empty() || !keys.events.empty())) break;
      bool parsed = take_status ? batch.add_instances()->ParseFromString(record)
                                : batch.add_events()->ParseFromString(record);
      if (!parsed) {
        // Cannot happen with rows we wrote; never let one bad row block the outbox.
        log::get("agent")->error("Failed to read outbox row: corrupt record; dropping it");
        if (take_status)
          batch.mutable_instances()->RemoveLast();
        else
          batch.mutable_events()->RemoveLast();
      } else {
        size += add;
      }
      if (take_status) {
        keys.statuses.emplace_back((*statuses)[next_status].instance_id,
                                   (*statuses)[next_status].seq);
        ++next_status;
      } else {
        keys.events.push_back((*events)[next_event].seq);
        ++next_event;
      }
    }
    if (keys.statuses.empty() && keys.events.empty()) break;
    publish_batch(batch, std::move(keys));
  }
  // More rows than the in-flight window allows: look again when a batch completes.
  if (next_status < statuses->size() || next_event < events->size()) rescan_ = true;
}

void SyncClient::on_publish_done(uint64_t batch_id, const Status& status) {
  Batch batch;
  bool current = false;
  if (auto it = inflight_.find(batch_id); it != inflight_.end()) {
    batch = std::move(it->second);
    inflight_.erase(it);
    current = true;
  } else if (auto old = stale_.find(batch_id); old != stale_.end()) {
    batch = std::move(old->second);
    stale_.erase(old);
  } else {
    return;
  }
  if (current) {
    for (const auto& key : batch.statuses) inflight_statuses_.erase(key);
    for (uint64_t seq : batch.events) inflight_events_.erase(seq);
  }
  rescan_ = true;
  if (!status) {
    ++counters_.publish_failures;
    log::get("agent")->debug("status batch not delivered batch={} error='{}'", batch_id,
                             status.error().message());
    if (connected_ && current) retry_at_ = clock_.now() + config_.publish_retry;
    return;
  }
  if (auto st = store_.delete_sent(batch.statuses, batch.events); !st) {
    log::get("agent")->error("{}", st.error().message());
  }
}

}  // namespace flotilla::agent
