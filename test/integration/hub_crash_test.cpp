// kill -9 of the hub in the middle of an apply leaves a consistent store; repeating works.
#include <gtest/gtest.h>

#include <fstream>
#include <set>

#include "test/integration/fleet.hpp"

namespace flotilla::testing {
namespace {

const std::vector<std::string> kNodes = {"n1", "n2"};
constexpr int kWorkloads = 25;

std::string many_workloads() {
  std::string out;
  for (int i = 0; i < kWorkloads; ++i) {
    if (i > 0) out += "---\n";
    out += sleeper_manifest("w" + std::to_string(i));
  }
  return out;
}

TEST(HubCrash, Kill9DuringApplyLeavesAllOrNothingAndReapplyConverges) {
  Fleet fleet;
  fleet.start_hub();
  for (const auto& n : kNodes) fleet.start_agent(n);
  ASSERT_TRUE(eventually(
      [&] { return fleet.node_state("n1") == "Ready" && fleet.node_state("n2") == "Ready"; }, 15s));

  std::string path = fleet.dir() / "many.yaml";
  std::string text = many_workloads();
  for (size_t at; (at = text.find("__FLEET__")) != std::string::npos;)
    text.replace(at, 9, fleet.dir().path());
  std::ofstream(path) << text;

  for (int delay_ms : {0, 5, 20, 60}) {
    ChildProcess apply;
    apply.start({FLOTCTL_BIN, "--hub", fleet.hub_url(), "apply", "-f", path},
                fleet.dir() / ("apply-" + std::to_string(delay_ms) + ".log"));
    std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms));
    fleet.kill9_hub();
    apply.wait_exit(10s);
    fleet.start_hub();
    json list = fleet.get("workloads");
    ASSERT_TRUE(list.contains("items")) << list.dump();
    size_t n = list["items"].size();
    // One transaction per apply: never a part of the file.
    EXPECT_TRUE(n == 0 || n == static_cast<size_t>(kWorkloads))
        << "after kill at " << delay_ms << " ms the hub holds " << n << " of " << kWorkloads;
  }

  RunResult again = fleet.flotctl({"apply", "-f", path});
  ASSERT_EQ(again.exit_code, 0) << again.out << again.err;
  ASSERT_TRUE(eventually(
      [&] {
        for (int i = 0; i < kWorkloads; ++i)
          if (!fleet.running_everywhere("w" + std::to_string(i), kNodes)) return false;
        return true;
      },
      60s))
      << fleet.get("workloads").dump(1);
  for (const auto& node : kNodes) {
    for (int i = 0; i < kWorkloads; ++i) {
      EXPECT_EQ(fleet.workload_pids(node, "w" + std::to_string(i)).size(), 1u) << node << " w" << i;
    }
  }
}

}  // namespace
}  // namespace flotilla::testing
