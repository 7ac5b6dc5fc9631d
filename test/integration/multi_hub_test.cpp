// Several hub instances on one PostgreSQL database (docs/multi-hub.md): three real hubs split the
// 16 shards by leases; one is killed with -9 while a change is on its way, and the others take its
// shards within two lease periods with no node NotReady and nothing lost; it comes back and takes
// a fair share again without disturbing a workload. A watch on any instance follows the changes
// the others make and ingest.
#include <gtest/gtest.h>

#include <set>
#include <thread>

#include "sync/topics.hpp"
#include "test/integration/fleet.hpp"
#include "test/support/postgres.hpp"

namespace flotilla::testing {
namespace {

constexpr auto kLease = 2000ms;

// A hub instance besides the fleet's own (which is "hub-a" here).
struct ExtraHub {
  int port = 0;
  std::unique_ptr<ChildProcess> process;
};

// The flags of an instance `id` over the database `store`.
std::vector<std::string> instance_args(const std::string& store, const std::string& id) {
  return {
      "--store", store, "--instance-id", id, "--lease-period-ms", std::to_string(kLease.count())};
}

// Starts (or restarts, on its port) the instance `id` beside the fleet's own hub.
void start_instance(Fleet& fleet, const std::string& store, const std::string& id, ExtraHub& hub) {
  if (hub.port == 0) hub.port = free_port();
  hub.process = std::make_unique<ChildProcess>();
  std::vector<std::string> argv = fleet.hub_command(hub.port, id);
  auto more = instance_args(store, id);
  argv.insert(argv.end(), more.begin(), more.end());
  hub.process->start(argv, fleet.dir() / (id + ".log"));
  ASSERT_TRUE(wait_for_port(hub.port, 10s)) << hub.process->log();
}

// How many shards the hub on `port` owns; -1 when it does not answer.
int shards_owned(int port) {
  auto owned = owned_shards(port);
  return owned ? static_cast<int>(owned->size()) : -1;
}

// GET of `path` from the hub on `port`, as JSON (null when it does not answer).
json get_from(int port, const std::string& path) {
  RunResult r = run_command({"/usr/bin/curl", "-sf", "--max-time", "5",
                             "http://127.0.0.1:" + std::to_string(port) + path},
                            10s);
  if (r.exit_code != 0) return nullptr;
  return json::parse(r.out, nullptr, /*allow_exceptions=*/false);
}

// Node names whose shards are all different (the first `count` shards reached).
std::vector<std::string> nodes_on_distinct_shards(size_t count) {
  std::vector<std::string> nodes;
  std::set<uint32_t> shards;
  for (int i = 0; nodes.size() < count; ++i) {
    std::string node = "n" + std::to_string(i);
    if (shards.insert(sync::shard_of(node, sync::kDefaultShards)).second) nodes.push_back(node);
  }
  return nodes;
}

// A PostgreSQL database and the fleet's hub on it as instance "hub-a".
class MultiHub : public ::testing::Test {
 protected:
  void SetUp() override {
    if (auto why = Postgres::unavailable_reason(); !why.empty()) GTEST_SKIP() << why;
    ASSERT_TRUE(pg_.start().ok());
    ASSERT_TRUE(pg_.create_database("hub").ok());
    store_ = "postgres://flotilla@127.0.0.1:" + std::to_string(pg_.port()) + "/hub";
    fleet_.start_hub({}, instance_args(store_, "hub-a"));
  }

  Postgres pg_;  // outlives the fleet's hubs
  Fleet fleet_;
  std::string store_;
};

TEST_F(MultiHub, ThreeHubsShareTheShardsAndAKilledOnesMoveWithinTwoLeasePeriodsLosingNothing) {
  Fleet& fleet = fleet_;
  const std::string& store = store_;
  auto start_extra = [&](const std::string& id, ExtraHub& hub) {
    start_instance(fleet, store, id, hub);
  };
  ExtraHub b, c;
  start_extra("hub-b", b);
  start_extra("hub-c", c);
  const int a_port = fleet.http_port();
  auto split = [&] {
    return std::vector<int>{shards_owned(a_port), shards_owned(b.port), shards_owned(c.port)};
  };
  auto fair = [](const std::vector<int>& owned) {
    int sum = 0;
    for (int n : owned) {
      if (n != 5 && n != 6) return false;
      sum += n;
    }
    return sum == 16;
  };
  std::vector<int> owned;
  ASSERT_TRUE(eventually([&] { return fair(owned = split()); }, 15s))
      << owned[0] << "/" << owned[1] << "/" << owned[2] << "\n"
      << fleet.dump_logs();

  // 12 nodes on 12 shards: whichever 5 or 6 shards hub-b holds, some of them have nodes.
  const std::vector<std::string> nodes = nodes_on_distinct_shards(12);
  for (const auto& n : nodes) fleet.start_agent(n);
  ASSERT_TRUE(eventually([&] { return fleet.all_ready(nodes); }, 30s)) << fleet.dump_logs();
  RunResult r = fleet.apply(many_sleepers("w", 2));
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  ASSERT_EQ(fleet.wait_converged(many_versions("w", 2), nodes, 60s), "") << fleet.dump_logs();

  // Every node state hub-a shows, polled: none may turn NotReady at any point below.
  std::set<std::string> went_not_ready;
  auto check_ready = [&] {
    json list = fleet.get("nodes");
    for (const auto& n : list.value("items", json::array())) {
      if (n.value("state", "") != "Ready") went_not_ready.insert(n.value("name", ""));
    }
  };

  // hub-b dies with -9; a change to every workload goes out through hub-a at once, while
  // nobody owns hub-b's shards yet.
  const auto killed = std::chrono::steady_clock::now();
  b.process->kill9();
  r = fleet.apply_forced(many_sleepers("w", 2, "2"));
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  std::chrono::steady_clock::duration takeover{};
  while (std::chrono::steady_clock::now() - killed < 4 * kLease) {
    check_ready();
    if (takeover == takeover.zero() && shards_owned(a_port) + shards_owned(c.port) == 16) {
      takeover = std::chrono::steady_clock::now() - killed;
    }
  }
  ASSERT_NE(takeover, takeover.zero()) << "hub-b's shards were not taken over\n"
                                       << fleet.dump_logs();
  std::printf("[ measure ] hub-b's shards owned by hub-a and hub-c %lld ms after its kill -9\n",
              static_cast<long long>(
                  std::chrono::duration_cast<std::chrono::milliseconds>(takeover).count()));
  EXPECT_LE(takeover, 2 * kLease);
  // Desired change and the status of the new instances, of every node, hub-b's included.
  EXPECT_EQ(fleet.wait_converged(many_versions("w", 2, "2"), nodes, 60s), "") << fleet.dump_logs();
  check_ready();
  EXPECT_TRUE(went_not_ready.empty()) << *went_not_ready.begin() << " went NotReady";

  // hub-b comes back (a new process, the same name) and gets a fair share from the others'
  // graceful releases; no workload is restarted and no node turns NotReady meanwhile.
  std::map<std::string, std::vector<pid_t>> pids;
  for (const auto& n : nodes) {
    for (const std::string w : {"w0", "w1"}) pids[n + "/" + w] = fleet.workload_pids(n, w);
  }
  const auto restarted = std::chrono::steady_clock::now();
  start_extra("hub-b", b);
  ASSERT_TRUE(eventually(
      [&] {
        check_ready();
        return fair(owned = split());
      },
      15s))
      << owned[0] << "/" << owned[1] << "/" << owned[2] << "\n"
      << fleet.dump_logs();
  std::printf("[ measure ] hub-b back: shares %d/%d/%d %lld ms after its start\n", owned[0],
              owned[1], owned[2],
              static_cast<long long>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                         std::chrono::steady_clock::now() - restarted)
                                         .count()));
  EXPECT_EQ(fleet.stays_converged(many_versions("w", 2, "2"), nodes, 3s), "");
  check_ready();
  EXPECT_TRUE(went_not_ready.empty()) << *went_not_ready.begin() << " went NotReady";
  for (const auto& [key, before] : pids) {
    const auto slash = key.find('/');
    EXPECT_EQ(fleet.workload_pids(key.substr(0, slash), key.substr(slash + 1)), before) << key;
  }
}

// Any instance serves the whole API, watches included: watches on hub-b see a workload applied
// through hub-a, and the nodes of hub-a's shards turning NotReady as hub-a ingests their
// agents' goodbyes (the change feed, docs/multi-hub.md). When the database restarts, the feed
// cannot know what it missed, and hub-b's watchers are told to list again (410).
TEST_F(MultiHub, AWatchOnOneInstanceFollowsWhatTheOtherAppliesAndIngests) {
  Postgres& pg = pg_;
  Fleet& fleet = fleet_;
  const std::string& store = store_;
  ExtraHub b;
  ASSERT_NO_FATAL_FAILURE(start_instance(fleet, store, "hub-b", b));
  ASSERT_TRUE(eventually(
      [&] { return shards_owned(fleet.http_port()) == 8 && shards_owned(b.port) == 8; }, 15s))
      << fleet.dump_logs();
  // 9 nodes on 9 shards: hub-b owns 8 shards, so hub-a ingests at least one of them.
  const std::vector<std::string> nodes = nodes_on_distinct_shards(9);
  for (const auto& n : nodes) fleet.start_agent(n);
  ASSERT_TRUE(eventually([&] { return fleet.all_ready(nodes); }, 30s)) << fleet.dump_logs();

  // Watches on hub-b from the versions of its lists: nothing after them is missed.
  auto watch = [&](const std::string& kind, const std::string& query) {
    json list = get_from(b.port, "/api/v1/" + kind);
    EXPECT_TRUE(list.contains("resourceVersion")) << list.dump();
    auto curl = std::make_unique<ChildProcess>();
    curl->start({"/usr/bin/curl", "-sN", "--max-time", "120",
                 "http://127.0.0.1:" + std::to_string(b.port) + "/api/v1/" + kind +
                     "?watch=true&resourceVersion=" + list.value("resourceVersion", "0") + query},
                fleet.dir() / ("watch-" + kind + ".log"));
    return curl;
  };
  auto workloads = watch("workloads", "");
  auto not_ready = watch("nodes", "&state=NotReady");
  auto has = [](const std::unique_ptr<ChildProcess>& w, const std::string& text) {
    return w->log().find(text) != std::string::npos;
  };

  // Through hub-a, a workload no node matches: no status of any node changes its view, so
  // hub-b hears of it only from hub-a.
  RunResult r = fleet.apply(sleeper_manifest(
      "nowhere", "1", "replicas: 1\n  selector:\n    matchLabels: {zone: nowhere}"));
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_TRUE(eventually([&] { return has(workloads, "\"name\":\"nowhere\""); }, 15s))
      << "hub-b's workload watch:\n"
      << workloads->log();

  for (const auto& n : nodes) fleet.stop_agent(n);  // each says goodbye to its shard's owner
  std::string missing;
  EXPECT_TRUE(eventually(
      [&] {
        missing.clear();
        for (const auto& n : nodes) {
          if (!has(not_ready, "\"name\":\"" + n + "\"")) missing += " " + n;
        }
        return missing.empty();
      },
      30s))
      << "hub-b's NotReady watch lacks" << missing << ":\n"
      << not_ready->log() << fleet.dump_logs();

  pg.stop();
  std::this_thread::sleep_for(500ms);
  ASSERT_TRUE(pg.start().ok());
  EXPECT_TRUE(eventually([&] { return has(workloads, "\"code\":410"); }, 20s))
      << "hub-b's workload watch was not told to list again:\n"
      << workloads->log();
}

}  // namespace
}  // namespace flotilla::testing
