// The web console in a real browser: a fleet (mosquitto, a hub with API tokens, three agents, two
// workloads, a device twin and an OTA rollout held in its health check), then Debian's chromium,
// headless, driven by playwright-core (test/console/run.mjs) through every page of the console.
// The script applies one more workload (its startups must reach the latency plot), pauses and
// resumes the rollout, and asks this test, by writing a file, to kill -9 one agent while it
// watches the node list. Screenshots go to <fleet dir>/console-screenshots, copied to
// $TMPDIR/flotilla-console-screenshots when the test ends (the path is printed).
#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <thread>

#include "test/integration/fleet.hpp"

namespace flotilla::testing {
namespace {

namespace fs = std::filesystem;

const std::string kScript = std::string(FLOTILLA_SOURCE_DIR) + "/test/console/run.mjs";
const std::string kPlaywright =
    std::string(FLOTILLA_SOURCE_DIR) + "/test/console/node_modules/playwright-core";

// Sets an environment variable for this test's child processes (flotctl reads
// FLOTILLA_TOKEN), and unsets it afterwards.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const std::string& value) : name_(name) {
    ::setenv(name, value.c_str(), 1);
  }
  ~ScopedEnv() { ::unsetenv(name_); }

 private:
  const char* name_;
};

TEST(Console, EveryPageShowsTheFleetAndFollowsItLive) {
  if (!fs::exists("/usr/bin/chromium")) {
    GTEST_SKIP() << "/usr/bin/chromium is missing (scripts/setup installs Debian's chromium)";
  }
  ASSERT_TRUE(fs::exists(kPlaywright))
      << kPlaywright << " is missing: run scripts/setup (npm ci in test/console)";
  Fleet fleet;
  const std::string tokens = fleet.dir() / "tokens.txt";
  const std::string op = create_token("otto", "operator", tokens);
  ScopedEnv token_env("FLOTILLA_TOKEN", op);  // for the Fleet's flotctl calls
  fleet.start_hub({}, {"--api-tokens", tokens});

  // n3 takes OTA updates and holds each in a long health check, so its rollout stays
  // Progressing until the browser pauses it.
  ASSERT_EQ(fleet.flotctl({"artifact", "keygen", "--out", fleet.dir() / "k"}).exit_code, 0);
  const std::string slots = fleet.dir() / "slots";
  fs::create_directories(slots);
  write_file(slots + "/slot-a", std::string(64 << 10, 'a'));
  fs::create_symlink("slot-a", slots + "/active");
  fleet.start_agent("n1", "site=east");
  fleet.start_agent("n2", "site=west");
  fleet.start_agent("n3", AgentOptions{.labels = "ring=canary",
                                       .args = {"--ota-public-key", fleet.dir() / "k.pub",
                                                "--ota-image-slots", slots, "--ota-health-command",
                                                "sleep 600", "--ota-health-timeout", "900"}});
  ASSERT_TRUE(eventually(
      [&] {
        return fleet.all_ready({"n1", "n2", "n3"});
      },
      20s))
      << fleet.dump_logs();

  ASSERT_EQ(
      fleet
          .apply(sleeper_manifest("web") + "---\n" + sleeper_manifest("cache", "1", "replicas: 2") +
                 "---\napiVersion: flotilla/v1\nkind: Device\nmetadata:\n  name: thermo-1\n"
                 "spec:\n  node: n1\n  desired: {setpoint: 21}\n")
          .exit_code,
      0);
  ASSERT_TRUE(eventually(
      [&] {
        json c = fleet.get("workloads", "cache");
        return fleet.running_everywhere("web", {"n1", "n2", "n3"}) && c.is_object() &&
               c["status"].value("readyInstances", 0) == 2;
      },
      30s))
      << fleet.dump_logs();

  const std::string file = fleet.dir() / "v2.img";
  write_file(file, std::string(64 << 10, 'b'));
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"artifact", "build", "--name", "fw", "--version", "2.0",
                                 "--target", "image", "--payload", file, "--out",
                                 fleet.dir() / "b2"},
        {"artifact", "sign", "--key", fleet.dir() / "k.key", fleet.dir() / "b2"},
        {"artifact", "push", fleet.dir() / "b2"}}) {
    RunResult r = fleet.flotctl(args);
    ASSERT_EQ(r.exit_code, 0) << args[1] << ": " << r.out << r.err;
  }
  ASSERT_EQ(fleet
                .apply("apiVersion: flotilla/v1\nkind: Rollout\nmetadata: {name: fw-2}\nspec:\n"
                       "  artifact: {name: fw, version: \"2.0\"}\n"
                       "  selector: {matchLabels: {ring: canary}}\n"
                       "  progressTimeoutSeconds: 900\n",
                       "fw-2.yaml")
                .exit_code,
            0);
  // The node took the assignment (it sits in its health check from then on).
  ASSERT_TRUE(eventually(
      [&] {
        json r = fleet.get("rollouts", "fw-2");
        return r.is_object() && r["status"].value("phase", "") == "Progressing" &&
               r["status"]["counts"].value("inProgress", 0) == 1;
      },
      30s))
      << fleet.get("rollouts", "fw-2").dump() << fleet.dump_logs();

  // The browser script writes kill_file when it watches the node list; then n2 dies.
  const std::string shots = fleet.dir() / "console-screenshots";
  const std::string kill_file = fleet.dir() / "kill-n2";
  // Applied by the browser while it watches the overview's startup-latency plot.
  const std::string probe = fleet.manifest_file(sleeper_manifest("probe"), "probe.yaml");
  std::atomic<bool> done{false};
  std::atomic<bool> killed{false};
  std::thread killer([&] {
    while (!done && !fs::exists(kill_file)) std::this_thread::sleep_for(50ms);
    if (done) return;
    fleet.kill9_agent("n2");
    killed = true;
  });
  const auto started = std::chrono::steady_clock::now();
  RunResult r = run_command(
      {"/usr/bin/env", "node", kScript, fleet.hub_url(), op, shots, kill_file, probe}, 180s);
  done = true;
  killer.join();
  const auto took = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::steady_clock::now() - started);
  std::cout << r.out << "browser test took " << took.count() << " ms\n";
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err << fleet.dump_logs();
  EXPECT_TRUE(killed) << "the browser never asked for n2 to be killed";
  // What the browser did is in the hub: a pause, then a resume, and n2 NotReady.
  RunResult described = fleet.flotctl({"describe", "rollout", "fw-2"});
  EXPECT_NE(described.out.find("RolloutPaused"), std::string::npos) << described.out;
  EXPECT_NE(described.out.find("RolloutResumed"), std::string::npos) << described.out;
  EXPECT_EQ(fleet.get("rollouts", "fw-2")["status"].value("phase", ""), "Progressing");
  EXPECT_EQ(fleet.node_state("n2"), "NotReady");
  // The probe the browser applied runs on the nodes alive (n2's last report stays as it was).
  for (const std::string node : {"n1", "n3"}) {
    auto insts = fleet.instances("probe");
    EXPECT_TRUE(insts.count(node) == 1 && insts.find(node)->second.value("phase", "") == "Running")
        << node << ": " << fleet.get("workloads", "probe").dump();
    EXPECT_EQ(fleet.workload_pids(node, "probe").size(), 1u) << node;
  }
  // The fleet's folder goes with the test: the screenshots are copied where they stay.
  const fs::path kept = fs::temp_directory_path() / "flotilla-console-screenshots";
  std::error_code ec;
  fs::remove_all(kept, ec);
  fs::copy(shots, kept, fs::copy_options::recursive, ec);
  std::cout << "screenshots copied to " << kept.string()
            << (ec ? " (failed: " + ec.message() + ")" : "") << "\n";
}
}  // namespace
}  // namespace flotilla::testing
