// flotilla-watch-bench: watch fan-out. An in-process hub (the real Hub: store files, sync server
// with its ingest thread, WatchLog, REST API on loopback) over the in-memory FakeBroker, N fake
// agents, and W watchers on GET /api/v1/nodes?watch=true in a child process (so the parent's CPU
// time is the hub's, plus the fake agents' few publishes). It makes K node status changes, each
// an instance status whose message names the change, and reports how long each took from the
// agent's publish to its event at every watcher (p50/p99/max over W x K deliveries) and the
// hub's CPU time (user+sys of the parent, from the first change until every watcher had every
// change). The hub coalesces: when a node's later change is recorded before an earlier one was,
// watchers get one event with the later state, and the earlier change counts as delivered with
// it ("coalesced" in the table).
//
//   flotilla-watch-bench [--watchers 1,100] [--changes 1000] [--nodes 100] [--rate 500]
//
// --rate: changes per second, evenly paced; 0 sends them as fast as the agents can publish.
// One run per watcher count, each on a fresh hub. Prints a Markdown table; exits 1 if any
// watcher missed a change.
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <httplib.h>

#include <nlohmann/json.hpp>

#include "cloud-hub/hub.hpp"
#include "common/flags.hpp"
#include "common/log.hpp"
#include "sync/codec.hpp"
#include "sync/fake_transport.hpp"
#include "sync/topics.hpp"

namespace {

using flotilla::Flags;
using json = nlohmann::json;
namespace hub = flotilla::hub;
namespace pb = flotilla::v1;
namespace sync = flotilla::sync;

int64_t now_ns() {
  // steady_clock is CLOCK_MONOTONIC: one timeline for the parent and the child.
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

double cpu_seconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

bool write_all(int fd, const void* data, size_t n) {
  const char* p = static_cast<const char*>(data);
  while (n > 0) {
    ssize_t w = ::write(fd, p, n);
    if (w <= 0) return false;
    p += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}

bool read_all(int fd, void* data, size_t n) {
  char* p = static_cast<char*>(data);
  while (n > 0) {
    ssize_t r = ::read(fd, p, n);
    if (r <= 0) return false;
    p += r;
    n -= static_cast<size_t>(r);
  }
  return true;
}

struct Plan {
  int watchers = 0;
  int changes = 0;
  int nodes = 0;
  int rate = 0;
};

// What the parent tells a child: where to watch, and from which version.
struct Start {
  int port = 0;
  char version[32] = {};
};

// ---- the child: W watchers, each recording when it first saw each change ----

class Watcher {
 public:
  Watcher(int changes, int nodes, int64_t deadline_ns)
      : seen_at_(static_cast<size_t>(changes), -1),
        nodes_(nodes),
        next_(static_cast<size_t>(nodes)),
        deadline_ns_(deadline_ns) {
    for (int k = 0; k < nodes; ++k) next_[k] = k;
  }

  void run(int port, const std::string& path) {
    httplib::Client c("127.0.0.1", port);
    c.set_read_timeout(std::chrono::seconds(60));
    c.Get(
        path,
        [this](const httplib::Response&) {
          std::lock_guard lock(mu_);
          connected_ = true;
          cv_.notify_all();
          return true;
        },
        [this](const char* data, size_t n) { return feed(data, n); });
    std::lock_guard lock(mu_);
    connected_ = true;  // or failed: nobody waits for it any longer
    cv_.notify_all();
  }
  void wait_connected() {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return connected_; });
  }
  const std::vector<int64_t>& seen_at() const { return seen_at_; }
  int64_t coalesced() const { return coalesced_; }

 private:
  // Takes every complete event; false (end the watch) once every change was seen, or at the
  // first data after the deadline (keepalives come every 10 s).
  bool feed(const char* data, size_t n) {
    const int64_t now = now_ns();
    pending_.append(data, n);
    for (size_t end; (end = pending_.find("\n\n")) != std::string::npos;) {
      static const std::string kMarker = "\"change-";
      for (size_t at = pending_.find(kMarker); at != std::string::npos && at < end;
           at = pending_.find(kMarker, at + 1)) {
        const long m = std::strtol(pending_.c_str() + at + kMarker.size(), nullptr, 10);
        if (m < 0 || static_cast<size_t>(m) >= seen_at_.size()) continue;
        // Change m of node m % nodes is here, and with it the node's earlier changes.
        long& next = next_[m % nodes_];
        for (; next <= m; next += nodes_) {
          if (seen_at_[next] >= 0) continue;
          seen_at_[next] = now;
          ++seen_;
          if (next != m) ++coalesced_;
        }
      }
      pending_.erase(0, end + 2);
    }
    return seen_ < seen_at_.size() && now < deadline_ns_;
  }

  std::vector<int64_t> seen_at_;
  const long nodes_;
  std::vector<long> next_;  // per node: its first change not seen yet
  int64_t deadline_ns_;
  size_t seen_ = 0;
  int64_t coalesced_ = 0;
  std::string pending_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool connected_ = false;
};

[[noreturn]] void child_main(const Plan& plan, int from_parent, int to_parent) {
  Start start;
  if (!read_all(from_parent, &start, sizeof(start))) _exit(2);
  const std::string path = std::string("/api/v1/nodes?watch=true&resourceVersion=") + start.version;
  // Time to make every change at the planned rate, and a minute more for them to arrive.
  const double sending_s = plan.rate > 0 ? static_cast<double>(plan.changes) / plan.rate : 0;
  const int64_t deadline = now_ns() + static_cast<int64_t>((sending_s + 60) * 1e9);
  std::vector<std::unique_ptr<Watcher>> watchers;
  std::vector<std::thread> threads;
  for (int w = 0; w < plan.watchers; ++w) {
    watchers.push_back(std::make_unique<Watcher>(plan.changes, plan.nodes, deadline));
    Watcher* watcher = watchers.back().get();
    threads.emplace_back([watcher, &start, &path] { watcher->run(start.port, path); });
    // One at a time: httplib listens with a backlog of 5.
    watcher->wait_connected();
  }
  char ready = 'R';
  if (!write_all(to_parent, &ready, 1)) _exit(2);
  for (auto& t : threads) t.join();
  for (const auto& w : watchers) {
    const int64_t coalesced = w->coalesced();
    if (!write_all(to_parent, w->seen_at().data(), w->seen_at().size() * sizeof(int64_t)) ||
        !write_all(to_parent, &coalesced, sizeof(coalesced))) {
      _exit(2);
    }
  }
  _exit(0);
}

// ---- the parent: the hub and the fake agents ----

struct Child {
  pid_t pid = -1;
  int to_child = -1;
  int from_child = -1;
};

Child fork_watchers(const Plan& plan) {
  int down[2], up[2];
  if (pipe(down) != 0 || pipe(up) != 0) {
    std::perror("pipe");
    std::exit(1);
  }
  pid_t pid = fork();
  if (pid < 0) {
    std::perror("fork");
    std::exit(1);
  }
  if (pid == 0) {
    close(down[1]);
    close(up[0]);
    child_main(plan, down[0], up[1]);
  }
  close(down[0]);
  close(up[1]);
  return {pid, down[1], up[0]};
}

class Agent {
 public:
  Agent(sync::FakeBroker& broker, std::string node)
      : node_(std::move(node)), transport_(broker.connect("agent-" + node_)) {
    transport_->set_handlers([](sync::Message) {}, [](bool) {});
    (void)transport_->start();
  }
  void hello() {
    pb::Hello h;
    h.set_node(node_);
    h.set_protocol_version(sync::kProtocolVersion);
    h.set_agent_version("bench");
    h.mutable_capacity()->set_cpu_millis(4000);
    h.set_arch("amd64");
    h.add_runtimes("process");
    h.set_boot_id("boot-1");
    send("hello", h);
  }
  void status(const std::string& message) {
    pb::StatusBatch b;
    b.set_node(node_);
    pb::InstanceStatus* s = b.add_instances();
    s->set_workload("bench");
    s->set_instance_id("bench-1");
    s->set_phase(pb::PHASE_RUNNING);
    s->set_seq(++seq_);
    s->set_message(message);
    send("status", b);
  }

 private:
  template <typename M>
  void send(const std::string& kind, const M& m) {
    (void)transport_->publish(sync::up_topic(node_, sync::kDefaultShards, kind), sync::encode(m),
                              1);
  }
  std::string node_;
  std::unique_ptr<sync::FakeTransport> transport_;
  uint64_t seq_ = 0;
};

struct Outcome {
  Plan plan;
  size_t delivered = 0;
  size_t expected = 0;
  int64_t coalesced = 0;
  double p50_ms = 0, p99_ms = 0, max_ms = 0;
  double cpu_s = 0;
  double seconds = 0;  // first change to last delivery
};

double percentile(std::vector<int64_t>& v, double p) {
  if (v.empty()) return 0;
  size_t i = std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size())));
  std::nth_element(v.begin(), v.begin() + static_cast<long>(i), v.end());
  return static_cast<double>(v[i]) / 1e6;
}

Outcome run(const Plan& plan, Child child) {
  char dir_template[] = "/tmp/flotilla-watch-bench-XXXXXX";
  const char* dir = mkdtemp(dir_template);
  if (dir == nullptr) {
    std::perror("mkdtemp");
    std::exit(1);
  }
  sync::FakeBroker broker;
  hub::HubOptions o;
  o.listen_port = 0;
  o.data_dir = std::string(dir) + "/hub";
  o.node_timeout = std::chrono::hours(1);  // no agent heartbeats here
  auto created = hub::Hub::create(o, broker.connect("flotilla-hub"));
  if (!created) {
    std::cerr << "flotilla-watch-bench: " << created.error().message() << "\n";
    std::exit(1);
  }
  std::unique_ptr<hub::Hub> h = std::move(*created);
  if (auto st = h->start(); !st) {
    std::cerr << "flotilla-watch-bench: " << st.error().message() << "\n";
    std::exit(1);
  }
  httplib::Client api("127.0.0.1", h->port());
  std::vector<std::unique_ptr<Agent>> agents;
  for (int i = 0; i < plan.nodes; ++i) {
    agents.push_back(std::make_unique<Agent>(broker, "node-" + std::to_string(i)));
    agents.back()->hello();
  }
  const std::string workload =
      "apiVersion: flotilla/v1\nkind: Workload\nmetadata: {name: bench}\nspec:\n  type: process\n"
      "  placement: {everyNode: true}\n  process: {command: [/bin/sleep, '1000']}\n";
  auto applied = api.Put("/api/v1/workloads", workload, "application/yaml");
  if (!applied || applied->status != 200) {
    std::cerr << "flotilla-watch-bench: apply failed\n";
    std::exit(1);
  }
  // Every node registered and placed (the ingest thread is asynchronous), then the version.
  std::string version;
  for (;;) {
    auto r = api.Get("/api/v1/workloads/bench");
    json w = r ? json::parse(r->body, nullptr, false) : json();
    if (w.is_object() && w["status"]["nodes"].size() == static_cast<size_t>(plan.nodes)) {
      version = json::parse(api.Get("/api/v1/nodes")->body)["resourceVersion"];
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  Start start;
  start.port = h->port();
  std::snprintf(start.version, sizeof(start.version), "%s", version.c_str());
  char ready = 0;
  if (!write_all(child.to_child, &start, sizeof(start)) || !read_all(child.from_child, &ready, 1)) {
    std::cerr << "flotilla-watch-bench: the watchers did not start\n";
    std::exit(1);
  }

  std::vector<int64_t> sent(static_cast<size_t>(plan.changes));
  const double cpu0 = cpu_seconds();
  const int64_t t0 = now_ns();
  for (int i = 0; i < plan.changes; ++i) {
    if (plan.rate > 0) {
      const int64_t due = t0 + static_cast<int64_t>(1e9 * i / plan.rate);
      std::this_thread::sleep_for(std::chrono::nanoseconds(std::max<int64_t>(0, due - now_ns())));
    }
    sent[i] = now_ns();
    agents[i % plan.nodes]->status("change-" + std::to_string(i));
  }
  Outcome out;
  out.plan = plan;
  std::vector<int64_t> latencies;
  int64_t last = 0;
  for (int w = 0; w < plan.watchers; ++w) {
    std::vector<int64_t> seen(static_cast<size_t>(plan.changes));
    int64_t coalesced = 0;
    if (!read_all(child.from_child, seen.data(), seen.size() * sizeof(int64_t)) ||
        !read_all(child.from_child, &coalesced, sizeof(coalesced))) {
      std::cerr << "flotilla-watch-bench: lost the watchers' results\n";
      std::exit(1);
    }
    out.coalesced += coalesced;
    for (int i = 0; i < plan.changes; ++i) {
      if (seen[i] < 0) continue;
      latencies.push_back(seen[i] - sent[i]);
      last = std::max(last, seen[i]);
    }
  }
  out.cpu_s = cpu_seconds() - cpu0;
  out.seconds = static_cast<double>(last - t0) / 1e9;
  out.expected = static_cast<size_t>(plan.watchers) * static_cast<size_t>(plan.changes);
  out.delivered = latencies.size();
  out.max_ms =
      latencies.empty()
          ? 0
          : static_cast<double>(*std::max_element(latencies.begin(), latencies.end())) / 1e6;
  out.p50_ms = percentile(latencies, 0.50);
  out.p99_ms = percentile(latencies, 0.99);
  int status = 0;
  waitpid(child.pid, &status, 0);
  h->stop();
  std::filesystem::remove_all(dir);
  return out;
}

std::vector<int> parse_counts(const std::string& text) {
  std::vector<int> out;
  std::stringstream ss(text);
  for (std::string item; std::getline(ss, item, ',');) {
    char* end = nullptr;
    long v = std::strtol(item.c_str(), &end, 10);
    if (item.empty() || *end != '\0' || v < 1 || v > 256) return {};
    out.push_back(static_cast<int>(v));
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  Flags flags("flotilla-watch-bench",
              "Times watch fan-out: change to delivery at every watcher, and the hub's CPU.");
  flags.add("watchers", "watcher counts to run, comma-separated (1-256 each: the hub's limit)",
            "1,100");
  flags.add("changes", "node status changes per run", "1000");
  flags.add("nodes", "fake agents the changes go round", "100");
  flags.add("rate", "changes per second (0: as fast as possible)", "500");
  auto usage_error = [&](const std::string& message) {
    std::cerr << "flotilla-watch-bench: " << message << "\n\n" << flags.usage();
    return 2;
  };
  if (auto st = flags.parse(argc, argv); !st) return usage_error(st.error().message());
  if (flags.help_requested()) {
    std::cout << flags.usage();
    return 0;
  }
  auto changes = flags.get_int("changes", 1, 1'000'000);
  auto nodes = flags.get_int("nodes", 1, 100'000);
  auto rate = flags.get_int("rate", 0, 1'000'000);
  if (!changes) return usage_error(changes.error().message());
  if (!nodes) return usage_error(nodes.error().message());
  if (!rate) return usage_error(rate.error().message());
  const std::vector<int> counts = parse_counts(flags.get("watchers"));
  if (counts.empty()) return usage_error("--watchers: want counts such as 1,100");
  (void)flotilla::log::init("warn");

  // Fork every watcher process first, while this process has no threads yet.
  std::vector<Plan> plans;
  std::vector<Child> children;
  for (int w : counts) {
    plans.push_back(
        {w, static_cast<int>(*changes), static_cast<int>(*nodes), static_cast<int>(*rate)});
    children.push_back(fork_watchers(plans.back()));
  }
  std::cout << "| watchers | changes | rate/s | delivered | coalesced | p50 ms | p99 ms | max ms |"
               " hub CPU s | CPU per change ms | wall s |\n"
               "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n";
  bool all = true;
  for (size_t i = 0; i < plans.size(); ++i) {
    Outcome o = run(plans[i], children[i]);
    all = all && o.delivered == o.expected;
    std::printf("| %d | %d | %s | %zu/%zu | %.1f%% | %.2f | %.2f | %.2f | %.2f | %.3f | %.2f |\n",
                o.plan.watchers, o.plan.changes,
                o.plan.rate > 0 ? std::to_string(o.plan.rate).c_str() : "max", o.delivered,
                o.expected, 100.0 * static_cast<double>(o.coalesced) / o.expected, o.p50_ms,
                o.p99_ms, o.max_ms, o.cpu_s, 1e3 * o.cpu_s / o.plan.changes, o.seconds);
    std::fflush(stdout);
  }
  return all ? 0 : 1;
}
