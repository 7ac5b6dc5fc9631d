// The broker restarts in the middle of a sync. It keeps nothing (persistence is off), so every
// desired state, ack and status batch in flight at that moment is lost with it, and so are the
// hub's session and its retained announcement. The protocol's catch-up must still bring every
// node to its desired state with the hub reporting what really runs: no status lost, no
// instance duplicated.
#include <gtest/gtest.h>

#include <thread>

#include "test/integration/fleet.hpp"

namespace flotilla::testing {
namespace {

const std::vector<std::string> kNodes = {"n1", "n2", "n3"};
constexpr int kWorkloads = 20;
constexpr auto kConverge = 45s;

class BrokerRestart : public ::testing::Test {
 protected:
  void SetUp() override {
    fleet_.start_hub();
    for (const auto& n : kNodes) fleet_.start_agent(n);
    ASSERT_TRUE(eventually([&] { return fleet_.all_ready(kNodes); }, 15s))
        << "nodes never became Ready";
  }

  // Milliseconds since `start`, for the log.
  static int64_t since(std::chrono::steady_clock::time_point start) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                                 start)
        .count();
  }

  Fleet fleet_;
};

TEST_F(BrokerRestart, CleanRestartDuringApplyConverges) {
  // Each round applies a new spec of all 20 workloads (on 3 nodes: 60 instances replaced) and
  // restarts the broker a little later each time: before the hub published, while the desired
  // states travel, while agents stop and start instances and report.
  int version = 0;
  for (int delay_ms : {0, 20, 100, 400}) {
    const std::string v = std::to_string(++version);
    const std::string path = fleet_.manifest_file(many_sleepers("w", kWorkloads, v), "v" + v);
    ChildProcess apply;
    apply.start({FLOTCTL_BIN, "--hub", fleet_.hub_url(), "apply", "-f", path, "--force"},
                fleet_.dir() / ("apply-" + v + ".log"));
    std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms));
    auto start = std::chrono::steady_clock::now();
    ASSERT_TRUE(fleet_.broker().restart()) << fleet_.broker().log();
    ASSERT_EQ(apply.wait_exit(30s), std::optional<int>(0)) << apply.log();
    EXPECT_EQ(fleet_.wait_converged(many_versions("w", kWorkloads, v), kNodes, kConverge), "")
        << "broker restarted " << delay_ms << " ms after the apply started";
    std::cout << "broker restarted " << delay_ms
              << " ms into the apply -> converged: " << since(start) << " ms\n";
  }
}

TEST_F(BrokerRestart, CrashWhileInstancesAreReplacedConverges) {
  ASSERT_EQ(fleet_.apply(many_sleepers("w", kWorkloads, "1")).exit_code, 0);
  ASSERT_EQ(fleet_.wait_converged(many_versions("w", kWorkloads, "1"), kNodes, kConverge), "");

  // A new spec for every workload: each agent stops 20 instances and starts 20 new ones, and
  // reports each step. The broker crashes once the first new instance runs, with the rest of
  // that work and its status in flight.
  RunResult r = fleet_.apply_forced(many_sleepers("w", kWorkloads, "2"));
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  ASSERT_TRUE(eventually(
      [&] {
        for (const auto& p : fleet_.processes())
          if (!p.shim && p.version == "2") return true;
        return false;
      },
      20s))
      << "no instance of the new spec started";
  auto start = std::chrono::steady_clock::now();
  ASSERT_TRUE(fleet_.broker().restart(/*crash=*/true)) << fleet_.broker().log();
  EXPECT_EQ(fleet_.wait_converged(many_versions("w", kWorkloads, "2"), kNodes, kConverge), "");
  std::cout << "broker crashed mid-replacement -> converged: " << since(start) << " ms\n";
}

}  // namespace
}  // namespace flotilla::testing
