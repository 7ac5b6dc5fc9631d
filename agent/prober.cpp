#include "agent/prober.hpp"

#include "common/log.hpp"

namespace flotilla::agent {

v1::Probe with_probe_defaults(const v1::Probe& probe) {
  v1::Probe p = probe;
  if (p.period_ms() <= 0) p.set_period_ms(10000);
  if (p.timeout_ms() <= 0) p.set_timeout_ms(1000);
  if (p.failure_threshold() == 0) p.set_failure_threshold(3);
  if (p.success_threshold() == 0) p.set_success_threshold(1);
  return p;
}

bool has_action(const v1::Probe& probe) {
  return probe.exec_size() > 0 || probe.http_port() > 0 || probe.tcp_port() > 0;
}

Prober::Prober(ProbeChecker& checker, const Clock& clock, Runner run)
    : checker_(checker), clock_(clock), run_(std::move(run)) {}

void Prober::watch(const std::string& id, const runtime::Handle& handle,
                   const v1::WorkloadSpec& spec) {
  auto it = watched_.find(id);
  if (it != watched_.end() && it->second.handle.pid == handle.pid &&
      it->second.handle.start_ticks == handle.start_ticks) {
    // Same run of the instance: take probe changes (they never replace the instance).
    for (auto [track, probe] : {std::pair{&it->second.liveness, &spec.liveness()},
                                std::pair{&it->second.readiness, &spec.readiness()}}) {
      track->configured = has_action(*probe);
      if (track->configured) track->probe = with_probe_defaults(*probe);
    }
    return;
  }
  Watched w;
  w.handle = handle;
  w.generation = next_generation_++;
  TimePoint now = clock_.now();
  for (auto [track, probe] :
       {std::pair{&w.liveness, &spec.liveness()}, std::pair{&w.readiness, &spec.readiness()}}) {
    track->configured = has_action(*probe);
    if (!track->configured) continue;
    track->probe = with_probe_defaults(*probe);
    track->due = now + Millis(track->probe.initial_delay_ms());
  }
  watched_[id] = std::move(w);
}

void Prober::forget(const std::string& id) { watched_.erase(id); }

void Prober::start(const std::string& id, Watched& w, Track& t, bool liveness) {
  t.in_flight = true;
  t.due = clock_.now() + Millis(t.probe.period_ms());
  bool taken = run_([&checker = checker_, inbox = inbox_, probe = t.probe, handle = w.handle, id,
                     generation = w.generation, liveness] {
    ProbeOutcome outcome = checker.check(probe, handle);
    std::lock_guard<std::mutex> lock(inbox->mu);
    inbox->results.push_back(Result{id, generation, liveness, std::move(outcome)});
  });
  if (!taken) {
    t.in_flight = false;
    log::get("agent")->warn("probe check not run: workers busy instance={}", id);
  }
}

void Prober::judge(Watched& w, Track& t, bool liveness, const ProbeOutcome& outcome,
                   const std::string& id, std::vector<ProbeVerdict>& out) {
  if (outcome.ok) {
    t.failures = 0;
    ++t.successes;
    if (!liveness && !w.ready && t.successes >= t.probe.success_threshold()) {
      w.ready = true;
      out.push_back({id, ProbeVerdict::Kind::kReady, "readiness probe succeeded"});
    }
    return;
  }
  t.successes = 0;
  ++t.failures;
  if (t.failures < t.probe.failure_threshold()) return;
  std::string why = (liveness ? "liveness" : "readiness") + std::string(" probe failed ") +
                    std::to_string(t.failures) + " times: " + outcome.message;
  if (liveness) {
    t.failures = 0;
    out.push_back({id, ProbeVerdict::Kind::kLivenessFailed, why});
  } else if (w.ready || t.failures == t.probe.failure_threshold()) {
    // Unready is said once: when a ready instance turns, or a new one first reaches the
    // threshold (so its status tells why it is not ready yet).
    w.ready = false;
    out.push_back({id, ProbeVerdict::Kind::kNotReady, why});
  }
}

void Prober::drain(std::vector<ProbeVerdict>& out) {
  std::vector<Result> results;
  {
    std::lock_guard<std::mutex> lock(inbox_->mu);
    results.swap(inbox_->results);
  }
  for (const Result& r : results) {
    auto it = watched_.find(r.instance_id);
    if (it == watched_.end() || it->second.generation != r.generation) continue;
    Watched& w = it->second;
    Track& t = r.liveness ? w.liveness : w.readiness;
    t.in_flight = false;
    if (t.configured) judge(w, t, r.liveness, r.outcome, r.instance_id, out);
  }
}

std::vector<ProbeVerdict> Prober::poll() {
  std::vector<ProbeVerdict> out;
  drain(out);
  TimePoint now = clock_.now();
  for (auto& [id, w] : watched_) {
    if (w.liveness.configured && !w.liveness.in_flight && now >= w.liveness.due) {
      start(id, w, w.liveness, true);
    }
    if (w.readiness.configured && !w.readiness.in_flight && now >= w.readiness.due) {
      start(id, w, w.readiness, false);
    }
  }
  drain(out);  // checks that ran inline (or were quick) are judged in this same poll
  return out;
}

}  // namespace flotilla::agent
