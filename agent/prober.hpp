// Prober: runs the liveness and readiness probes of running instances (Kubernetes' probe
// model) and tells the reconciler what changed: an instance became ready or unready, or failed
// its liveness probe failure_threshold times in a row and must be restarted.
//
// Checks block up to their timeout (an exec, an HTTP GET, a TCP connect), so they run through
// `Runner` (a worker thread in the agent, inline in tests); scheduling, counting and verdicts
// stay on the caller's thread. A check's result for an instance that was forgotten or restarted
// meanwhile is dropped.
//
// Thread-safety: watch(), forget() and poll() on one thread (the agent's loop); checks run
// wherever Runner puts them and only touch the ProbeChecker and a locked result queue.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "common/clock.hpp"
#include "runtime/driver.hpp"
#include "sync/flotilla.pb.h"

namespace flotilla::agent {

struct ProbeOutcome {
  bool ok = false;
  std::string message;  // why it failed: "HTTP 503", "connection refused", "exit code 1"
};

// Performs one check. Called on the Runner's threads, possibly several at once.
class ProbeChecker {
 public:
  virtual ~ProbeChecker() = default;
  virtual ProbeOutcome check(const v1::Probe& probe, const runtime::Handle& handle) = 0;
};

struct ProbeVerdict {
  enum class Kind { kReady, kNotReady, kLivenessFailed };
  std::string instance_id;
  Kind kind;
  std::string message;
};

class Prober {
 public:
  // Runs a check somewhere; false when it could not take it (it is tried again a period later).
  using Runner = std::function<bool(std::function<void()>)>;
  // `checker` must outlive the Prober and every check `run` still holds.
  Prober(ProbeChecker& checker, const Clock& clock, Runner run);

  // Keeps probing a running instance. Called every tick; a new handle (the instance restarted)
  // starts its probes afresh, after the initial delay.
  void watch(const std::string& instance_id, const runtime::Handle& handle,
             const v1::WorkloadSpec& spec);
  void forget(const std::string& instance_id);
  bool watching(const std::string& instance_id) const { return watched_.count(instance_id) > 0; }
  // Starts the checks that are due and returns what the finished ones decided.
  std::vector<ProbeVerdict> poll();

 private:
  struct Track {
    bool configured = false;
    v1::Probe probe;
    TimePoint due{};
    bool in_flight = false;
    uint32_t failures = 0;
    uint32_t successes = 0;
  };
  struct Watched {
    runtime::Handle handle;
    uint64_t generation = 0;
    Track liveness;
    Track readiness;
    bool ready = false;
  };
  struct Result {
    std::string instance_id;
    uint64_t generation;
    bool liveness;
    ProbeOutcome outcome;
  };
  struct Inbox {
    std::mutex mu;
    std::vector<Result> results;
  };

  void start(const std::string& id, Watched& w, Track& t, bool liveness);
  void drain(std::vector<ProbeVerdict>& out);
  void judge(Watched& w, Track& t, bool liveness, const ProbeOutcome& outcome,
             const std::string& id, std::vector<ProbeVerdict>& out);

  ProbeChecker& checker_;
  const Clock& clock_;
  Runner run_;
  std::map<std::string, Watched> watched_;
  uint64_t next_generation_ = 1;
  std::shared_ptr<Inbox> inbox_ = std::make_shared<Inbox>();
};

// Probe fields with the defaults filled in (period 10 s, timeout 1 s, thresholds 3 and 1).
v1::Probe with_probe_defaults(const v1::Probe& probe);
bool has_action(const v1::Probe& probe);

}  // namespace flotilla::agent
