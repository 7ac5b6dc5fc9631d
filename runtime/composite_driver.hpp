// CompositeDriver: one runtime::Driver over several, routing each call to the driver of the
// workload's type (LaunchSpec::type, Handle::type), as Mesos' ComposingContainerizer does.
//
// It remembers which driver owns each instance id (from launch() and recover()), so calls that
// carry only an id (cleanup) or a handle without a type reach the right driver; an id it has
// never seen is offered to every driver (each ignores what it does not know).
//
// Thread-safety: like every Driver, used by one thread. The drivers must outlive it.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "runtime/driver.hpp"

namespace flotilla::runtime {

class CompositeDriver final : public Driver {
 public:
  // Drivers by their type(); the first one added is the default for handles of unknown type.
  void add(Driver& driver);
  // The types offered, in the order added ("process", "container", "vm").
  std::vector<std::string> types() const;

  std::string type() const override { return "composite"; }
  Preparation prepare(const LaunchSpec& spec) override;
  Expected<Handle> launch(const LaunchSpec& spec) override;
  Observation observe(const Handle& handle) override;
  Status terminate(const Handle& handle) override;
  Status kill(const Handle& handle) override;
  Status cleanup(const std::string& instance_id) override;
  std::vector<Handle> recover() override;
  // Routed by handle.type only (set on every handle launch() and recover() return), so that it
  // reads nothing the loop thread writes.
  Expected<int> exec(const Handle& handle, const std::vector<std::string>& argv,
                     std::chrono::milliseconds timeout) override;
  std::string log_path(const std::string& instance_id, bool stderr_stream) const override;

 private:
  Driver* by_type(const std::string& type) const;
  Driver* owner_of(const Handle& handle) const;

  std::vector<Driver*> order_;
  std::map<std::string, Driver*> drivers_;  // by type
  std::map<std::string, Driver*> owners_;   // by instance id
};

}  // namespace flotilla::runtime
