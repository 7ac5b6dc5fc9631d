// kill -9 of an agent between persisting a desired state and acking it (the fail point
// agent.after_persist_before_ack, common/failpoint.hpp). docs/protocol.md: the restarted agent
// re-acks the revision it persisted; the hub must not be left believing the node is behind, and
// the node must run the workload exactly once.
#include <signal.h>

#include <gtest/gtest.h>

#include "test/integration/fleet.hpp"

namespace flotilla::testing {
namespace {

const std::vector<std::string> kNodes = {"n1", "n2"};  // n2 is the one killed
constexpr auto kConverge = 30s;
const AgentOptions kDiesBeforeAck{
    .env = {{"FLOTILLA_FAILPOINT", "agent.after_persist_before_ack"}}};

class AgentCrash : public ::testing::Test {
 protected:
  void SetUp() override {
    fleet_.start_hub();
    fleet_.start_agent("n1");
    fleet_.start_agent("n2", kDiesBeforeAck);
    ASSERT_TRUE(eventually(
        [&] { return fleet_.node_state("n1") == "Ready" && fleet_.node_state("n2") == "Ready"; },
        15s));
  }

  // Applies `version` of the sleeper; n2's agent persists it and dies by its own SIGKILL before
  // acking. Returns the revision the hub gave n2 for it.
  int64_t apply_and_die_before_ack(const std::string& version) {
    RunResult r = fleet_.apply_forced(sleeper_manifest("sleeper", version));
    EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
    std::optional<int> exit = fleet_.wait_agent_exit("n2", 15s);
    EXPECT_EQ(exit, std::optional<int>(128 + SIGKILL))
        << "n2's agent did not die at the fail point";
    EXPECT_FALSE(fleet_.agent_running("n2"));
    json n2 = fleet_.get("node", "n2");
    const int64_t revision = n2.value("revision", int64_t{-1});
    // Persisted, never acked: the window the fail point is for.
    EXPECT_EQ(fleet_.agent_revision("n2"), revision) << "n2 did not persist before dying";
    EXPECT_LT(n2.value("ackedRevision", int64_t{-1}), revision)
        << "the hub saw an ack n2 never sent: " << n2.dump();
    return revision;
  }

  // n2 comes back without the fail point: it re-acks, runs `version` exactly once, and the hub
  // neither issues a new revision nor resends as if n2 were behind.
  void restart_and_converge(const std::string& version, int64_t revision) {
    fleet_.start_agent("n2");
    EXPECT_EQ(fleet_.wait_converged({{"sleeper", version}}, kNodes, kConverge), "");
    json n2 = fleet_.get("node", "n2");
    EXPECT_EQ(n2.value("revision", int64_t{-1}), revision);
    EXPECT_EQ(n2.value("ackedRevision", int64_t{-1}), revision) << n2.dump();
    EXPECT_EQ(fleet_.agent_revision("n2"), revision);
  }

  Fleet fleet_;
};

TEST_F(AgentCrash, Kill9BetweenPersistAndAckOfANewWorkload) {
  int64_t revision = apply_and_die_before_ack("1");
  restart_and_converge("1", revision);
}

TEST_F(AgentCrash, Kill9BetweenPersistAndAckOfASpecChange) {
  // n2 first gets version 1 without dying, then runs with the fail point again.
  fleet_.kill9_agent("n2");
  fleet_.start_agent("n2");
  ASSERT_EQ(fleet_.apply(sleeper_manifest("sleeper", "1")).exit_code, 0);
  ASSERT_EQ(fleet_.wait_converged({{"sleeper", "1"}}, kNodes, kConverge), "");
  const pid_t old_pid = fleet_.workload_pids("n2", "sleeper").at(0);
  fleet_.stop_agent("n2");
  fleet_.start_agent("n2", kDiesBeforeAck);
  ASSERT_EQ(fleet_.wait_converged({{"sleeper", "1"}}, kNodes, kConverge), "");

  int64_t revision = apply_and_die_before_ack("2");
  // The agent died, its workload did not.
  EXPECT_TRUE(pid_alive(old_pid)) << "the instance died with its agent";
  restart_and_converge("2", revision);
  EXPECT_FALSE(pid_alive(old_pid)) << "the instance of the old spec still runs";
}

}  // namespace
}  // namespace flotilla::testing
