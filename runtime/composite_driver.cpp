#include "runtime/composite_driver.hpp"

namespace flotilla::runtime {

void CompositeDriver::add(Driver& driver) {
  if (drivers_.emplace(driver.type(), &driver).second) order_.push_back(&driver);
}

std::vector<std::string> CompositeDriver::types() const {
  std::vector<std::string> out;
  for (const Driver* d : order_) out.push_back(d->type());
  return out;
}

Driver* CompositeDriver::by_type(const std::string& type) const {
  auto it = drivers_.find(type);
  return it == drivers_.end() ? nullptr : it->second;
}

Driver* CompositeDriver::owner_of(const Handle& handle) const {
  if (Driver* d = by_type(handle.type)) return d;
  auto it = owners_.find(handle.instance_id);
  if (it != owners_.end()) return it->second;
  return order_.empty() ? nullptr : order_.front();
}

Preparation CompositeDriver::prepare(const LaunchSpec& spec) {
  Driver* d = by_type(spec.type);
  if (d == nullptr) {
    return {Preparation::State::kFailed, "runtime '" + spec.type + "' is not available"};
  }
  return d->prepare(spec);
}

Expected<Handle> CompositeDriver::launch(const LaunchSpec& spec) {
  Driver* d = by_type(spec.type);
  if (d == nullptr) {
    return Error("Failed to launch instance '" + spec.instance_id + "': runtime '" + spec.type +
                 "' is not available on this node");
  }
  auto handle = d->launch(spec);
  if (!handle) return handle;
  handle->type = d->type();
  owners_[spec.instance_id] = d;
  return handle;
}

Observation CompositeDriver::observe(const Handle& handle) {
  Driver* d = owner_of(handle);
  if (d == nullptr) return Observation{RunState::kUnknown, 0, 0, "no driver"};
  return d->observe(handle);
}

Status CompositeDriver::terminate(const Handle& handle) {
  Driver* d = owner_of(handle);
  return d == nullptr ? Ok() : d->terminate(handle);
}

Status CompositeDriver::kill(const Handle& handle) {
  Driver* d = owner_of(handle);
  return d == nullptr ? Ok() : d->kill(handle);
}

Status CompositeDriver::cleanup(const std::string& instance_id) {
  auto it = owners_.find(instance_id);
  if (it != owners_.end()) {
    Status st = it->second->cleanup(instance_id);
    if (st) owners_.erase(it);
    return st;
  }
  for (Driver* d : order_) {
    if (Status st = d->cleanup(instance_id); !st) return st;
  }
  return Ok();
}

std::vector<Handle> CompositeDriver::recover() {
  std::vector<Handle> all;
  for (Driver* d : order_) {
    for (Handle& h : d->recover()) {
      h.type = d->type();
      owners_[h.instance_id] = d;
      all.push_back(std::move(h));
    }
  }
  return all;
}

Expected<int> CompositeDriver::exec(const Handle& handle, const std::vector<std::string>& argv,
                                    std::chrono::milliseconds timeout) {
  Driver* d = by_type(handle.type);
  if (d == nullptr) {
    return Error("Failed to exec in instance '" + handle.instance_id + "': unknown runtime '" +
                 handle.type + "'");
  }
  return d->exec(handle, argv, timeout);
}

std::string CompositeDriver::log_path(const std::string& instance_id, bool stderr_stream) const {
  auto it = owners_.find(instance_id);
  const Driver* d = it != owners_.end() ? it->second : (order_.empty() ? nullptr : order_.front());
  return d == nullptr ? std::string() : d->log_path(instance_id, stderr_stream);
}

}  // namespace flotilla::runtime
