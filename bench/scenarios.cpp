#include "bench/scenarios.hpp"

#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cmath>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <memory>
#include <numeric>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "bench/harness.hpp"

namespace flotilla::bench {
namespace {

constexpr const char* kRunning = "flotilla_hub_instances{phase=\"Running\"}";
constexpr const char* kStatusIn = "flotilla_hub_messages_handled_total{kind=\"status\"}";
constexpr const char* kShardLag = "flotilla_hub_shard_lag_seconds";
constexpr const char* kShardQueue = "flotilla_hub_shard_queue_messages";
constexpr const char* kShardMessages = "flotilla_hub_shard_messages_total";

double wait_settled(Harness& h, const ScenarioOptions& o);  // below

}  // namespace

int run_ready(const ScenarioOptions& o, std::ostream& out) {
  Harness h(o);
  if (connect_and_report_ready(h, o, out) < 0) return 1;
  h.usage_rows(out);
  return 0;
}

int run_startup(const ScenarioOptions& o, std::ostream& out) {
  Harness h(o);
  if (connect_and_report_ready(h, o, out) < 0) return 1;
  // A fleet that has just connected is still sending its full statuses: apply to a settled one.
  out << "| hub settled (queues empty, under a quarter core) after Ready | "
      << fmt(wait_settled(h, o), 1) << " s |\n";
  const uint32_t n = o.fleet.nodes;
  const CpuSample cpu_sent = sample_cpu(o);
  const Clock::time_point sent = Clock::now();
  // The apply runs on its own thread so the hub is watched from the moment the request goes:
  // instances may be Running before the response (the hub sends each shard's desired state as
  // soon as that shard is written).
  Expected<std::string> applied = Error("not answered");
  std::atomic<bool> answered{false};
  Clock::time_point accepted{};
  CpuSample cpu_accepted;
  std::thread apply_thread([&] {
    applied = h.hub_.apply("startup", every_node_manifest("startup", "v1"));
    accepted = Clock::now();
    cpu_accepted = sample_cpu(o);
    answered = true;
  });
  // Hub-observed: the time of the first /metrics poll at which the hub's Running count
  // reached k is instance k's startup latency (resolution: the poll period plus scrape time).
  HubProbe poller(o.hub_port);
  std::vector<double> hub_times;  // from the request
  double last_report = 0;
  while (seconds_since(sent) < o.timeout_s) {
    auto running = poller.metric(kRunning);
    const double t = seconds_since(sent);
    if (running) {
      while (hub_times.size() < std::min<double>(*running, n)) hub_times.push_back(t);
      if (hub_times.size() >= n && answered) break;
    }
    if (answered && !applied) break;
    if (t - last_report >= 5) {
      last_report = t;
      std::cerr << "t=" << fmt(t, 1) << "s running=" << hub_times.size() << "/" << n << "\n";
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(o.poll_ms));
  }
  apply_thread.join();
  if (!applied) {
    out << "| apply | FAILED: " << applied.error().message() << " |\n";
    return 1;
  }
  const CpuSample cpu_done = sample_cpu(o);
  const Clock::time_point done = Clock::now();
  const double apply_s = seconds_since(sent, accepted);
  std::vector<double> sim_times;  // from the request
  for (auto t : h.fleet_.running_acked("startup")) sim_times.push_back(seconds_since(sent, t));
  std::sort(sim_times.begin(), sim_times.end());
  out << "| apply request (sent → response) | " << fmt(apply_s, 3) << " s |\n";
  out << "| instances Running at the hub | " << hub_times.size() << " / " << n << " |\n";
  if (hub_times.size() < n) {
    out << "| (latency of the missing instances) | > " << o.timeout_s << " s (timeout) |\n";
    while (hub_times.size() < n) hub_times.push_back(1e9);
  }
  std::vector<double> after_response;
  for (double t : hub_times) after_response.push_back(std::max(0.0, t - apply_s));
  auto p50_p99_max = [](const std::vector<double>& v) {
    return fmt(percentile(v, 50)) + " / " + fmt(percentile(v, 99)) + " / " +
           fmt(percentile(v, 100)) + " s";
  };
  out << "| hub-observed startup latency p50 / p99 / max (from the apply request; poll "
      << o.poll_ms << " ms) | " << p50_p99_max(hub_times) << " |\n";
  out << "| hub-observed startup latency p50 / p99 / max (from the apply response; Running "
         "before it counts 0) | "
      << p50_p99_max(after_response) << " |\n";
  out << "| sim-side: Running status PUBACK p50 / p99 / max from the apply request ("
      << sim_times.size() << " instances) | " << p50_p99_max(sim_times) << " |\n";
  flood_cpu_rows(o, cpu_sent, cpu_accepted, seconds_since(sent, accepted), out,
                 "the apply request");
  flood_cpu_rows(o, cpu_accepted, cpu_done, seconds_since(accepted, done), out,
                 "the apply response → all Running");
  h.usage_rows(out);
  return 0;
}

int run_console(const ScenarioOptions& o, std::ostream& out) {
  if (o.control_file.empty()) {
    std::cerr << "fleetsim: --mode console needs --control-file\n";
    return 2;
  }
  Harness h(o);
  if (connect_and_report_ready(h, o, out) < 0) return 1;
  const uint32_t n = o.fleet.nodes;
  const Clock::time_point t0 = Clock::now();
  if (auto st = h.hub_.apply("console", every_node_manifest("console", "v1")); !st) {
    out << "| apply | FAILED: " << st.error().message() << " |\n";
    return 1;
  }
  double running = 0;
  while (seconds_since(t0) < o.timeout_s && running < n) {
    std::this_thread::sleep_for(std::chrono::milliseconds(o.poll_ms));
    if (auto v = h.hub_.metric(kRunning)) running = *v;
  }
  out << "| everyNode workload applied → instances Running | " << fmt(running, 0) << " / " << n
      << " after " << fmt(seconds_since(t0), 1) << " s |\n";
  if (running < n) return 1;
  std::ofstream(o.control_file + ".ready") << "ready\n";
  std::cerr << "fleetsim: console: fleet ready, following " << o.control_file << "\n";
  size_t done = 0;  // control lines handled
  int offline = 0;
  for (bool stop = false; !stop;) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    std::stringstream text;
    text << std::ifstream(o.control_file).rdbuf();
    // Only whole lines: a read may see part of one the writer is appending.
    std::vector<std::string> lines;
    const std::string all = text.str();
    for (size_t at = 0, end; (end = all.find('\n', at)) != std::string::npos; at = end + 1) {
      lines.push_back(all.substr(at, end - at));
    }
    for (; done < lines.size(); ++done) {
      const std::string& line = lines[done];
      if (line == "stop") {
        stop = true;
        break;
      }
      if (line.rfind("offline ", 0) != 0) {
        std::cerr << "fleetsim: console: ignored control line '" << line << "'\n";
        continue;
      }
      const std::string name = line.substr(8);
      const bool sent = call_on_loop(h.loop_, [&] {
        auto i = h.fleet_.index_of(name);
        return i && h.fleet_.go_offline(*i);
      });
      std::cerr << "fleetsim: console: offline " << name << (sent ? "" : " FAILED") << "\n";
      offline += sent ? 1 : 0;
    }
  }
  out << "| nodes taken offline by the console benchmark | " << offline << " |\n";
  h.usage_rows(out);
  return 0;
}

int run_catchup(const ScenarioOptions& o, std::ostream& out) {
  Harness h(o);
  if (connect_and_report_ready(h, o, out) < 0) return 1;
  const std::string node = h.fleet_.node_name(0);
  auto hub_node = [&]() -> nlohmann::json {
    auto body = h.hub_.get("/api/v1/nodes/" + node);
    return body ? nlohmann::json::parse(*body, nullptr, false) : nlohmann::json();
  };
  auto wait_for = [&](auto pred) {
    const Clock::time_point t0 = Clock::now();
    while (seconds_since(t0) < o.timeout_s) {
      if (pred()) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return false;
  };
  for (uint32_t w = 0; w < o.workloads; ++w) {
    std::string name = "cu-" + std::to_string(w);
    if (auto st = h.hub_.apply(name, every_node_manifest(name, "start")); !st) {
      out << "| apply | FAILED: " << st.error().message() << " |\n";
      return 1;
    }
  }
  // Node 0 has acked everything, then drops off (its will marks it NotReady).
  bool synced = wait_for([&] {
    auto j = hub_node();
    if (!j.is_object()) return false;
    uint64_t rev = j.value("revision", 0ull);
    return rev > 0 &&
           call_on_loop(h.loop_, [&] { return h.fleet_.probe(0).acked_revision; }) == rev;
  });
  call_on_loop(h.loop_, [&] { h.fleet_.drop_connection_of(0); });
  bool offline = wait_for([&] { return hub_node().value("state", "") == "NotReady"; });
  const uint64_t start_rev = call_on_loop(h.loop_, [&] { return h.fleet_.probe(0).revision; });
  const Clock::time_point t_changes = Clock::now();
  for (uint32_t i = 0; i < o.revisions; ++i) {
    std::string name = "cu-" + std::to_string(i % o.workloads);
    if (auto st = h.hub_.apply(name, every_node_manifest(name, "m" + std::to_string(i))); !st) {
      out << "| apply " << i << " | FAILED: " << st.error().message() << " |\n";
      return 1;
    }
  }
  const double changes_s = seconds_since(t_changes);
  const uint64_t final_rev = hub_node().value("revision", 0ull);
  call_on_loop(h.loop_, [&] { h.fleet_.reset_probe(0); });
  const Clock::time_point t0 = Clock::now();
  call_on_loop(h.loop_, [&] { h.fleet_.reconnect_connection_of(0); });
  bool caught_up = wait_for([&] {
    return call_on_loop(h.loop_, [&] { return h.fleet_.probe(0).acked_revision; }) >= final_rev;
  });
  auto p = call_on_loop(h.loop_, [&] { return h.fleet_.probe(0); });
  out << "| node synced before going offline / hub saw it NotReady | " << (synced ? "yes" : "NO")
      << " / " << (offline ? "yes" : "NO") << " |\n";
  out << "| changes applied while offline | " << o.revisions << " applies over " << o.workloads
      << " workloads in " << fmt(changes_s, 1) << " s; node revision " << start_rev << " → "
      << final_rev << " |\n";
  out << "| DesiredState received after reconnect | " << p.desired_msgs << " msgs, "
      << p.desired_bytes << " bytes |\n";
  out << "| final desired state encoded as a snapshot | " << p.final_snapshot.size()
      << " bytes |\n";
  out << "| bytes received / final snapshot | "
      << fmt(static_cast<double>(p.desired_bytes) / std::max<size_t>(1, p.final_snapshot.size()), 2)
      << " (target ≤ 2) |\n";
  out << "| reconnect → broker acked our Ack of the final revision | "
      << (caught_up ? fmt(seconds_since(t0, p.acked_at), 3) + " s"
                    : "NOT REACHED within " + std::to_string(o.timeout_s) + " s")
      << " (target ≤ 1 s) |\n";
  h.usage_rows(out);
  return caught_up ? 0 : 1;
}

int run_ingest(const ScenarioOptions& o, std::ostream& out) {
  Harness h(o);
  if (connect_and_report_ready(h, o, out) < 0) return 1;
  std::this_thread::sleep_for(std::chrono::seconds(1));  // let hellos' follow-ups settle
  // Counters of the hub's ingest bursts (one store commit each) and of merged status batches.
  const char* burst_series[] = {"flotilla_hub_ingest_batches_total",
                                "flotilla_hub_ingest_batched_messages_total",
                                "flotilla_hub_status_batches_coalesced_total"};
  auto bursts = [&] {
    std::array<double, 3> v{};
    if (auto text = h.hub_.get("/metrics")) {
      for (size_t i = 0; i < v.size(); ++i) v[i] = HubProbe::metric(*text, burst_series[i]);
    }
    return v;
  };
  // Every hub instance's /metrics (one unless --extra-hubs): the shards are split among them.
  std::vector<std::unique_ptr<HubProbe>> extra;
  for (int port : o.extra_hub_ports) extra.push_back(std::make_unique<HubProbe>(port));
  auto metrics_texts = [&] {
    std::vector<std::string> texts;
    if (auto text = h.hub_.get("/metrics")) texts.push_back(std::move(*text));
    for (auto& probe : extra) {
      if (auto text = probe->get("/metrics")) texts.push_back(std::move(*text));
    }
    return texts;
  };
  auto status_in = [&](const std::vector<std::string>& texts) {
    double sum = 0;
    for (const auto& text : texts) sum += HubProbe::metric(text, kStatusIn);
    return sum;
  };
  const auto bursts0 = bursts();
  const double base = status_in(metrics_texts());
  const size_t payload =
      call_on_loop(h.loop_, [&] { return h.fleet_.blast_payload_size(o.records); });
  const CpuSample cpu0 = sample_cpu(o);
  const Clock::time_point t0 = Clock::now();
  call_on_loop(h.loop_, [&] { h.fleet_.start_blast(o.batches, o.records, o.window, o.instances); });
  double done_s = -1, acked_s = -1, processed = 0, peak_lag = 0, peak_queue = 0;
  std::vector<double> per_shard;
  while (seconds_since(t0) < o.timeout_s) {
    const auto texts = metrics_texts();
    processed = status_in(texts) - base;
    if (!texts.empty()) {
      const std::string& text = texts.front();  // the first hub's shards
      for (double v : HubProbe::metric_values(text, kShardLag)) peak_lag = std::max(peak_lag, v);
      for (double v : HubProbe::metric_values(text, kShardQueue)) {
        peak_queue = std::max(peak_queue, v);
      }
      per_shard = HubProbe::metric_values(text, kShardMessages);
    }
    if (acked_s < 0 && h.fleet_.counters().blast_acked >= o.batches) acked_s = seconds_since(t0);
    if (processed >= static_cast<double>(o.batches)) {
      done_s = seconds_since(t0);
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  const CpuSample cpu1 = sample_cpu(o);
  const double elapsed = done_s > 0 ? done_s : seconds_since(t0);
  const double msgs_per_s = processed / elapsed;
  out << "| batches × records (payload bytes per batch) | " << o.batches << " × " << o.records
      << " (" << payload << ") |\n";
  out << "| broker acked all batches (sim side) after | "
      << (acked_s >= 0 ? fmt(acked_s, 2) + " s" : "not within timeout") << " |\n";
  out << "| hub processed (messages_handled_total{kind=status}, counted after commit) | "
      << processed << " batches in " << fmt(elapsed, 2) << " s" << (done_s < 0 ? " (TIMEOUT)" : "")
      << " |\n";
  out << "| hub ingest | " << fmt(msgs_per_s, 0)
      << " batches/s = " << fmt(msgs_per_s * o.records, 0) << " records/s |\n";
  flood_cpu_rows(o, cpu0, cpu1, elapsed, out);
  out << "| hub shards / ingest threads | " << o.fleet.shards << " |\n";
  if (!extra.empty()) {
    out << "| hub instances (shards split by leases; CPU above summed, the rows below are the "
           "first instance's) | "
        << 1 + extra.size() << " |\n";
  }
  const auto bursts1 = bursts();
  const double commits = bursts1[0] - bursts0[0], batched = bursts1[1] - bursts0[1];
  out << "| ingest bursts (one commit each) / messages per burst / status batches merged away | "
      << fmt(commits, 0) << " / " << fmt(commits > 0 ? batched / commits : 0, 1) << " / "
      << fmt(bursts1[2] - bursts0[2], 0) << " |\n";
  out << "| peak shard lag / queue (max over shards of flotilla_hub_shard_lag_seconds / "
         "_queue_messages, polled every 50 ms) | "
      << fmt(peak_lag, 3) << " s / " << fmt(peak_queue, 0) << " msgs |\n";
  if (!per_shard.empty()) {
    const double total = std::accumulate(per_shard.begin(), per_shard.end(), 0.0);
    const double busiest = *std::max_element(per_shard.begin(), per_shard.end());
    out << "| busiest shard's share of messages (flotilla_hub_shard_messages_total) | "
        << fmt(total > 0 ? 100 * busiest / total : 0, 0)
        << "% (even: " << fmt(100.0 / static_cast<double>(per_shard.size()), 0) << "%) |\n";
  }
  if (o.raw_msgs_per_s > 0) {
    out << "| mosquitto raw (mosquitto_pub -l → mosquitto_sub, QoS 1, same size) | "
        << fmt(o.raw_msgs_per_s, 0) << " msgs/s |\n";
    out << "| ratio hub / raw broker | " << fmt(msgs_per_s / o.raw_msgs_per_s, 3)
        << " (target ≥ 0.5) |\n";
  }
  h.usage_rows(out);
  return done_s > 0 ? 0 : 1;
}

namespace {

// One pass over every node, `limit` per page; appends each page's latency (ms). Items seen, or
// an error.
Expected<uint64_t> list_pass(HubProbe& hub, int limit, std::vector<double>& page_ms,
                             uint64_t& bytes) {
  std::string token;
  uint64_t items = 0;
  do {
    std::string path = "/api/v1/nodes?limit=" + std::to_string(limit);
    if (!token.empty()) path += "&continue=" + token;
    const Clock::time_point t0 = Clock::now();
    auto body = hub.get(path);
    page_ms.push_back(1000 * seconds_since(t0));
    if (!body) return body.error();
    bytes += body->size();
    auto j = nlohmann::json::parse(*body, nullptr, false);
    if (!j.is_object() || !j["items"].is_array()) return Error("Failed to parse '" + path + "'");
    items += j["items"].size();
    token = j.value("continue", "");
  } while (!token.empty());
  return items;
}

// Rows for every page size: per-page latency percentiles over all passes, and one pass's time.
bool list_rows(Harness& h, const ScenarioOptions& o, const std::string& what, std::ostream& out) {
  bool ok = true;
  for (int limit : o.list_limits) {
    std::vector<double> page_ms;
    std::vector<double> pass_s;
    uint64_t bytes = 0, items = 0;
    std::string error, p99_by_pass;
    for (uint32_t pass = 0; pass < o.list_passes && error.empty(); ++pass) {
      const Clock::time_point t0 = Clock::now();
      const size_t first = page_ms.size();
      auto seen = list_pass(h.hub_, limit, page_ms, bytes);
      pass_s.push_back(seconds_since(t0));
      if (!seen) error = seen.error().message();
      if (seen) items = *seen;
      std::vector<double> this_pass(page_ms.begin() + static_cast<ptrdiff_t>(first), page_ms.end());
      std::sort(this_pass.begin(), this_pass.end());
      p99_by_pass += (p99_by_pass.empty() ? "" : " / ") + fmt(percentile(this_pass, 99), 1);
    }
    std::sort(page_ms.begin(), page_ms.end());
    const auto slow = page_ms.end() - std::upper_bound(page_ms.begin(), page_ms.end(), 50.0);
    std::sort(pass_s.begin(), pass_s.end());
    if (!error.empty() || items != o.fleet.nodes) ok = false;
    out << "| GET /api/v1/nodes?limit=" << limit << ", " << what << ": per page p50 / p99 / max ("
        << page_ms.size() << " pages, " << o.list_passes << " passes) | "
        << fmt(percentile(page_ms, 50), 1) << " / " << fmt(percentile(page_ms, 99), 1) << " / "
        << fmt(percentile(page_ms, 100), 1) << " ms (goal p99 ≤ 50 ms) |\n";
    out << "| ↳ p99 of each pass; pages over 50 ms | " << p99_by_pass << " ms; " << slow << " of "
        << page_ms.size() << " |\n";
    out << "| ↳ one pass over all nodes (median; items per pass; bytes per page) | "
        << fmt(percentile(pass_s, 50), 2) << " s; " << items << " of " << o.fleet.nodes << "; "
        << (page_ms.empty() ? 0 : bytes / page_ms.size())
        << (error.empty() ? "" : "; FAILED: " + error) << " |\n";
  }
  return ok;
}

// Waits (up to the timeout) until the hub has caught up: its shard queues are empty and it used
// less than a quarter of a core over the last second (heartbeats alone cost less). Seconds.
double wait_settled(Harness& h, const ScenarioOptions& o) {
  const Clock::time_point t0 = Clock::now();
  double cpu = read_proc_usage(o.hub_pid).cpu_seconds;
  while (seconds_since(t0) < o.timeout_s) {
    std::this_thread::sleep_for(std::chrono::seconds(1));
    const double now = read_proc_usage(o.hub_pid).cpu_seconds;
    const double used = now - cpu;
    cpu = now;
    double queued = 0;
    if (auto text = h.hub_.get("/metrics")) {
      for (double v : HubProbe::metric_values(*text, kShardQueue)) queued += v;
    }
    if (queued == 0 && used < 0.25) break;
  }
  return seconds_since(t0);
}

// One timed GET: "0.123 s, 4567 bytes".
std::string timed_get(Harness& h, const std::string& path) {
  const Clock::time_point t0 = Clock::now();
  auto body = h.hub_.get(path);
  const double s = seconds_since(t0);
  if (!body) return "FAILED after " + fmt(s, 3) + " s: " + body.error().message();
  return fmt(s, 3) + " s, " + std::to_string(body->size()) + " bytes";
}

}  // namespace

int run_list(const ScenarioOptions& o, std::ostream& out) {
  Harness h(o);
  if (connect_and_report_ready(h, o, out) < 0) return 1;
  out << "| hub settled after all Ready (shard queues empty, CPU < 25% of a core) | "
      << fmt(wait_settled(h, o), 1) << " s |\n";
  bool ok = list_rows(h, o, "no workloads", out);
  out << "| GET /api/v1/workloads, no workloads | " << timed_get(h, "/api/v1/workloads") << " |\n";
  out << "| GET /metrics, no workloads | " << timed_get(h, "/metrics") << " |\n";
  if (o.list_apply) {
    const Clock::time_point t0 = Clock::now();
    if (auto st = h.hub_.apply("listed", every_node_manifest("listed", "v1")); !st) {
      out << "| apply | FAILED: " << st.error().message() << " |\n";
      return 1;
    }
    double running = 0;
    while (seconds_since(t0) < o.timeout_s && running < o.fleet.nodes) {
      std::this_thread::sleep_for(std::chrono::milliseconds(o.poll_ms));
      if (auto v = h.hub_.metric(kRunning)) running = *v;
    }
    out << "| everyNode workload applied → instances Running | " << fmt(running, 0) << " / "
        << o.fleet.nodes << " after " << fmt(seconds_since(t0), 1) << " s |\n";
    out << "| hub settled after all Running | " << fmt(wait_settled(h, o), 1) << " s |\n";
    ok = list_rows(h, o, "1 instance per node", out) && ok;
    out << "| GET /api/v1/workloads, 1 everyNode workload | " << timed_get(h, "/api/v1/workloads")
        << " |\n";
    out << "| GET /metrics, 1 everyNode workload | " << timed_get(h, "/metrics") << " |\n";
  }
  h.usage_rows(out);
  return ok ? 0 : 1;
}

}  // namespace flotilla::bench
