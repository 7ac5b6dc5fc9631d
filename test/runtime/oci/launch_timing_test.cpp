// Measures launch() -> container running against `<runtime> run -d` of an equivalent bundle by
// hand, 10 runs each in the same test run, and reports the medians and their ratio. A
// measurement, not a timed assertion: it fails only when a launch fails.
#include <algorithm>
#include <cstdio>

#include <nlohmann/json.hpp>

#include "runtime/oci/command_runner.hpp"
#include "test/runtime/oci/oci_test_fixture.hpp"

namespace flotilla::runtime::oci::testing {
namespace {

using Clock = std::chrono::steady_clock;
using LaunchTiming = ContainerTest;

constexpr int kRuns = 10;

double millis(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

double median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  return (values[values.size() / 2] + values[(values.size() - 1) / 2]) / 2;
}

TEST_P(LaunchTiming, LaunchComparedWithTheRuntimeByHand) {
  // The by-hand runs use the runtime spec the driver generates, on a rootfs mounted beforehand.
  auto first = driver_->launch(spec("template", {"sleep", "300"}));
  ASSERT_TRUE(first) << first.error().message();
  auto config =
      nlohmann::json::parse(read_or_empty(driver_->bundle_dir("template") + "/config.json"));
  ASSERT_TRUE(driver_->kill(*first));
  eventually([&] { return driver_->observe(*first).state != RunState::kRunning; });
  ASSERT_TRUE(driver_->cleanup("template"));
  std::string bundle = tmp_.path() + "/by-hand";
  ASSERT_TRUE(fs::make_dirs(bundle));
  auto kind = make_instance_rootfs(rootfs_, bundle);
  ASSERT_TRUE(kind) << kind.error().message();
  config["root"]["path"] = bundle + "/rootfs";
  std::string state = tmp_.path() + "/by-hand-state";
  SystemCommandRunner runner;

  // Interleaved, so that both face the same load from whatever else runs on the machine.
  std::vector<double> driver_ms, by_hand_ms;
  for (int i = 0; i < kRuns; ++i) {
    std::string id = "timed-" + std::to_string(i);
    auto start = Clock::now();
    auto h = driver_->launch(spec(id, {"sleep", "300"}));
    auto took = Clock::now() - start;
    ASSERT_TRUE(h) << h.error().message();
    ASSERT_GT(driver_->container_pid(id), 1);  // running
    driver_ms.push_back(millis(took));

    std::string hand_id = "by-hand-" + std::to_string(i);
    config["linux"]["cgroupsPath"] = cgroup_parent_ + "/" + hand_id;
    ASSERT_TRUE(fs::write_atomic(bundle + "/config.json", config.dump(2)));
    start = Clock::now();
    // SystemCommandRunner waits for the exit, so the time is runc's own to the millisecond.
    auto run =
        runner.run({runtime_path_, "--root", state, "run", "-d", "--bundle", bundle, hand_id},
                   std::chrono::seconds(30));
    took = Clock::now() - start;
    ASSERT_TRUE(run) << run.error().message();
    ASSERT_EQ(run->exit_code, 0) << run->err;
    by_hand_ms.push_back(millis(took));

    ASSERT_TRUE(driver_->kill(*h));
    auto removed = runner.run({runtime_path_, "--root", state, "delete", "--force", hand_id},
                              std::chrono::seconds(30));
    ASSERT_TRUE(removed && removed->exit_code == 0);
    eventually([&] { return driver_->observe(*h).state != RunState::kRunning; });
    ASSERT_TRUE(driver_->cleanup(id));
  }
  (void)release_instance_rootfs(bundle);

  double ours = median(driver_ms), theirs = median(by_hand_ms);
  std::printf(
      "[ timing ] %s: launch() median %.1f ms, `%s run -d` by hand median %.1f ms, "
      "ratio %.2f (%d runs each)\n",
      GetParam().c_str(), ours, GetParam().c_str(), theirs, ours / theirs, kRuns);
  RecordProperty("launch_median_ms", std::to_string(ours));
  RecordProperty("by_hand_median_ms", std::to_string(theirs));
  RecordProperty("ratio", std::to_string(ours / theirs));
}

INSTANTIATE_TEST_SUITE_P(Runtimes, LaunchTiming, ::testing::Values("runc", "crun"), runtime_name);

}  // namespace
}  // namespace flotilla::runtime::oci::testing
