// The broker side of scale (README, "Scaling out the broker"): agents at a site connect to a
// site broker bridged to the core broker the hub uses, with the shipped bridge configuration
// (deploy/mosquitto/bridge.conf, its address pointed at the fleet's broker). Nodes behind the
// bridge and nodes on the core broker run the same workloads; after a hub kill -9 the retained
// hub/online announcement crosses the bridge; after the site broker restarts (its bridge and
// every site agent's connection cut), the site's nodes take the next change.
#include <gtest/gtest.h>

#include <regex>

#include "test/integration/fleet.hpp"

namespace flotilla::testing {
namespace {

// The shipped bridge section with its address pointed at 127.0.0.1:core_port.
std::string shipped_bridge(int core_port) {
  std::string conf = slurp(std::string(FLOTILLA_SOURCE_DIR) + "/deploy/mosquitto/bridge.conf");
  EXPECT_NE(conf.find("address core.example.net:8883"), std::string::npos) << conf;
  return std::regex_replace(conf, std::regex("address core.example.net:8883"),
                            "address 127.0.0.1:" + std::to_string(core_port));
}

TEST(BrokerBridge, NodesBehindABridgedSiteBrokerRunWhatTheHubSaysAcrossRestarts) {
  if (find_executable("mosquitto").empty()) GTEST_SKIP() << "mosquitto is not installed";
  Fleet fleet;
  const std::string site_dir = fleet.dir() / "site-broker";
  ASSERT_EQ(::mkdir(site_dir.c_str(), 0700), 0);
  Mosquitto site(site_dir, free_port(), shipped_bridge(fleet.broker().port()));
  ASSERT_TRUE(site.start()) << site.log();
  fleet.start_hub();
  fleet.start_agent("core-1");
  fleet.start_agent("site-1", AgentOptions{.broker_port = site.port()});
  fleet.start_agent("site-2", AgentOptions{.broker_port = site.port()});
  const std::vector<std::string> nodes = {"core-1", "site-1", "site-2"};
  ASSERT_TRUE(eventually([&] { return fleet.all_ready(nodes); }, 20s))
      << site.log() << fleet.dump_logs();

  ASSERT_EQ(fleet.apply(sleeper_manifest("web", "1")).exit_code, 0);
  ASSERT_EQ(fleet.wait_converged({{"web", "1"}}, nodes, 30s), "") << site.log();
  const auto site_pids = fleet.workload_pids("site-1", "web");
  ASSERT_EQ(site_pids.size(), 1u);

  // The hub crashes and comes back: its announcement reaches the site through the bridge, the
  // site's agents resync, and its next change runs everywhere, with nothing restarted in between.
  fleet.kill9_hub();
  fleet.start_hub();
  ASSERT_TRUE(eventually([&] { return fleet.all_ready(nodes); }, 20s)) << fleet.dump_logs();
  EXPECT_EQ(fleet.workload_pids("site-1", "web"), site_pids);
  ASSERT_EQ(fleet.apply_forced(sleeper_manifest("web", "2")).exit_code, 0);
  EXPECT_EQ(fleet.wait_converged({{"web", "2"}}, nodes, 30s), "") << site.log();

  // The site broker restarts: the bridge and the site agents reconnect, and the next change
  // reaches them as well.
  ASSERT_TRUE(site.restart()) << site.log();
  ASSERT_EQ(fleet.apply_forced(sleeper_manifest("web", "3")).exit_code, 0);
  EXPECT_EQ(fleet.wait_converged({{"web", "3"}}, nodes, 40s), "")
      << site.log() << fleet.dump_logs();
  EXPECT_TRUE(fleet.all_ready(nodes));
}

}  // namespace
}  // namespace flotilla::testing
