// ProcessDriver against real processes: launch, observe, logs, stop, bad input.
#include "runtime/process_driver.hpp"

#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <string>
#include <thread>

#include <gtest/gtest.h>

#include "runtime/proc_stat.hpp"
#include "test/runtime/runtime_test_util.hpp"

namespace flotilla::runtime {
namespace {

using testing::eventually;
using testing::file_size_or_zero;
using testing::read_or_empty;
using testing::TempDir;
using testing::wait_until_exited;

class ProcessDriverTest : public ::testing::Test {
 protected:
  ProcessDriverTest() : root_(tmp_.path() + "/root"), driver_(root_, FLOTILLA_SHIM_PATH) {}

  ~ProcessDriverTest() override {
    // Never leave a workload running after a failed test.
    for (const Handle& h : driver_.recover()) (void)driver_.kill(h);
  }

  static LaunchSpec spec(const std::string& id, std::vector<std::string> command) {
    LaunchSpec s;
    s.instance_id = id;
    s.workload = "test-workload";
    s.command = std::move(command);
    return s;
  }

  Handle launch_ok(const LaunchSpec& s) {
    auto handle = driver_.launch(s);
    EXPECT_TRUE(handle) << handle.error().message();
    return handle ? *handle : Handle{};
  }

  TempDir tmp_;
  std::string root_;
  ProcessDriver driver_;
};

TEST_F(ProcessDriverTest, RecordsExitCodeAndCapturesBothStreams) {
  Handle h = launch_ok(spec("exit3", {"/bin/sh", "-c", "echo hi; echo err >&2; exit 3"}));
  EXPECT_EQ(h.instance_id, "exit3");
  EXPECT_GT(h.pid, 1);
  EXPECT_GT(h.start_ticks, 0u);

  Observation obs = wait_until_exited(driver_, h);
  EXPECT_EQ(obs.state, RunState::kExited);
  EXPECT_EQ(obs.exit_code, 3);
  EXPECT_EQ(obs.signal, 0);
  EXPECT_EQ(obs.message, "exited with code 3");
  EXPECT_EQ(read_or_empty(driver_.log_path("exit3", false)), "hi\n");
  EXPECT_EQ(read_or_empty(driver_.log_path("exit3", true)), "err\n");
  EXPECT_EQ(driver_.log_path("exit3", false), root_ + "/logs/exit3/stdout.log");
}

TEST_F(ProcessDriverTest, TerminateStopsARunningInstanceWithSigterm) {
  Handle h = launch_ok(spec("sleeper", {"sleep", "30"}));
  EXPECT_EQ(driver_.observe(h).state, RunState::kRunning);
  EXPECT_EQ(driver_.observe(h).message, "running");

  ASSERT_TRUE(driver_.terminate(h));
  Observation obs = wait_until_exited(driver_, h, std::chrono::seconds(1));
  EXPECT_EQ(obs.state, RunState::kExited);
  EXPECT_EQ(obs.signal, SIGTERM);
  EXPECT_EQ(obs.message, "killed by signal 15 (SIGTERM)");
  // Stopping something already stopped is not an error.
  EXPECT_TRUE(driver_.terminate(h));
  EXPECT_TRUE(driver_.kill(h));
}

TEST_F(ProcessDriverTest, KillStopsAnInstanceThatIgnoresSigtermAndItsWholeGroup) {
  Handle h = launch_ok(spec("stubborn", {"/bin/sh", "-c", "trap '' TERM; echo ready; sleep 30"}));
  ASSERT_TRUE(
      eventually([&] { return read_or_empty(driver_.log_path("stubborn", false)) == "ready\n"; }));
  ASSERT_TRUE(driver_.terminate(h));
  // Give SIGTERM time to (not) work; nothing can be polled for here.
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_EQ(driver_.observe(h).state, RunState::kRunning);
  EXPECT_GE(live_group_members(h.pid).size(), 2u);  // shim, sh (and sleep)

  ASSERT_TRUE(driver_.kill(h));
  Observation obs = wait_until_exited(driver_, h, std::chrono::seconds(1));
  EXPECT_EQ(obs.state, RunState::kExited);
  EXPECT_EQ(obs.signal, SIGKILL);
  EXPECT_NE(obs.message.find("vanished"), std::string::npos) << obs.message;
  EXPECT_TRUE(eventually([&] { return live_group_members(h.pid).empty(); }));
}

TEST_F(ProcessDriverTest, AppliesExactlyTheGivenEnvironmentAndWorkdir) {
  ASSERT_EQ(::setenv("FLOTILLA_TEST_LEAK", "must-not-appear", 1), 0);
  std::string workdir = tmp_.path() + "/work dir";
  ASSERT_TRUE(fs::make_dirs(workdir));

  LaunchSpec env_spec = spec("env", {"/usr/bin/env"});
  env_spec.env = {{"A", "1"}, {"B", "two words"}, {"EMPTY", ""}};
  Handle env_h = launch_ok(env_spec);
  LaunchSpec pwd_spec = spec("pwd", {"/bin/pwd", "-P"});
  pwd_spec.workdir = workdir;
  Handle pwd_h = launch_ok(pwd_spec);
  Handle default_h = launch_ok(spec("default-workdir", {"/bin/pwd", "-P"}));

  EXPECT_EQ(wait_until_exited(driver_, env_h).exit_code, 0);
  EXPECT_EQ(wait_until_exited(driver_, pwd_h).exit_code, 0);
  EXPECT_EQ(wait_until_exited(driver_, default_h).exit_code, 0);
  EXPECT_EQ(read_or_empty(driver_.log_path("env", false)), "A=1\nB=two words\nEMPTY=\n");
  EXPECT_EQ(read_or_empty(driver_.log_path("pwd", false)), workdir + "\n");
  std::string instance_dir =
      std::filesystem::canonical(root_ + "/instances/default-workdir").string();
  EXPECT_EQ(read_or_empty(driver_.log_path("default-workdir", false)), instance_dir + "\n");
  ::unsetenv("FLOTILLA_TEST_LEAK");
}

TEST_F(ProcessDriverTest, LooksUpCommandsInTheInstancePath) {
  LaunchSpec s = spec("path", {"true"});
  s.env = {{"PATH", "/usr/bin:/bin"}};
  EXPECT_EQ(wait_until_exited(driver_, launch_ok(s)).exit_code, 0);
}

TEST_F(ProcessDriverTest, MissingCommandExitsWith127AndSaysWhy) {
  Handle h = launch_ok(spec("missing", {"no-such-command-flotilla"}));
  Observation obs = wait_until_exited(driver_, h);
  EXPECT_EQ(obs.state, RunState::kExited);
  EXPECT_EQ(obs.exit_code, 127);
  EXPECT_EQ(obs.message,
            "exited with code 127: Failed to start command 'no-such-command-flotilla': No such "
            "file or directory");
  EXPECT_NE(read_or_empty(driver_.log_path("missing", true)).find("No such file or directory"),
            std::string::npos);
}

TEST_F(ProcessDriverTest, CapsEachLogAndRotatesOnce) {
  constexpr uint64_t kCap = 4096;
  LaunchSpec s = spec("chatty", {"/bin/sh", "-c",
                                 "head -c 12288 /dev/zero | tr '\\0' o; "
                                 "head -c 12288 /dev/zero | tr '\\0' e >&2"});
  s.log_limit_bytes = kCap;
  Handle h = launch_ok(s);
  EXPECT_EQ(wait_until_exited(driver_, h).exit_code, 0);
  for (bool err : {false, true}) {
    std::string path = driver_.log_path("chatty", err);
    EXPECT_LE(file_size_or_zero(path), kCap);
    EXPECT_LE(file_size_or_zero(path + ".1"), kCap);
    EXPECT_GT(file_size_or_zero(path), 0u);
    EXPECT_EQ(file_size_or_zero(path) + file_size_or_zero(path + ".1"), 2 * kCap);
    EXPECT_FALSE(fs::exists(path + ".2"));
  }
}

TEST_F(ProcessDriverTest, KillsWhatTheCommandLeftBehindWhenItExits) {
  Handle h = launch_ok(spec("leaver", {"/bin/sh", "-c", "sleep 30 & echo started"}));
  Observation obs = wait_until_exited(driver_, h);
  EXPECT_EQ(obs.state, RunState::kExited);
  EXPECT_EQ(obs.exit_code, 0);
  EXPECT_EQ(read_or_empty(driver_.log_path("leaver", false)), "started\n");
  // The background sleep is gone before the exit is recorded; the shim itself exits right after.
  // (Checked by name: sanitizer builds run helper tasks of the shim as it exits.)
  for (const ProcStat& member : live_group_members(h.pid)) {
    EXPECT_NE(read_or_empty("/proc/" + std::to_string(member.pid) + "/comm"), "sleep\n");
  }
  EXPECT_TRUE(eventually([&] { return live_group_members(h.pid).empty(); }));
}

TEST_F(ProcessDriverTest, GuardsAgainstPidReuse) {
  Handle h = launch_ok(spec("guarded", {"sleep", "30"}));
  Handle stale = h;
  stale.start_ticks += 1;  // same pid, another process as far as the driver can tell
  EXPECT_NE(driver_.observe(stale).state, RunState::kRunning);
  EXPECT_TRUE(driver_.terminate(stale));
  EXPECT_TRUE(driver_.kill(stale));
  std::this_thread::sleep_for(std::chrono::milliseconds(100));  // signals would land by now
  EXPECT_EQ(driver_.observe(h).state, RunState::kRunning);
  EXPECT_EQ(live_group_members(h.pid).size(), 2u);  // shim and sleep, untouched
  ASSERT_TRUE(driver_.kill(h));
  EXPECT_EQ(wait_until_exited(driver_, h).state, RunState::kExited);
}

TEST_F(ProcessDriverTest, RejectsBadInputAndCreatesNothing) {
  struct Case {
    LaunchSpec spec;
    std::string want;
  };
  std::vector<Case> cases = {
      {spec("empty-command", {}), "command is empty"},
      {spec("a/b", {"true"}), "may hold only"},
      {spec("..", {"true"}), "starts with '.'"},
      {spec("", {"true"}), "instance id is empty"},
      {spec(std::string(129, 'x'), {"true"}), "longer than"},
  };
  cases.push_back({spec("bad-env", {"true"}), "bad environment variable name 'A=B'"});
  cases.back().spec.env = {{"A=B", "1"}};
  cases.push_back({spec("relative-workdir", {"true"}), "is not absolute"});
  cases.back().spec.workdir = "relative";
  cases.push_back({spec("missing-workdir", {"true"}), "is not a directory"});
  cases.back().spec.workdir = tmp_.path() + "/nope";
  cases.push_back({spec("no-log-room", {"true"}), "log_limit_bytes"});
  cases.back().spec.log_limit_bytes = 0;

  for (const Case& c : cases) {
    auto result = driver_.launch(c.spec);
    ASSERT_FALSE(result) << c.spec.instance_id;
    const std::string& msg = result.error().message();
    EXPECT_EQ(msg.rfind("Failed to launch instance '" + c.spec.instance_id + "': ", 0), 0u) << msg;
    EXPECT_NE(msg.find(c.want), std::string::npos) << msg;
  }
  EXPECT_FALSE(fs::exists(root_));

  ProcessDriver no_shim(root_, tmp_.path() + "/no-such-shim");
  auto result = no_shim.launch(spec("x", {"true"}));
  ASSERT_FALSE(result);
  EXPECT_NE(result.error().message().find("is not executable"), std::string::npos);
  EXPECT_FALSE(fs::exists(root_));
}

TEST_F(ProcessDriverTest, RejectsASecondLaunchOfTheSameInstance) {
  Handle h = launch_ok(spec("twice", {"sleep", "30"}));
  auto again = driver_.launch(spec("twice", {"sleep", "30"}));
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().message(),
            "Failed to launch instance 'twice': it already exists (clean it up first)");
  EXPECT_EQ(driver_.observe(h).state, RunState::kRunning);
}

TEST_F(ProcessDriverTest, ReportsAShimThatCannotStart) {
  // A folder where the shim wants its stdout log makes it fail before it is ready.
  ASSERT_TRUE(fs::make_dirs(root_ + "/logs/blocked/stdout.log"));
  auto result = driver_.launch(spec("blocked", {"true"}));
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().message(),
            "Failed to launch instance 'blocked': shim: Failed to open log '" + root_ +
                "/logs/blocked/stdout.log': Is a directory");
  EXPECT_FALSE(fs::exists(root_ + "/instances/blocked"));
}

TEST(DefaultShimPath, IsNextToTheRunningExecutable) {
  std::string exe = std::filesystem::read_symlink("/proc/self/exe").parent_path().string();
  EXPECT_EQ(default_shim_path(), exe + "/flotilla-shim");
}

}  // namespace
}  // namespace flotilla::runtime
