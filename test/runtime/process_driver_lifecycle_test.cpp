// ProcessDriver across agent restarts: instances outlive the agent, recover() re-finds them,
// cleanup() removes runtime state but keeps (a bounded number of) logs.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>

#include <gtest/gtest.h>

#include "runtime/proc_stat.hpp"
#include "runtime/process_driver.hpp"
#include "test/runtime/runtime_test_util.hpp"

namespace flotilla::runtime {
namespace {

using testing::eventually;
using testing::read_or_empty;
using testing::TempDir;
using testing::wait_until_exited;

LaunchSpec spec(const std::string& id, std::vector<std::string> command) {
  LaunchSpec s;
  s.instance_id = id;
  s.workload = "test-workload";
  s.command = std::move(command);
  return s;
}

class LifecycleTest : public ::testing::Test {
 protected:
  LifecycleTest() : root_(tmp_.path() + "/root") {}
  ~LifecycleTest() override {
    ProcessDriver driver(root_, FLOTILLA_SHIM_PATH);
    for (const Handle& h : driver.recover()) (void)driver.kill(h);
  }

  TempDir tmp_;
  std::string root_;
};

// An "agent" in its own process group launches an instance and is then killed with its whole
// group, as kill -9 or a crash would; the instance must keep running.
TEST_F(LifecycleTest, InstanceSurvivesTheAgentBeingKilled) {
  int pipe_fds[2];
  ASSERT_EQ(::pipe(pipe_fds), 0);
  pid_t agent = ::fork();
  ASSERT_GE(agent, 0);
  if (agent == 0) {
    ::setpgid(0, 0);
    ProcessDriver driver(root_, FLOTILLA_SHIM_PATH);
    auto h = driver.launch(spec("survivor", {"sleep", "30"}));
    char ok = h ? 'y' : 'n';
    (void)::write(pipe_fds[1], &ok, 1);
    ::pause();
    ::_exit(0);
  }
  ::close(pipe_fds[1]);
  char ok = 0;
  ASSERT_EQ(::read(pipe_fds[0], &ok, 1), 1);
  ::close(pipe_fds[0]);
  ASSERT_EQ(ok, 'y');
  ::kill(-agent, SIGKILL);
  ::waitpid(agent, nullptr, 0);

  ProcessDriver driver(root_, FLOTILLA_SHIM_PATH);
  auto found = driver.recover();
  ASSERT_EQ(found.size(), 1u);
  const Handle& h = found[0];
  EXPECT_EQ(driver.observe(h).state, RunState::kRunning);
  EXPECT_EQ(::getsid(static_cast<pid_t>(h.pid)), h.pid);  // leads its own session
  EXPECT_NE(::getsid(static_cast<pid_t>(h.pid)), ::getsid(0));
  EXPECT_EQ(::getpgid(static_cast<pid_t>(h.pid)), h.pid);
  auto shim = read_proc_stat(h.pid);
  ASSERT_TRUE(shim);
  EXPECT_NE(shim->ppid, agent);
  EXPECT_NE(shim->ppid, ::getpid());
}

TEST_F(LifecycleTest, NewDriverRecoversRunningAndExitedInstances) {
  Handle running, exited;
  {
    ProcessDriver first(root_, FLOTILLA_SHIM_PATH);
    auto r = first.launch(spec("b-running", {"sleep", "30"}));
    auto e = first.launch(spec("a-exited", {"/bin/sh", "-c", "exit 4"}));
    ASSERT_TRUE(r && e);
    running = *r;
    exited = *e;
    ASSERT_EQ(wait_until_exited(first, exited).exit_code, 4);
  }
  ProcessDriver second(root_, FLOTILLA_SHIM_PATH);
  auto found = second.recover();
  ASSERT_EQ(found.size(), 2u);
  EXPECT_EQ(found[0].instance_id, "a-exited");
  EXPECT_EQ(found[0].pid, exited.pid);
  EXPECT_EQ(found[0].start_ticks, exited.start_ticks);
  EXPECT_EQ(found[1].instance_id, "b-running");
  EXPECT_EQ(found[1].pid, running.pid);
  EXPECT_EQ(found[1].start_ticks, running.start_ticks);
  EXPECT_EQ(second.observe(found[0]).exit_code, 4);
  EXPECT_EQ(second.observe(found[1]).state, RunState::kRunning);

  ASSERT_TRUE(second.terminate(found[1]));
  EXPECT_EQ(wait_until_exited(second, found[1]).signal, SIGTERM);
}

TEST_F(LifecycleTest, ShimKilledAloneTakesTheWorkloadAlongAndReadsAsVanished) {
  ProcessDriver driver(root_, FLOTILLA_SHIM_PATH);
  auto h = driver.launch(spec("orphan", {"sleep", "30"}));
  ASSERT_TRUE(h);
  ASSERT_TRUE(eventually([&] { return live_group_members(h->pid).size() == 2; }));
  ::kill(static_cast<pid_t>(h->pid), SIGKILL);  // only the shim, not the group
  Observation obs = wait_until_exited(driver, *h);
  EXPECT_EQ(obs.state, RunState::kExited);
  EXPECT_EQ(obs.signal, SIGKILL);
  EXPECT_NE(obs.message.find("supervisor vanished"), std::string::npos);
  EXPECT_TRUE(driver.kill(*h));
  EXPECT_TRUE(eventually([&] { return live_group_members(h->pid).empty(); }));
}

TEST_F(LifecycleTest, CleanupRemovesRuntimeStateButKeepsLogs) {
  ProcessDriver driver(root_, FLOTILLA_SHIM_PATH);
  auto h = driver.launch(spec("done", {"/bin/sh", "-c", "echo bye"}));
  ASSERT_TRUE(h);
  ASSERT_EQ(wait_until_exited(driver, *h).exit_code, 0);

  ASSERT_TRUE(driver.cleanup("done"));
  EXPECT_FALSE(fs::exists(root_ + "/instances/done"));
  EXPECT_EQ(read_or_empty(driver.log_path("done", false)), "bye\n");
  EXPECT_EQ(driver.observe(*h).state, RunState::kUnknown);
  EXPECT_TRUE(driver.recover().empty());
  EXPECT_TRUE(driver.cleanup("done"));  // again: nothing to do, not an error

  // The id is free again; the new run appends to the kept log.
  auto again = driver.launch(spec("done", {"/bin/sh", "-c", "echo again"}));
  ASSERT_TRUE(again) << again.error().message();
  ASSERT_EQ(wait_until_exited(driver, *again).exit_code, 0);
  EXPECT_EQ(read_or_empty(driver.log_path("done", false)), "bye\nagain\n");
}

// The agent's restart path: cleanup() right after observe() first reports the exit, while the
// shim may still be between writing its exit record and exiting.
TEST_F(LifecycleTest, CleanupSucceedsAsSoonAsTheExitIsObserved) {
  ProcessDriver driver(root_, FLOTILLA_SHIM_PATH);
  for (int i = 0; i < 20; ++i) {
    auto h = driver.launch(spec("restarting", {"true"}));
    ASSERT_TRUE(h) << h.error().message();
    ASSERT_EQ(wait_until_exited(driver, *h).state, RunState::kExited);
    Status s = driver.cleanup("restarting");
    ASSERT_TRUE(s) << s.error().message();
  }
}

TEST_F(LifecycleTest, CleanupRefusesARunningInstanceAndBadIds) {
  ProcessDriver driver(root_, FLOTILLA_SHIM_PATH);
  auto h = driver.launch(spec("busy", {"sleep", "30"}));
  ASSERT_TRUE(h);
  Status s = driver.cleanup("busy");
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().message().rfind("Failed to clean up instance 'busy': it is still running", 0),
            0u);
  EXPECT_EQ(driver.observe(*h).state, RunState::kRunning);

  Status bad = driver.cleanup("../busy");
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().message().rfind("Failed to clean up instance '../busy': ", 0), 0u);
}

TEST_F(LifecycleTest, CleanupKeepsOnlyTheNewestLogFoldersOfRemovedInstances) {
  ProcessDriver driver(root_, FLOTILLA_SHIM_PATH);
  auto live = driver.launch(spec("live", {"sleep", "30"}));
  ASSERT_TRUE(live);
  const size_t keep = ProcessDriver::kRetainedLogFolders;
  auto now = std::filesystem::file_time_type::clock::now();
  for (size_t i = 0; i < keep + 5; ++i) {
    std::string dir = root_ + "/logs/old-" + std::to_string(i);
    ASSERT_TRUE(fs::make_dirs(dir));
    std::ofstream(dir + "/stdout.log") << "x";
    auto when = now - std::chrono::hours(keep + 5 - i);  // old-0 is the oldest
    std::filesystem::last_write_time(dir + "/stdout.log", when);
    std::filesystem::last_write_time(dir, when);
  }
  ASSERT_TRUE(driver.cleanup("never-existed"));
  for (size_t i = 0; i < keep + 5; ++i) {
    EXPECT_EQ(fs::exists(root_ + "/logs/old-" + std::to_string(i)), i >= 5) << i;
  }
  EXPECT_TRUE(fs::exists(root_ + "/logs/live"));  // a live instance's logs are never pruned
}

}  // namespace
}  // namespace flotilla::runtime
