#include "cloud-hub/watch_feeder.hpp"

#include <algorithm>
#include <chrono>

#include "common/log.hpp"
#include "common/thread_name.hpp"

namespace flotilla::hub {

WatchFeeder::WatchFeeder(WatchLog& log, Controller& controller, Metrics& metrics,
                         WatchFeederOptions options)
    : log_(log),
      controller_(controller),
      metrics_(metrics),
      options_(options),
      queue_(std::make_shared<Queue>()),
      thread_([this] { run(); }) {}

WatchFeeder::~WatchFeeder() { stop(); }

ChangeListener WatchFeeder::listener() {
  // Holds the queue, not the feeder: a late call only notes into a queue nobody reads.
  std::shared_ptr<Queue> q = queue_;
  return [q](const std::set<Change>& changes) {
    {
      std::lock_guard lock(q->mu);
      q->noted.insert(changes.begin(), changes.end());
      q->calls += 1;
    }
    q->cv.notify_all();
  };
}

void WatchFeeder::settle() {
  std::unique_lock lock(queue_->mu);
  const uint64_t target = queue_->calls;
  queue_->cv.wait(lock, [&] { return queue_->recorded >= target || !thread_.joinable(); });
}

void WatchFeeder::stop() {
  {
    std::lock_guard lock(queue_->mu);
    queue_->stopping = true;
  }
  queue_->cv.notify_all();
  if (thread_.joinable()) thread_.join();
}

void WatchFeeder::run() {
  set_thread_name("hub-watch-feed");
  using SteadyClock = std::chrono::steady_clock;
  Queue& q = *queue_;
  SteadyClock::time_point next_round{};
  for (;;) {
    std::set<Change> changes;
    uint64_t calls = 0;
    {
      std::unique_lock lock(q.mu);
      q.cv.wait(lock, [&] { return q.stopping || !q.noted.empty(); });
      // Let more changes coalesce while the last round is recent (stopping cuts it short).
      q.cv.wait_until(lock, next_round, [&] { return q.stopping; });
      if (q.noted.empty()) return;  // stopping, and nothing left to record
      changes.swap(q.noted);
      calls = q.calls;
    }
    const auto began = SteadyClock::now();
    const auto cpu_before = thread_cpu_time();
    record(changes);
    // The duty counts the CPU the round used, not its wall time: a round that mostly waited for
    // shard locks (ingest holding them) or for a core on a busy machine cost the others nothing,
    // and pausing 1/duty times its wall time held fresh changes back for minutes at 100k nodes.
    const auto used = thread_cpu_time() - cpu_before;
    const double duty = std::clamp(options_.max_duty, 0.01, 1.0);
    next_round = std::max(began + options_.min_interval,
                          began + std::chrono::duration_cast<SteadyClock::duration>(used / duty));
    {
      std::lock_guard lock(q.mu);
      q.recorded = calls;
    }
    q.cv.notify_all();
  }
}

void WatchFeeder::record(const std::set<Change>& changes) {
  std::vector<WatchLog::Update> updates;
  updates.reserve(changes.size());
  for (const auto& c : changes) {
    if (c.kind == Change::Kind::kRollout) {
      // Summaries: a rollout's view lists each of its nodes.
      if (rollouts_ != nullptr) updates.push_back({c.kind, c.name, rollouts_->view(c.name, true)});
      continue;
    }
    auto view = c.kind == Change::Kind::kNode ? controller_.node_view(c.name)
                : c.kind == Change::Kind::kWorkload
                    ? controller_.workload_view(c.name, Controller::Detail::kSummary)
                    : controller_.device_view(c.name);
    if (!view) {
      log::get("watch")->error("watchers miss a change kind={} name={} error='{}'",
                               kind_path(c.kind), c.name, view.error().message());
      metrics_.count("flotilla_hub_watch_view_errors_total");
      continue;
    }
    updates.push_back({c.kind, c.name, std::move(*view)});
  }
  if (!updates.empty()) log_.record(updates);
}

Status seed_watch_log(WatchLog& log, Controller& controller, UpdateRollouts* rollouts) {
  auto nodes = controller.nodes_view();
  if (!nodes) return nodes.error().WithContext("Failed to read the nodes for watchers");
  for (const auto& n : (*nodes)["items"]) {
    log.seed(Change::Kind::kNode, n.value("name", ""), n);
  }
  auto workloads = controller.workloads_view({}, Controller::Detail::kSummary);
  if (!workloads) return workloads.error().WithContext("Failed to read the workloads for watchers");
  for (const auto& w : (*workloads)["items"]) {
    log.seed(Change::Kind::kWorkload, w["metadata"].value("name", ""), w);
  }
  auto devices = controller.devices_view();
  if (!devices) return devices.error().WithContext("Failed to read the devices for watchers");
  for (const auto& d : (*devices)["items"]) {
    log.seed(Change::Kind::kDevice, d.value("name", ""), d);
  }
  if (rollouts == nullptr) return Ok();
  for (const auto& r : rollouts->list_view(true)["items"]) {
    log.seed(Change::Kind::kRollout, r["metadata"].value("name", ""), r);
  }
  return Ok();
}

}  // namespace flotilla::hub
