// agent::Reconciler: the level-triggered control loop that makes the node's instances match
// the desired workloads in the Store, through a runtime::Driver.
//
// Each tick observes every instance and converges: for each desired workload exactly one
// instance with the desired spec_hash; changed specs are replaced (old stopped first, once the
// new spec's image is on the node: Driver::prepare); an instance whose image is still being
// fetched waits in PENDING with the fetch's progress or failure as its status; instances
// of deleted workloads are stopped (SIGTERM, SIGKILL after the grace period) and removed;
// exited instances restart per their restart policy with exponential backoff; a failing
// liveness probe kills the instance (which then restarts per its policy) and the readiness probe
// sets `ready` in its status. Every state
// change is persisted (with its status record and event) before the next side effect, and a new
// instance's row exists in phase STARTING before the driver launches it, so recover() after a
// kill -9 adopts what runs instead of starting duplicates.
//
// Thread-safety: one thread (the agent's loop) uses a Reconciler, its Store and its Driver.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "agent/config.hpp"
#include "agent/prober.hpp"
#include "agent/store.hpp"
#include "common/clock.hpp"
#include "runtime/driver.hpp"

namespace flotilla::agent {

class Reconciler {
 public:
  // `prober` (optional, must outlive the Reconciler) runs the instances' probes.
  Reconciler(std::string node, ReconcilerConfig config, Store& store, runtime::Driver& driver,
             const Clock& clock, Prober* prober = nullptr);

  // Once at startup, before the first tick: loads instances from the store and reconciles
  // them with what the driver finds running (adopt known, kill unknown, mark lost as exited).
  Status recover();
  // One pass of the control loop. Failures are logged and retried on a later tick.
  void tick();

  size_t running_count() const;
  // Errors met so far (store writes, driver calls), for logs and tests.
  uint64_t error_count() const { return errors_; }

 private:
  struct Live {
    InstanceRecord rec;
    runtime::Handle handle;
    TimePoint deadline{};  // BACKOFF: restart at; TERMINATING: SIGKILL at
    // A state change the store could not record yet (retried every tick), as reason/message.
    std::optional<std::pair<std::string, std::string>> unsaved;
    bool liveness_failed = false;  // the exit being observed was our kill for a failed probe
  };

  bool reload_desired();
  void observe(Live& inst);
  void on_exit(Live& inst, const runtime::Observation& obs);
  void converge();
  void start_new(const v1::WorkloadSpec& spec);
  void prepare_and_launch(Live& inst, const v1::WorkloadSpec& spec);
  bool replacement_ready(Live& inst);
  void launch(Live& inst, const v1::WorkloadSpec& spec);
  void restart(Live& inst, const v1::WorkloadSpec& spec);
  void begin_stop(Live& inst, const std::string& why);
  void finish_stop(Live& inst);
  void adopt(Live& inst, const runtime::Handle& found);
  void reap_orphans();
  void probe();
  void on_verdict(Live& inst, const ProbeVerdict& verdict);
  bool save(Live& inst, const std::string& reason, const std::string& message);
  const v1::WorkloadSpec* desired_for(const InstanceRecord& rec) const;
  Live* find(const std::string& instance_id);
  Millis backoff_delay(int32_t attempts) const;
  Millis grace_of(const v1::WorkloadSpec& spec) const;
  bool runtime_available(const std::string& type) const;
  void fail(const Error& e);

  std::string node_;
  ReconcilerConfig config_;
  Store& store_;
  runtime::Driver& driver_;
  const Clock& clock_;
  Prober* prober_;
  std::map<std::string, v1::WorkloadSpec> desired_;
  uint64_t desired_version_ = ~uint64_t{0};
  std::map<std::string, Live> instances_;  // by instance id
  std::vector<runtime::Handle> orphans_;   // killed, awaiting cleanup
  uint64_t errors_ = 0;
};

}  // namespace flotilla::agent
