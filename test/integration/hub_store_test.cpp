// The hub on either store backend: SQLite files in --data, or PostgreSQL (--store). Killed with
// -9 and restarted on the same store, it comes back with its nodes, workloads, instances and
// desired revisions from the store alone, and the agents converge with nothing re-created.
#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <memory>

#include "test/integration/fleet.hpp"
#ifdef FLOTILLA_TEST_PG
#include "test/support/postgres.hpp"
#endif

namespace flotilla::testing {
namespace {

const std::vector<std::string> kNodes = {"n1", "n2"};
constexpr int kCount = 3;

// GetParam(): "sqlite" or "postgres".
class HubStoreBackend : public ::testing::TestWithParam<std::string> {};

INSTANTIATE_TEST_SUITE_P(Backends, HubStoreBackend, ::testing::Values("sqlite", "postgres"),
                         [](const auto& p) { return p.param; });

// What the hub shows of the fleet, in the terms that must survive its restart.
struct FleetView {
  std::map<std::string, int64_t> revisions;                 // node -> desired revision
  std::map<std::string, std::string> instances;             // node/workload -> instance id
  std::map<std::string, std::vector<pid_t>> workload_pids;  // node/workload -> live pids
};

FleetView view(Fleet& fleet) {
  FleetView v;
  for (const auto& node : kNodes) {
    v.revisions[node] = fleet.get("node", node).value("revision", int64_t{-1});
  }
  for (int i = 0; i < kCount; ++i) {
    const std::string w = "w" + std::to_string(i);
    for (const auto& [node, inst] : fleet.instances(w)) {
      v.instances[node + "/" + w] = inst.value("instanceId", "");
    }
    for (const auto& node : kNodes) v.workload_pids[node + "/" + w] = fleet.workload_pids(node, w);
  }
  return v;
}

TEST_P(HubStoreBackend, Kill9AndRestartKeepTheFleetAndNothingIsRecreated) {
  std::vector<std::string> hub_args;
#ifdef FLOTILLA_TEST_PG
  std::unique_ptr<Postgres> pg;
#endif
  if (GetParam() == "postgres") {
#ifdef FLOTILLA_TEST_PG
    if (auto why = Postgres::unavailable_reason(); !why.empty()) GTEST_SKIP() << why;
    pg = std::make_unique<Postgres>();
    ASSERT_TRUE(pg->start().ok());
    ASSERT_TRUE(pg->create_database("hub").ok());
    // The URI form here; the unit tests use key=value pairs.
    hub_args = {"--store", "postgres://flotilla@127.0.0.1:" + std::to_string(pg->port()) + "/hub"};
#else
    GTEST_SKIP() << "built without PostgreSQL (libpq)";
#endif
  }
  Fleet fleet;
  fleet.start_hub({}, hub_args);
  for (const auto& n : kNodes) fleet.start_agent(n);
  ASSERT_TRUE(eventually([&] { return fleet.all_ready(kNodes); }, 15s));
  RunResult r = fleet.apply(many_sleepers("w", kCount));
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  ASSERT_EQ(fleet.wait_converged(many_versions("w", kCount), kNodes, 45s), "");
  const FleetView before = view(fleet);
  for (const auto& [key, pids] : before.workload_pids) ASSERT_EQ(pids.size(), 1u) << key;
  ASSERT_EQ(before.instances.size(), kNodes.size() * kCount);

  // The agents stop (their workloads keep running), so that what the restarted hub shows comes
  // from its store alone; then the hub dies.
  for (const auto& n : kNodes) fleet.stop_agent(n);
  fleet.kill9_hub();
  fleet.start_hub();
  const bool files = std::filesystem::exists(fleet.dir() / "hub/control.db");
  EXPECT_EQ(files, GetParam() == "sqlite") << "the stores are not where --store says";
  json workloads = fleet.get("workloads");
  ASSERT_TRUE(workloads.contains("items")) << workloads.dump();
  EXPECT_EQ(workloads["items"].size(), static_cast<size_t>(kCount));
  const FleetView restored = view(fleet);
  EXPECT_EQ(restored.revisions, before.revisions);
  EXPECT_EQ(restored.instances, before.instances);

  for (const auto& n : kNodes) fleet.start_agent(n);
  EXPECT_EQ(fleet.wait_converged(many_versions("w", kCount), kNodes, 45s), "");
  const FleetView after = view(fleet);
  EXPECT_EQ(after.revisions, before.revisions) << "the hub issued new desired state";
  EXPECT_EQ(after.instances, before.instances) << "instances were replaced";
  EXPECT_EQ(after.workload_pids, before.workload_pids) << "workload processes were restarted";
}

// A --store the hub cannot reach stops it at start with an error naming the server.
TEST(HubStoreFlag, UnreachableOrMalformedStoreFailsAtStart) {
  TempDir dir;
  const std::string port = std::to_string(free_port());
  RunResult down = run_command(
      {FLOTILLA_HUB_BIN, "--mqtt", "tcp://127.0.0.1:1", "--data", dir / "hub", "--listen",
       "127.0.0.1:0", "--store", "host=127.0.0.1 port=" + port + " dbname=x connect_timeout=2"},
      30s);
  EXPECT_NE(down.exit_code, 0);
  EXPECT_NE(down.err.find("PostgreSQL"), std::string::npos) << down.err;
  EXPECT_NE(down.err.find("127.0.0.1:" + port), std::string::npos) << down.err;
  RunResult bad = run_command({FLOTILLA_HUB_BIN, "--mqtt", "tcp://127.0.0.1:1", "--data",
                               dir / "hub", "--store", "mysql://db"},
                              30s);
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find("flag '--store' wants postgres://"), std::string::npos) << bad.err;
}

}  // namespace
}  // namespace flotilla::testing
