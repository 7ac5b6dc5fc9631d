#include "cloud-hub/watch.hpp"

#include "cloud-hub/labels.hpp"

namespace flotilla::hub {
namespace {

using json = nlohmann::json;

// A node's or device's labels, or a workload's or rollout's metadata.labels.
std::shared_ptr<const Labels> labels_of(Change::Kind kind, const json& view) {
  auto out = std::make_shared<Labels>();
  const json* labels = nullptr;
  if (kind == Change::Kind::kNode || kind == Change::Kind::kDevice) {
    if (view.is_object() && view.contains("labels")) labels = &view["labels"];
  } else if (view.is_object() && view.contains("metadata") && view["metadata"].is_object() &&
             view["metadata"].contains("labels")) {
    labels = &view["metadata"]["labels"];
  }
  if (labels != nullptr && labels->is_object()) {
    for (const auto& [k, v] : labels->items()) {
      if (v.is_string()) (*out)[k] = v.get<std::string>();
    }
  }
  return out;
}

// What a DELETED record carries for an object the log never saw.
std::shared_ptr<const std::string> bare_object(Change::Kind kind, const std::string& name) {
  if (kind == Change::Kind::kNode || kind == Change::Kind::kDevice) {
    return std::make_shared<const std::string>(json{{"name", name}}.dump());
  }
  json j = {{"apiVersion", "flotilla/v1"},
            {"kind", kind == Change::Kind::kWorkload ? "Workload" : "Rollout"},
            {"metadata", {{"name", name}}}};
  return std::make_shared<const std::string>(j.dump());
}

// The node a device is attached to ("" for other kinds).
std::string node_of(Change::Kind kind, const json& view) {
  if (kind != Change::Kind::kDevice || !view.is_object()) return "";
  auto it = view.find("node");
  return it != view.end() && it->is_string() ? it->get<std::string>() : "";
}

// A node's state ("" for other kinds, or unknown).
std::string state_of(Change::Kind kind, const json& view) {
  if (kind != Change::Kind::kNode || !view.is_object()) return "";
  auto it = view.find("state");
  return it != view.end() && it->is_string() ? it->get<std::string>() : "";
}

bool matches(const Labels& selector, const std::shared_ptr<const Labels>& labels) {
  return labels && labels_match(selector, *labels);
}

}  // namespace

const char* kind_path(Change::Kind kind) {
  switch (kind) {
    case Change::Kind::kNode:
      return "nodes";
    case Change::Kind::kWorkload:
      return "workloads";
    case Change::Kind::kDevice:
      return "devices";
    case Change::Kind::kRollout:
      return "rollouts";
  }
  return "nodes";
}

const char* watch_type_name(WatchType type) {
  switch (type) {
    case WatchType::kAdded:
      return "ADDED";
    case WatchType::kModified:
      return "MODIFIED";
    case WatchType::kDeleted:
      return "DELETED";
  }
  return "MODIFIED";
}

std::optional<WatchType> WatchFilter::type_for(const WatchEvent& e) const {
  if (e.kind != kind || (!name.empty() && e.name != name)) return std::nullopt;
  // A device's node never changes; the delete of a device never seen goes to every watcher.
  if (!node.empty() && e.node != node && !(e.type == WatchType::kDeleted && e.node.empty())) {
    return std::nullopt;
  }
  if (selector.empty() && state.empty()) return e.type;
  auto selects = [&](const std::shared_ptr<const Labels>& labels, const std::string& s) {
    return (selector.empty() || matches(selector, labels)) && (state.empty() || s == state);
  };
  switch (e.type) {
    case WatchType::kAdded:
      if (selects(e.labels, e.state)) return WatchType::kAdded;
      return std::nullopt;
    case WatchType::kDeleted:
      // An object the log never saw (labels and state unknown) goes to every watcher.
      if (!e.labels || selects(e.labels, e.state)) return WatchType::kDeleted;
      return std::nullopt;
    case WatchType::kModified: {
      const bool now = selects(e.labels, e.state);
      const bool before = selects(e.labels_before, e.state_before);
      if (now) return before ? WatchType::kModified : WatchType::kAdded;
      if (before) return WatchType::kDeleted;  // it left the selection
      return std::nullopt;
    }
  }
  return std::nullopt;
}

WatchLog::WatchLog(WatchLogOptions options) : options_(options), version_(options.first_version) {}

uint64_t WatchLog::record(const std::vector<Update>& updates) {
  // Serialise outside the lock: watchers only ever copy the result.
  struct Prepared {
    std::shared_ptr<const Labels> labels;
    std::shared_ptr<const std::string> object;
    std::string node;
    std::string state;
  };
  std::vector<Prepared> prepared;
  prepared.reserve(updates.size());
  for (const auto& u : updates) {
    if (u.view) {
      prepared.push_back({labels_of(u.kind, *u.view),
                          std::make_shared<const std::string>(u.view->dump()),
                          node_of(u.kind, *u.view), state_of(u.kind, *u.view)});
    } else {
      prepared.push_back({});
    }
  }
  uint64_t last = 0;
  {
    std::lock_guard lock(mu_);
    for (size_t i = 0; i < updates.size(); ++i) {
      const Update& u = updates[i];
      Prepared& p = prepared[i];
      auto e = std::make_shared<WatchEvent>();
      e->version = ++version_;
      e->kind = u.kind;
      e->name = u.name;
      auto known = known_.find({u.kind, u.name});
      if (u.view) {
        if (known == known_.end()) {
          e->type = WatchType::kAdded;
          known = known_.emplace(Key{u.kind, u.name}, Known{}).first;
        } else {
          e->type = WatchType::kModified;
          e->labels_before = known->second.labels;
          e->state_before = known->second.state;
          if (*p.labels == *known->second.labels) p.labels = known->second.labels;  // share
        }
        e->labels = p.labels;
        e->object = p.object;
        e->node = p.node;
        e->state = p.state;
        known->second = {p.labels, p.object, std::move(p.node), std::move(p.state)};
      } else {
        e->type = WatchType::kDeleted;
        if (known != known_.end()) {
          e->labels = e->labels_before = known->second.labels;
          e->object = known->second.object;
          e->node = known->second.node;
          e->state = e->state_before = known->second.state;
          known_.erase(known);
        } else {
          e->object = bare_object(u.kind, u.name);
        }
      }
      ring_bytes_ += e->object->size();
      ring_.push_back(std::move(e));
    }
    trim_locked();
    last = version_;
  }
  cv_.notify_all();
  return last;
}

void WatchLog::seed(Change::Kind kind, const std::string& name, const nlohmann::json& view) {
  auto labels = labels_of(kind, view);
  auto object = std::make_shared<const std::string>(view.dump());
  std::string node = node_of(kind, view);
  std::string state = state_of(kind, view);
  std::lock_guard lock(mu_);
  known_.emplace(Key{kind, name},
                 Known{std::move(labels), std::move(object), std::move(node), std::move(state)});
}

void WatchLog::trim_locked() {
  while (ring_.size() > options_.max_records ||
         (ring_bytes_ > options_.max_bytes && ring_.size() > 1)) {
    ring_bytes_ -= ring_.front()->object->size();
    ring_.pop_front();
  }
}

uint64_t WatchLog::version() const {
  std::lock_guard lock(mu_);
  return version_;
}

uint64_t WatchLog::oldest() const {
  std::lock_guard lock(mu_);
  return oldest_locked();
}

size_t WatchLog::size() const {
  std::lock_guard lock(mu_);
  return ring_.size();
}

uint64_t WatchLog::oldest_locked() const {
  return ring_.empty() ? version_ : ring_.front()->version - 1;
}

void WatchLog::collect_locked(const WatchFilter& filter, WatchBatch& batch) const {
  // Versions are consecutive, so the ring is indexed by version.
  const uint64_t first = ring_.empty() ? version_ + 1 : ring_.front()->version;
  for (uint64_t v = batch.cursor + 1; v <= version_; ++v) {
    const auto& e = ring_[v - first];
    batch.cursor = v;
    if (auto type = filter.type_for(*e)) {
      batch.events.push_back({e, *type});
      if (batch.events.size() >= options_.max_batch) return;
    }
  }
}

WatchBatch WatchLog::wait(const WatchFilter& filter, uint64_t after, Millis timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  WatchBatch batch;
  batch.cursor = after;
  std::unique_lock lock(mu_);
  bool timed_out = false;
  for (;;) {
    if (closed_) {
      batch.result = WatchBatch::Result::kClosed;
      return batch;
    }
    if (batch.cursor < oldest_locked() || batch.cursor > version_) {
      batch.result = WatchBatch::Result::kGone;
      return batch;
    }
    collect_locked(filter, batch);
    if (!batch.events.empty()) {
      batch.result = WatchBatch::Result::kEvents;
      return batch;
    }
    if (timed_out) {
      batch.result = WatchBatch::Result::kTimeout;
      return batch;
    }
    timed_out = cv_.wait_until(lock, deadline) == std::cv_status::timeout;
  }
}

void WatchLog::lose_history() {
  {
    std::lock_guard lock(mu_);
    ring_.clear();
    ring_bytes_ = 0;
    version_ += 1;
  }
  cv_.notify_all();
}

void WatchLog::close() {
  {
    std::lock_guard lock(mu_);
    closed_ = true;
  }
  cv_.notify_all();
}

}  // namespace flotilla::hub
