// The device-twin benchmark (issue 7): desired update → virtual device latency through the REST
// API, hub, broker and virtual agents; then reported ingest by the hub; then a check of what the
// hub holds. See run_twin in scenarios.hpp.
#include <algorithm>
#include <atomic>
#include <iostream>
#include <memory>
#include <thread>
#include <tuple>

#include <nlohmann/json.hpp>

#include "bench/harness.hpp"
#include "bench/virtual_twins.hpp"

namespace flotilla::bench {
namespace {

constexpr const char* kTwinIn = "flotilla_hub_messages_handled_total{kind=\"twin\"}";
constexpr const char* kShardQueue = "flotilla_hub_shard_queue_messages";
constexpr const char* kIgnored[] = {
    "flotilla_hub_twin_reports_ignored_total{reason=\"stale\"}",
    "flotilla_hub_twin_reports_ignored_total{reason=\"unknown_device\"}",
    "flotilla_hub_twin_reports_ignored_total{reason=\"invalid\"}"};

// The virtual twins live on the loop thread: made and unhooked there.
class LoopTwins {
 public:
  LoopTwins(Harness& h, uint32_t devices) : h_(h) {
    twins_ =
        call_on_loop(h_.loop_, [&] { return std::make_unique<VirtualTwins>(h_.fleet_, devices); });
  }
  ~LoopTwins() {
    call_on_loop(h_.loop_, [this] {
      h_.fleet_.set_down_hooks("twin", {});
      twins_.reset();
    });
  }
  template <typename F>
  auto on_loop(F fn) {
    return call_on_loop(h_.loop_, [&] { return fn(*twins_); });
  }
  const TwinCounters& counters() const { return twins_->counters(); }

 private:
  Harness& h_;
  std::unique_ptr<VirtualTwins> twins_;
};

// Requests 0..count-1 from `parallel` threads, each with its own keep-alive connection; when
// each was sent and answered, and its reply (status 0: no reply).
struct Requests {
  std::vector<Clock::time_point> sent, answered;
  std::vector<HubProbe::Reply> replies;
  double seconds = 0;
  uint32_t failed = 0;  // no reply, or not 2xx
  std::string first_error;
};

template <typename Make>
Requests run_requests(const ScenarioOptions& o, uint32_t count, uint32_t parallel, Make make,
                      uint32_t gap_ms = 0) {
  Requests r;
  r.sent.resize(count);
  r.answered.resize(count);
  r.replies.resize(count);
  std::atomic<uint32_t> next{0};
  const Clock::time_point t0 = Clock::now();
  std::vector<std::thread> workers;
  for (uint32_t w = 0; w < std::max<uint32_t>(1, parallel); ++w) {
    workers.emplace_back([&] {
      HubProbe hub(o.hub_port, o.http_keep_alive);
      for (uint32_t i; (i = next++) < count;) {
        const auto [method, path, body] = make(i);
        r.sent[i] = Clock::now();
        auto reply = hub.send_json(method, path, body);
        r.answered[i] = Clock::now();
        if (reply) r.replies[i] = std::move(*reply);
        if (!reply) r.replies[i].body = reply.error().message();
        if (gap_ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(gap_ms));
      }
    });
  }
  for (auto& t : workers) t.join();
  r.seconds = seconds_since(t0);
  for (const auto& reply : r.replies) {
    if (reply.status >= 200 && reply.status < 300) continue;
    if (r.failed++ == 0) r.first_error = std::to_string(reply.status) + " " + reply.body;
  }
  return r;
}

std::string ms_summary(std::vector<double> ms) {
  std::sort(ms.begin(), ms.end());
  return fmt(percentile(ms, 50), 1) + " / " + fmt(percentile(ms, 99), 1) + " / " +
         fmt(percentile(ms, 100), 1) + " ms";
}

std::string requests_row(const Requests& r, uint32_t count) {
  std::vector<double> ms;
  for (uint32_t i = 0; i < count; ++i) ms.push_back(1000 * seconds_since(r.sent[i], r.answered[i]));
  return std::to_string(count) + " in " + fmt(r.seconds, 2) +
         " s = " + fmt(count / std::max(r.seconds, 1e-9), 0) +
         "/s; send → response p50 / p99 / max " + ms_summary(ms) + "; failed " +
         std::to_string(r.failed) +
         (r.failed ? " (first: " + r.first_error.substr(0, 120) + ")" : "");
}

// Waits until `done()` or the timeout; true when done.
template <typename Pred>
bool wait_until(const ScenarioOptions& o, Pred done, int period_ms = 20) {
  const Clock::time_point t0 = Clock::now();
  while (seconds_since(t0) < o.timeout_s) {
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(period_ms));
  }
  return done();
}

// Until the hub's shard queues stay empty and the simulator has no report in flight.
bool wait_quiet(Harness& h, LoopTwins& twins, const ScenarioOptions& o) {
  int quiet = 0;
  return wait_until(
      o,
      [&] {
        double queued = 0;
        if (auto text = h.hub_.get("/metrics")) {
          for (double v : HubProbe::metric_values(*text, kShardQueue)) queued += v;
        }
        const bool busy = twins.on_loop([](VirtualTwins& t) {
          for (uint32_t i = 0; i < t.devices(); ++i) {
            if (t.device(i).queued || t.device(i).inflight) return true;
          }
          return false;
        });
        quiet = queued == 0 && !busy ? quiet + 1 : 0;
        return quiet >= 5;
      },
      100);
}

// One pass of desired sets on devices [first, first + count) from `parallel` clients; each set
// must reach its device as desired version `version`. Rows for the table.
bool desired_pass(LoopTwins& twins, const ScenarioOptions& o, const std::string& what,
                  uint32_t first, uint32_t count, uint32_t parallel, uint64_t version,
                  uint32_t gap_ms, std::ostream& out) {
  const uint64_t entries0 = twins.counters().desired_entries;
  const uint64_t msgs0 = twins.counters().desired_msgs;
  Requests r = run_requests(
      o, count, parallel,
      [&](uint32_t i) {
        const std::string body = "{\"desired\":{\"setpoint\":" + std::to_string(first + i) +
                                 ",\"pass\":" + std::to_string(version) + "}}";
        return std::make_tuple(std::string("POST"),
                               "/api/v1/devices/" + device_name(first + i) + "/desired", body);
      },
      gap_ms);
  const bool all = wait_until(o, [&] {
    return twins.on_loop([&](VirtualTwins& t) {
      for (uint32_t i = first; i < first + count; ++i) {
        if (t.device(i).desired_version < version) return false;
      }
      return true;
    });
  });
  const Clock::time_point waited = Clock::now();
  auto got = twins.on_loop([&](VirtualTwins& t) {
    std::vector<VirtualTwins::Device> v;
    for (uint32_t i = first; i < first + count; ++i) v.push_back(t.device(i));
    return v;
  });
  std::vector<double> from_response, from_send;
  uint32_t early = 0, wrong_version = 0;
  Clock::time_point last = r.answered.empty() ? waited : r.answered.front();
  for (uint32_t i = 0; i < count; ++i) {
    auto body = nlohmann::json::parse(r.replies[i].body, nullptr, false);
    const uint64_t v = body.is_object() ? body.value("desiredVersion", uint64_t{0}) : 0;
    if (v != version) ++wrong_version;
    if (got[i].desired_version < version) continue;
    from_response.push_back(1000 * seconds_since(r.answered[i], got[i].desired_at));
    from_send.push_back(1000 * seconds_since(r.sent[i], got[i].desired_at));
    if (got[i].desired_at < r.answered[i]) ++early;
    last = std::max(last, got[i].desired_at);
  }
  const uint64_t entries = twins.counters().desired_entries - entries0;
  out << "| " << what << ": POST .../desired (" << parallel << " clients, "
      << (o.http_keep_alive ? "keep-alive" : "a connection per request") << ") | "
      << requests_row(r, count)
      << (wrong_version ? "; desiredVersion not " + std::to_string(version) + ": " +
                              std::to_string(wrong_version)
                        : "")
      << " |\n";
  out << "| " << what << ": devices that received desired version " << version << " | "
      << from_response.size() << " / " << count
      << (all ? "" : " (TIMEOUT after " + std::to_string(o.timeout_s) + " s)") << "; last "
      << fmt(seconds_since(r.sent.front(), last), 2) << " s after the first send |\n";
  out << "| " << what << ": HTTP response → virtual device has it, p50 / p99 / max | "
      << ms_summary(from_response) << " (" << early
      << " arrived before their HTTP response: the hub publishes before it answers) |\n";
  out << "| " << what << ": request sent → virtual device has it, p50 / p99 / max | "
      << ms_summary(from_send) << " |\n";
  out << "| " << what << ": TwinDesired received (device entries; per device) | "
      << twins.counters().desired_msgs - msgs0 << " (" << entries << "; "
      << fmt(static_cast<double>(entries) / count, 2) << ") |\n";
  return all && r.failed == 0 && wrong_version == 0;
}

// Compares the hub's view of `samples` devices spread over the fleet with the simulator's.
bool check_rows(Harness& h, LoopTwins& twins, const ScenarioOptions& o, std::ostream& out) {
  const uint32_t samples = std::min(o.twin_check, o.devices);
  uint32_t ok = 0;
  std::string first_bad;
  for (uint32_t k = 0; k < samples; ++k) {
    const uint32_t i = static_cast<uint32_t>(uint64_t{k} * o.devices / samples);
    const auto d = twins.on_loop([&](VirtualTwins& t) { return t.device(i); });
    auto body = h.hub_.get("/api/v1/devices/" + device_name(i));
    auto j = body ? nlohmann::json::parse(*body, nullptr, false) : nlohmann::json();
    const bool same =
        j.is_object() && j.value("reportedVersion", uint64_t{0}) == d.reported_version &&
        j.value("desiredVersion", uint64_t{0}) == d.desired_version &&
        j.value("observedDesired", uint64_t{0}) == d.observed_desired &&
        j["reported"].dump() ==
            nlohmann::json::parse(VirtualTwins::reported_doc(d.reported_version)).dump();
    if (same) {
      ++ok;
    } else if (first_bad.empty()) {
      first_bad = device_name(i) + ": sim reported v" + std::to_string(d.reported_version) +
                  " desired v" + std::to_string(d.desired_version) + ", hub " +
                  (body ? body->substr(0, 200) : body.error().message());
    }
  }
  out << "| hub holds the simulator's final twin (reported document and version, "
         "observedDesired, desired version), sampled | "
      << ok << " / " << samples << (first_bad.empty() ? "" : "; first mismatch: " + first_bad)
      << " |\n";
  return ok == samples;
}

}  // namespace

int run_twin(const ScenarioOptions& o, std::ostream& out) {
  Harness h(o);
  LoopTwins twins(h, o.devices);
  if (connect_and_report_ready(h, o, out) < 0) return 1;
  bool ok = true;
  out << "| devices (device i on node i mod nodes) | " << o.devices << " ("
      << fmt(static_cast<double>(o.devices) / o.fleet.nodes, 1) << " per node) |\n";

  // Devices, created through the REST API with no desired properties (desired version 0).
  Requests created = run_requests(o, o.devices, o.http_parallel, [&](uint32_t i) {
    return std::make_tuple(std::string("PUT"), "/api/v1/devices/" + device_name(i),
                           "{\"node\":\"" + h.fleet_.node_name(i % o.fleet.nodes) + "\"}");
  });
  out << "| PUT /api/v1/devices/NAME (create, " << o.http_parallel << " clients, "
      << (o.http_keep_alive ? "keep-alive" : "a connection per request") << ") | "
      << requests_row(created, o.devices) << " |\n";
  ok = created.failed == 0;
  const bool listed = wait_until(o, [&] {
    return twins.counters().desired_entries >= o.devices;  // the creation's TwinDesired
  });
  const bool quiet = wait_quiet(h, twins, o);
  out << "| every device's creation reached its node; hub and acks quiet | "
      << (listed ? "yes" : "NO") << "; " << (quiet ? "yes" : "NO") << " |\n";

  // Phase 1: desired update → device receives.
  const uint32_t sets = o.twin_sets == 0 ? o.devices : std::min(o.twin_sets, o.devices);
  ok = desired_pass(twins, o, "loaded", 0, sets, o.http_parallel, 1, 0, out) && ok;
  wait_quiet(h, twins, o);
  const uint32_t paced = std::min(o.twin_paced_sets, o.devices);
  if (paced > 0) {
    const std::string what =
        o.twin_paced_gap_ms > 0 ? "one client, " + std::to_string(o.twin_paced_gap_ms) + " ms apart"
                                : std::string("one client");
    ok = desired_pass(twins, o, what, 0, paced, 1, sets >= paced ? 2 : 1, o.twin_paced_gap_ms,
                      out) &&
         ok;
    wait_quiet(h, twins, o);
  }

  // Phase 2: reported ingest.
  const uint32_t per =
      twins.on_loop([&](VirtualTwins& t) { return t.records_per_message(o.twin_per_message); });
  const size_t payload =
      twins.on_loop([&](VirtualTwins& t) { return t.flood_payload_size(o.twin_per_message); });
  const uint64_t messages = (o.twin_records + per - 1) / per;
  double ignored0[3] = {};
  double base = 0;
  if (auto text = h.hub_.get("/metrics")) {
    base = HubProbe::metric(*text, kTwinIn);
    for (int k = 0; k < 3; ++k) ignored0[k] = HubProbe::metric(*text, kIgnored[k]);
  }
  const CpuSample cpu0 = sample_cpu(o);
  const Clock::time_point t0 = Clock::now();
  twins.on_loop([&](VirtualTwins& t) {
    t.start_flood(messages, o.twin_per_message, o.window);
    return 0;
  });
  double handled = 0, done_s = -1, acked_s = -1, ignored[3] = {};
  while (seconds_since(t0) < o.timeout_s) {
    if (auto text = h.hub_.get("/metrics")) {
      handled = HubProbe::metric(*text, kTwinIn) - base;
      for (int k = 0; k < 3; ++k) ignored[k] = HubProbe::metric(*text, kIgnored[k]) - ignored0[k];
    }
    if (acked_s < 0 && twins.counters().flood_acked >= messages) acked_s = seconds_since(t0);
    if (handled >= static_cast<double>(messages)) {
      done_s = seconds_since(t0);
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  const CpuSample cpu1 = sample_cpu(o);
  const double elapsed = done_s > 0 ? done_s : seconds_since(t0);
  const double records = twins.counters().flood_records;
  const double msgs_per_s = handled / elapsed;
  out << "| reported flood: TwinReported messages × devices each (payload bytes) | " << messages
      << " × " << per << " = " << fmt(records, 0) << " device reports (" << payload << ") |\n";
  out << "| broker acked all flood messages (sim side) after | "
      << (acked_s >= 0 ? fmt(acked_s, 2) + " s" : "not within timeout") << " |\n";
  out << "| hub handled (messages_handled_total{kind=twin}, counted after commit) | " << handled
      << " messages in " << fmt(elapsed, 2) << " s" << (done_s < 0 ? " (TIMEOUT)" : "")
      << "; reports ignored as stale / unknown / invalid: " << ignored[0] << " / " << ignored[1]
      << " / " << ignored[2] << " |\n";
  out << "| hub reported ingest | " << fmt(msgs_per_s, 0)
      << " messages/s = " << fmt(msgs_per_s * per, 0) << " device reports/s |\n";
  flood_cpu_rows(o, cpu0, cpu1, elapsed, out);
  if (o.raw_msgs_per_s > 0) {
    out << "| mosquitto raw (mosquitto_pub -l → mosquitto_sub, QoS 1, same payload size) | "
        << fmt(o.raw_msgs_per_s, 0) << " msgs/s (= " << fmt(o.raw_msgs_per_s * per, 0)
        << " device reports/s at " << per << " per message) |\n";
    out << "| ratio hub / raw broker | " << fmt(msgs_per_s / o.raw_msgs_per_s, 3) << " |\n";
  }
  ok = done_s > 0 && ok;
  wait_quiet(h, twins, o);
  ok = check_rows(h, twins, o, out) && ok;
  const TwinCounters& c = twins.counters();
  out << "| sim twins: TwinDesired msgs (entries, adopted, unknown) / TwinReported msgs (device "
         "records) | "
      << c.desired_msgs << " (" << c.desired_entries << ", " << c.adopted << ", " << c.unknown
      << ") / " << c.report_msgs << " (" << c.report_records << ") |\n";
  h.usage_rows(out);
  return ok ? 0 : 1;
}

}  // namespace flotilla::bench
