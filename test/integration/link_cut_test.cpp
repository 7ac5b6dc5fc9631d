// A node's link to the broker is cut (TcpProxy between its agent and mosquitto): stalled for
// longer than the MQTT keepalive, or reset. The broker declares the agent gone and publishes its
// last will, so the hub shows the node NotReady; the node keeps its workloads running; changes
// made meanwhile reach it once the link is back, and it ends Ready at the desired state.
#include <gtest/gtest.h>

#include "test/integration/fleet.hpp"
#include "test/support/tcp_proxy.hpp"

namespace flotilla::testing {
namespace {

const std::vector<std::string> kNodes = {"n1", "n2"};  // n2 talks through the proxy
// Far longer than any test: a NotReady within it can only come from the broker's last will.
constexpr auto kLongNodeTimeout = 120s;
// agent/sync_client.cpp: keepalive = max(2 s, 2 x heartbeat) = 2 s with the tests' 300 ms
// heartbeat; mosquitto drops a client silent for 1.5 keepalives and publishes its will.
constexpr auto kKeepalive = 2s;
constexpr auto kConverge = 30s;

class LinkCut : public ::testing::Test {
 protected:
  void SetUp() override {
    fleet_.start_hub();
    fleet_.start_agent("n1");
    fleet_.start_agent("n2", AgentOptions{.broker_port = proxy_.port()});
    ASSERT_TRUE(eventually(
        [&] { return fleet_.node_state("n1") == "Ready" && fleet_.node_state("n2") == "Ready"; },
        15s))
        << "nodes never became Ready";
    ASSERT_EQ(
        fleet_.apply(sleeper_manifest("keep", "1") + "---\n" + sleeper_manifest("gone")).exit_code,
        0);
    ASSERT_EQ(fleet_.wait_converged({{"keep", "1"}, {"gone", "1"}}, kNodes, kConverge), "");
    keep_pid_ = fleet_.workload_pids("n2", "keep").at(0);
    gone_pid_ = fleet_.workload_pids("n2", "gone").at(0);
  }

  // The newest NotReady event of n2, or null.
  json last_not_ready_event() {
    json events = fleet_.get("events");
    json found;
    if (!events.contains("items")) return found;
    for (const auto& e : events["items"])
      if (e.value("node", "") == "n2" && e.value("reason", "") == "NotReady") found = e;
    return found;
  }

  // While n2 is cut off: a new spec for `keep`, `gone` deleted. n1 follows at once; n2 cannot
  // hear of it and keeps running what it had.
  void change_while_cut() {
    ASSERT_EQ(fleet_.apply_forced(sleeper_manifest("keep", "2")).exit_code, 0);
    RunResult del = fleet_.flotctl({"delete", "workload", "gone", "--force"});
    ASSERT_EQ(del.exit_code, 0) << del.err;
    EXPECT_EQ(fleet_.wait_converged({{"keep", "2"}}, {"n1"}, kConverge), "");
    json n2 = fleet_.get("node", "n2");
    EXPECT_EQ(n2.value("state", ""), "NotReady");
    EXPECT_LT(n2.value("ackedRevision", 0), n2.value("revision", 0))
        << "the hub believes the cut-off node has the new revision: " << n2.dump();
    EXPECT_EQ(fleet_.workload_pids("n2", "keep"), std::vector<pid_t>{keep_pid_})
        << "n2's instance of keep changed while it was cut off";
    EXPECT_EQ(fleet_.workload_pids("n2", "gone"), std::vector<pid_t>{gone_pid_})
        << "n2's instance of gone changed while it was cut off";
  }

  // After the link is back: n2 catches up, Ready, new spec running, deleted one gone.
  void expect_caught_up() {
    auto start = std::chrono::steady_clock::now();
    EXPECT_EQ(fleet_.wait_converged({{"keep", "2"}}, kNodes, kConverge), "");
    std::cout << "link back -> n2 caught up: "
              << std::chrono::duration_cast<std::chrono::milliseconds>(
                     std::chrono::steady_clock::now() - start)
                     .count()
              << " ms\n";
    EXPECT_FALSE(pid_alive(keep_pid_)) << "the old instance of keep still runs on n2";
    EXPECT_FALSE(pid_alive(gone_pid_)) << "the deleted workload still runs on n2";
    EXPECT_TRUE(fleet_.shim_pids("n2", "gone").empty());
  }

  Fleet fleet_{kHeartbeat, kLongNodeTimeout};
  TcpProxy proxy_{fleet_.broker().port()};
  pid_t keep_pid_ = 0;
  pid_t gone_pid_ = 0;
};

TEST_F(LinkCut, StallLongerThanKeepaliveThenCatchUp) {
  auto cut = std::chrono::steady_clock::now();
  proxy_.stall();
  ASSERT_TRUE(eventually([&] { return fleet_.node_state("n2") == "NotReady"; }, 20s))
      << "n2 still " << fleet_.node_state("n2") << " with its link stalled";
  auto took = std::chrono::steady_clock::now() - cut;
  std::cout << "link stalled -> n2 NotReady: "
            << std::chrono::duration_cast<std::chrono::milliseconds>(took).count() << " ms\n";
  // Nothing but the keepalive running out can have told the broker: not before it did.
  EXPECT_GE(took, kKeepalive);
  json event = last_not_ready_event();
  EXPECT_NE(event.value("message", "").find("last will"), std::string::npos) << event.dump();
  EXPECT_EQ(fleet_.node_state("n1"), "Ready");
  EXPECT_TRUE(pid_alive(keep_pid_) && pid_alive(gone_pid_)) << "n2's workloads stopped";

  change_while_cut();
  ASSERT_EQ(proxy_.mode(), TcpProxy::Mode::kStall);
  proxy_.resume();
  expect_caught_up();
}

TEST_F(LinkCut, ResetConnectionsThenCatchUp) {
  const uint64_t accepted_before = proxy_.accepted();
  auto cut = std::chrono::steady_clock::now();
  proxy_.drop();
  // A reset connection is gone at once for the broker: the will goes out without waiting for
  // the keepalive.
  ASSERT_TRUE(eventually([&] { return fleet_.node_state("n2") == "NotReady"; }, 10s))
      << "n2 still " << fleet_.node_state("n2") << " with its connection reset";
  std::cout << "connection reset -> n2 NotReady: "
            << std::chrono::duration_cast<std::chrono::milliseconds>(
                   std::chrono::steady_clock::now() - cut)
                   .count()
            << " ms\n";
  json event = last_not_ready_event();
  EXPECT_NE(event.value("message", "").find("last will"), std::string::npos) << event.dump();
  // The agent keeps trying to reconnect; every attempt is reset.
  EXPECT_TRUE(eventually([&] { return proxy_.accepted() >= accepted_before + 2; }, 10s))
      << "the agent did not try to reconnect";
  EXPECT_EQ(proxy_.open_connections(), 0);

  change_while_cut();
  proxy_.resume();
  expect_caught_up();
}

}  // namespace
}  // namespace flotilla::testing
