// Controller: device twins at the hub (docs/protocol.md "Device twins"): REST changes of desired,
// TwinDesired to nodes, TwinReported from them. The twin rules are common/twin.hpp's.
#include <algorithm>
#include <csignal>

#include "cloud-hub/controller.hpp"
#include "cloud-hub/manifest_checker.hpp"
#include "common/failpoint.hpp"
#include "common/log.hpp"
#include "common/twin.hpp"
#include "sync/codec.hpp"

namespace flotilla::hub {
namespace {

namespace pb = flotilla::v1;
using Code = DeviceOutcome::Code;

Expected<twin::Twin> to_twin(const DeviceRecord& d) {
  return twin::Twin::restore(d.desired, d.desired_version, d.reported, d.reported_version,
                             d.observed_desired);
}

void from_twin(const twin::Twin& t, DeviceRecord& d) {
  d.desired = twin::canonical(t.desired());
  d.desired_version = t.desired_version();
  d.reported = twin::canonical(t.reported());
  d.reported_version = t.reported_version();
  d.observed_desired = t.observed_desired();
}

nlohmann::json device_json(const DeviceRecord& d, const twin::Twin& t) {
  return {{"name", d.name},
          {"node", d.node},
          {"labels", d.labels},
          {"desired", t.desired()},
          {"desiredVersion", t.desired_version()},
          {"reported", t.reported()},
          {"reportedVersion", t.reported_version()},
          {"observedDesired", t.observed_desired()},
          {"delta", t.delta()},
          {"updatedAt", format_time(d.updated_ms)}};
}

pb::DeviceDesired device_desired(const DeviceRecord& d, bool removed = false) {
  pb::DeviceDesired m;
  m.set_device(d.name);
  m.set_desired(d.desired);
  m.set_desired_version(d.desired_version);
  m.set_reported_version(d.reported_version);
  m.set_removed(removed);
  return m;
}

DeviceOutcome invalid(std::string message) { return {Code::kInvalid, std::move(message), {}}; }

// A body's "labels": an object of label keys to label values (as a manifest's metadata.labels).
Expected<std::map<std::string, std::string>> labels_of_body(const nlohmann::json& body) {
  std::map<std::string, std::string> out;
  auto it = body.find("labels");
  if (it == body.end() || it->is_null()) return out;
  if (!it->is_object()) return Error("\"labels\" must be an object of strings");
  for (const auto& [k, v] : it->items()) {
    if (!v.is_string() || !valid_label_key(k) || !valid_label_value(v.get<std::string>())) {
      return Error("label '" + k + "': want a label key (letters, digits, '-', '_', '.', '/') " +
                   "and a string value (letters, digits, '-', '_', '.'; at most 63)");
    }
    out[k] = v.get<std::string>();
  }
  return out;
}

}  // namespace

Expected<std::optional<DeviceRecord>> Controller::find_device(const std::string& name) {
  for (auto& shard : shards_) {
    std::lock_guard lock(*shard->mu);
    auto d = shard->store->get_device(name);
    if (!d) return d.error();
    if (*d) return d;
  }
  return std::optional<DeviceRecord>();
}

void Controller::queue_twin_locked(const std::string& node, std::vector<pb::DeviceDesired> devices,
                                   bool full, Outbox& out) {
  // Room for the header (node, full, part, parts) and each entry's tag and length.
  const size_t budget = sync::kMaxMessageBytes - 1024;
  std::vector<pb::TwinDesired> parts(1);
  size_t used = 0;
  for (auto& d : devices) {
    const size_t size = d.ByteSizeLong() + 16;
    if (used > 0 && used + size > budget) {
      parts.emplace_back();
      used = 0;
    }
    used += size;
    *parts.back().add_devices() = std::move(d);
  }
  for (size_t i = 0; i < parts.size(); ++i) {
    parts[i].set_node(node);
    parts[i].set_full(full);
    if (parts.size() > 1) {
      parts[i].set_part(static_cast<uint32_t>(i));
      parts[i].set_parts(static_cast<uint32_t>(parts.size()));
    }
    out.push_back({sync::down_topic(node, options_.shards, "twin"), sync::encode(parts[i])});
  }
  Live& live = shard_of(node).live[node];
  live.twin_sent = clock_.now();
  if (full) {
    live.twin_listed = true;
    live.twin_unacked.clear();  // the full list supersedes every change before it
  } else {
    for (const auto& part : parts) {
      for (const auto& d : part.devices()) {
        if (!d.removed()) live.twin_unacked.insert(d.device());
      }
    }
  }
  metrics_.count("flotilla_hub_twin_desired_sent_total", {}, parts.size());
}

void Controller::queue_twin_full_locked(Shard& shard, const std::string& node, Outbox& out) {
  auto devices = shard.store->list_devices(node);
  if (!devices) {
    store_failed("list the devices of node '" + node + "'", devices.error());
    return;
  }
  std::vector<pb::DeviceDesired> all;
  for (const auto& d : *devices) all.push_back(device_desired(d));
  queue_twin_locked(node, std::move(all), true, out);
}

Status Controller::commit_desired_locked(Shard& shard, DeviceRecord& rec, const twin::Twin& t,
                                         const std::string& reason, Outbox& out) {
  from_twin(t, rec);
  rec.updated_ms = clock_.wall_ms();
  Status st = shard.store->transaction([&]() -> Status {
    if (auto put = shard.store->put_device(rec); !put) return put;
    return event_locked(rec.node, "device/" + rec.name, reason,
                        "desired version " + std::to_string(rec.desired_version));
  });
  if (!st) return st.error().WithContext("Failed to store device '" + rec.name + "'");
  // A kill -9 here: committed, nothing sent (the next hub process lists the node's devices).
  if (failpoint("hub.twin_after_commit")) std::raise(SIGKILL);
  note_changed(Change::Kind::kDevice, rec.name);
  queue_twin_locked(rec.node, {device_desired(rec)}, false, out);
  return Ok();
}

void Controller::resend_twins_locked(Shard& shard, const std::string& node, Outbox& out) {
  auto it = shard.live.find(node);
  if (it != shard.live.end() && !it->second.twin_listed) {
    return queue_twin_full_locked(shard, node, out);
  }
  if (it == shard.live.end() || it->second.twin_unacked.empty()) return;
  Live& live = it->second;
  if (clock_.now() - live.twin_sent < options_.resend_interval) return;
  std::vector<pb::DeviceDesired> again;
  for (const auto& name : std::set<std::string>(live.twin_unacked)) {
    auto d = shard.store->get_device(name);
    if (!d) return store_failed("read device '" + name + "'", d.error());
    if (*d && (*d)->node == node) {
      again.push_back(device_desired(**d));
    } else {
      live.twin_unacked.erase(name);  // deleted since: its removal went out then
    }
  }
  if (again.empty()) return;
  metrics_.count("flotilla_hub_twin_resends_total", {}, again.size());
  queue_twin_locked(node, std::move(again), false, out);
}

Expected<DeviceOutcome> Controller::put_device(const std::string& name,
                                               const nlohmann::json& body) {
  if (auto st = sync::validate_node_name(name); !st) {
    return invalid("device " + st.error().message().substr(5));
  }
  if (!body.is_object()) return invalid("a device is a JSON object with \"node\" and \"desired\"");
  const auto node_it = body.find("node");
  if (node_it == body.end() || !node_it->is_string()) {
    return invalid("device '" + name + "': \"node\" must name the node it is attached to");
  }
  const std::string node = node_it->get<std::string>();
  if (auto st = sync::validate_node_name(node); !st) {
    return invalid("device '" + name + "': " + st.error().message());
  }
  std::optional<nlohmann::json> desired;
  if (auto it = body.find("desired"); it != body.end() && !it->is_null()) desired = *it;
  auto labels = labels_of_body(body);
  if (!labels) return invalid("device '" + name + "': " + labels.error().message());

  std::lock_guard devices_lock(devices_mu_);
  auto found = find_device(name);
  if (!found) return found.error();
  if (*found && (*found)->node != node) {
    return invalid("device '" + name + "' is attached to node '" + (*found)->node +
                   "'; delete it to attach it to '" + node + "'");
  }
  Outbox out;
  DeviceOutcome outcome;
  {
    Shard& shard = shard_of(node);
    std::lock_guard lock(*shard.mu);
    auto existing = shard.store->get_device(name);
    if (!existing) return existing.error();
    DeviceRecord rec;
    twin::Twin t;
    if (*existing) {
      rec = **existing;
      auto restored = to_twin(rec);
      if (!restored) return restored.error().WithContext("Failed to read device '" + name + "'");
      t = std::move(*restored);
    }
    rec.name = name;
    rec.node = node;
    bool changed = !*existing || rec.labels != *labels;
    rec.labels = std::move(*labels);
    bool desired_changed = false;
    if (desired) {
      auto upd = t.replace_desired(*desired);
      if (!upd) return invalid("Failed to set device '" + name + "': " + upd.error().message());
      desired_changed = upd->changed();
    }
    if (changed || desired_changed) {
      const char* reason = !*existing        ? "DeviceCreated"
                           : desired_changed ? "DesiredSet"
                                             : "DeviceLabeled";
      if (auto st = commit_desired_locked(shard, rec, t, reason, out); !st) return st.error();
    }
    outcome.changed = changed || desired_changed;
    outcome.code = *existing ? Code::kOk : Code::kCreated;
    outcome.view = device_json(rec, t);
  }
  flush(out);
  return outcome;
}

Expected<DeviceOutcome> Controller::set_device_desired(const std::string& name,
                                                       const nlohmann::json& patch,
                                                       std::optional<uint64_t> if_version) {
  std::lock_guard devices_lock(devices_mu_);
  auto found = find_device(name);
  if (!found) return found.error();
  if (!*found) return DeviceOutcome{Code::kNotFound, "device '" + name + "' not found", {}};
  const std::string node = (*found)->node;
  Outbox out;
  DeviceOutcome outcome;
  {
    Shard& shard = shard_of(node);
    std::lock_guard lock(*shard.mu);
    auto existing = shard.store->get_device(name);
    if (!existing) return existing.error();
    if (!*existing) return DeviceOutcome{Code::kNotFound, "device '" + name + "' not found", {}};
    DeviceRecord rec = **existing;
    auto t = to_twin(rec);
    if (!t) return t.error().WithContext("Failed to read device '" + name + "'");
    auto upd = t->set_desired(patch, if_version);
    if (!upd) return invalid("Failed to set desired of '" + name + "': " + upd.error().message());
    if (upd->outcome == twin::Outcome::kConflict) {
      return DeviceOutcome{
          Code::kConflict, "Failed to set desired of '" + name + "': " + upd->reason, {}};
    }
    if (upd->changed()) {
      if (auto st = commit_desired_locked(shard, rec, *t, "DesiredSet", out); !st) {
        return st.error();
      }
    }
    outcome.view = device_json(rec, *t);
  }
  flush(out);
  return outcome;
}

Expected<std::optional<nlohmann::json>> Controller::device_view(const std::string& name) {
  auto found = find_device(name);
  if (!found) return found.error();
  if (!*found) return std::optional<nlohmann::json>();
  auto t = to_twin(**found);
  if (!t) return t.error().WithContext("Failed to read device '" + name + "'");
  return std::optional<nlohmann::json>(device_json(**found, *t));
}

Expected<nlohmann::json> Controller::devices_view(const std::string& node,
                                                  const ListOptions& options) {
  std::vector<DeviceRecord> all;
  auto collect = [&](Shard& shard) -> Status {
    std::lock_guard lock(*shard.mu);
    auto devices = shard.store->list_devices(node);
    if (!devices) return devices.error();
    all.insert(all.end(), devices->begin(), devices->end());
    return Ok();
  };
  if (!node.empty()) {
    if (auto st = collect(shard_of(node)); !st) return st.error();
  } else {
    for (auto& shard : shards_) {
      if (auto st = collect(*shard); !st) return st.error();
    }
  }
  std::sort(all.begin(), all.end(),
            [](const DeviceRecord& a, const DeviceRecord& b) { return a.name < b.name; });
  nlohmann::json items = nlohmann::json::array();
  std::string next;
  for (const auto& d : all) {
    if (!options.after.empty() && d.name <= options.after) continue;
    if (!std::all_of(options.selector.begin(), options.selector.end(), [&](const auto& kv) {
          auto it = d.labels.find(kv.first);
          return it != d.labels.end() && it->second == kv.second;
        })) {
      continue;
    }
    if (options.limit > 0 && static_cast<int64_t>(items.size()) == options.limit) {
      next = list_token(items.back()["name"].get<std::string>());  // more follow
      break;
    }
    auto t = to_twin(d);
    if (!t) return t.error().WithContext("Failed to read device '" + d.name + "'");
    items.push_back(device_json(d, *t));
  }
  return nlohmann::json{{"items", std::move(items)}, {"continue", next}};
}

Expected<bool> Controller::delete_device(const std::string& name) {
  std::lock_guard devices_lock(devices_mu_);
  auto found = find_device(name);
  if (!found) return found.error();
  if (!*found) return false;
  const DeviceRecord rec = **found;
  Outbox out;
  {
    Shard& shard = shard_of(rec.node);
    std::lock_guard lock(*shard.mu);
    Status st = shard.store->transaction([&]() -> Status {
      if (auto del = shard.store->delete_device(name); !del) return del;
      return event_locked(rec.node, "device/" + name, "DeviceDeleted", "deleted");
    });
    if (!st) return st.error().WithContext("Failed to delete device '" + name + "'");
    note_changed(Change::Kind::kDevice, name);
    queue_twin_locked(rec.node, {device_desired(rec, true)}, false, out);
  }
  flush(out);
  return true;
}

void Controller::on_twin_reported(const pb::TwinReported& reported) {
  Outbox out;
  {
    const std::string& node = reported.node();
    Shard& shard = shard_of(node);
    std::lock_guard lock(*shard.mu);
    std::vector<pb::DeviceDesired> resend;
    Status st = shard.store->transaction([&]() -> Status {
      for (const auto& d : reported.devices()) {
        auto existing = shard.store->get_device(d.device());
        if (!existing) return existing.error();
        if (!*existing || (*existing)->node != node) {
          // Deleted at the hub (the removal may still be on its way) or never created here.
          metrics_.count("flotilla_hub_twin_reports_ignored_total", {{"reason", "unknown_device"}});
          log_->debug("twin report for unknown device node={} device={}", node, d.device());
          continue;
        }
        DeviceRecord rec = **existing;
        auto t = to_twin(rec);
        if (!t) return t.error().WithContext("Failed to read device '" + rec.name + "'");
        auto doc = twin::parse(d.reported(), "reported");
        auto upd = doc ? t->adopt_reported(*doc, d.reported_version(), d.observed_desired())
                       : Expected<twin::Update>(doc.error());
        if (!upd) {
          metrics_.count("flotilla_hub_twin_reports_ignored_total", {{"reason", "invalid"}});
          log_->warn("twin report rejected node={} device={} error='{}'", node, rec.name,
                     upd.error().message());
          continue;
        }
        if (upd->outcome == twin::Outcome::kStale) {
          metrics_.count("flotilla_hub_twin_reports_ignored_total", {{"reason", "stale"}});
        }
        bool send = false;
        bool superseded = false;
        if (d.desired_version() > t->desired_version()) {
          // The agent holds a desired version this hub never issued: we lost our store (or
          // the device was deleted and created again). Ours must win: move past it.
          auto sup = t->supersede_desired(d.desired_version());
          if (sup && sup->changed()) superseded = send = true;
        } else if (d.desired_version() < t->desired_version()) {
          send = true;  // the agent is behind: a TwinDesired was lost
        }
        if (upd->changed() || superseded) {
          from_twin(*t, rec);
          rec.updated_ms = clock_.wall_ms();
          if (auto put = shard.store->put_device(rec); !put) return put;
          note_changed(Change::Kind::kDevice, rec.name);
          if (upd->changed()) {
            if (auto ev =
                    event_locked(node, "device/" + rec.name, "DeviceReported",
                                 "reported version " + std::to_string(rec.reported_version) +
                                     ", observed desired " + std::to_string(rec.observed_desired));
                !ev) {
              return ev;
            }
          }
          if (superseded) {
            if (auto ev = event_locked(node, "device/" + rec.name, "DesiredSuperseded",
                                       "agent held desired version " +
                                           std::to_string(d.desired_version()) + "; now " +
                                           std::to_string(rec.desired_version));
                !ev) {
              return ev;
            }
          }
        }
        if (send) {
          resend.push_back(device_desired(rec));
        } else {
          shard.live[node].twin_unacked.erase(rec.name);  // the agent holds the current one
        }
      }
      return Ok();
    });
    if (!st) {
      store_failed("store twin reports of node '" + node + "'", st.error());
      return;
    }
    if (!resend.empty()) queue_twin_locked(node, std::move(resend), false, out);
  }
  flush(out);
}

}  // namespace flotilla::hub
