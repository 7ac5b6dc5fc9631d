// ContainerDriver against a real runtime (runc; crun where the node allows it): launch, logs,
// exit codes, external kills, terminate, kill, agent restarts, cleanup.
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "runtime/proc_stat.hpp"
#include "test/runtime/oci/oci_test_fixture.hpp"

namespace flotilla::runtime::oci::testing {
namespace {

using LifecycleTest = ContainerTest;

TEST_P(LifecycleTest, OutputLandsInTheLogsAndTheExitCodeIsRecorded) {
  auto h =
      driver_->launch(spec("hello", {"sh", "-c", "echo hello out; echo hello err >&2; exit 7"}));
  ASSERT_TRUE(h) << h.error().message();
  EXPECT_EQ(h->type, "container");
  EXPECT_GT(h->pid, 1);
  Observation o = wait_exited(*h);
  ASSERT_EQ(o.state, RunState::kExited) << o.message;
  EXPECT_EQ(o.signal, 0);
  EXPECT_EQ(o.exit_code, 7) << o.message;
  EXPECT_EQ(out("hello"), "hello out\n");
  EXPECT_EQ(err("hello"), "hello err\n");
  EXPECT_EQ(images_.in_use(), std::set<std::string>{kBusybox});
}

TEST_P(LifecycleTest, KillingTheContainersProcessFromOutsideIsSeenAsExited) {
  auto h = driver_->launch(spec("victim", {"sleep", "300"}));
  ASSERT_TRUE(h) << h.error().message();
  EXPECT_EQ(driver_->observe(*h).state, RunState::kRunning);
  int64_t pid = driver_->container_pid("victim");
  ASSERT_GT(pid, 1);
  ASSERT_EQ(::kill(static_cast<pid_t>(pid), SIGKILL), 0);
  Observation o = wait_exited(*h);
  ASSERT_EQ(o.state, RunState::kExited);
  EXPECT_EQ(o.signal, SIGKILL) << o.message;
  EXPECT_EQ(o.exit_code, 137);
  EXPECT_EQ(o.message.find("OOMKilled"), std::string::npos) << o.message;
}

TEST_P(LifecycleTest, ASecondDriverRecoversTheRunningContainer) {
  auto h = driver_->launch(spec("survivor", {"sleep", "300"}));
  ASSERT_TRUE(h) << h.error().message();
  int64_t container = driver_->container_pid("survivor");
  driver_.reset();  // the agent goes away; the container must not

  images_.set_in_use({});
  driver_ = make_driver();
  auto found = driver_->recover();
  ASSERT_EQ(found.size(), 1u);
  EXPECT_EQ(found[0].instance_id, "survivor");
  EXPECT_EQ(found[0].pid, h->pid);
  EXPECT_EQ(found[0].start_ticks, h->start_ticks);
  EXPECT_EQ(found[0].type, "container");
  EXPECT_EQ(driver_->observe(found[0]).state, RunState::kRunning);
  EXPECT_EQ(driver_->container_pid("survivor"), container);
  EXPECT_TRUE(flotilla::testing::pid_alive(static_cast<pid_t>(container)));
  EXPECT_EQ(images_.in_use(), std::set<std::string>{kBusybox});
}

// An "agent" in its own process group launches a container and is then killed with its whole
// group, as kill -9 or a crash would do; the container and its monitor must keep running.
TEST_P(LifecycleTest, TheContainerSurvivesTheAgentBeingKilledWithItsGroup) {
  int pipe_fds[2];
  ASSERT_EQ(::pipe(pipe_fds), 0);
  pid_t agent = ::fork();
  ASSERT_GE(agent, 0);
  if (agent == 0) {
    ::setpgid(0, 0);
    auto driver = make_driver();
    auto h = driver ? driver->launch(spec("orphaned", {"sleep", "300"})) : Error("no driver");
    char ok = h ? 'y' : 'n';
    (void)::write(pipe_fds[1], &ok, 1);
    ::pause();
    ::_exit(0);
  }
  ::close(pipe_fds[1]);
  char ok = 0;
  ASSERT_EQ(::read(pipe_fds[0], &ok, 1), 1);
  ::close(pipe_fds[0]);
  ::kill(-agent, SIGKILL);
  ::waitpid(agent, nullptr, 0);
  ASSERT_EQ(ok, 'y');

  auto found = driver_->recover();
  ASSERT_EQ(found.size(), 1u);
  EXPECT_EQ(driver_->observe(found[0]).state, RunState::kRunning);
  EXPECT_EQ(::getsid(static_cast<pid_t>(found[0].pid)), found[0].pid);  // leads its session
  int64_t container = driver_->container_pid("orphaned");
  EXPECT_TRUE(flotilla::testing::pid_alive(static_cast<pid_t>(container)));
  // Still supervised: how it ends is recorded.
  ASSERT_TRUE(driver_->kill(found[0]));
  Observation o = wait_exited(found[0]);
  EXPECT_EQ(o.state, RunState::kExited);
  EXPECT_EQ(o.signal, SIGKILL) << o.message;
}

TEST_P(LifecycleTest, TerminateStopsAContainerThatHandlesSigterm) {
  auto h = driver_->launch(spec(
      "polite",
      {"sh", "-c", "trap 'echo got TERM; exit 0' TERM; echo ready; while :; do sleep 0.05; done"}));
  ASSERT_TRUE(h) << h.error().message();
  ASSERT_TRUE(eventually([&] { return out("polite") == "ready\n"; }));
  auto asked = std::chrono::steady_clock::now();
  ASSERT_TRUE(driver_->terminate(*h));
  Observation o = wait_exited(*h, std::chrono::seconds(3));
  auto took = std::chrono::steady_clock::now() - asked;
  ASSERT_EQ(o.state, RunState::kExited) << o.message;
  EXPECT_EQ(o.exit_code, 0) << o.message;
  EXPECT_LT(took, std::chrono::seconds(2));
  EXPECT_EQ(out("polite"), "ready\ngot TERM\n");
}

TEST_P(LifecycleTest, KillStopsAContainerThatIgnoresSigterm) {
  // sleep as the pid namespace's init has no SIGTERM handler: the kernel drops the signal.
  auto h = driver_->launch(spec("stubborn", {"sleep", "300"}));
  ASSERT_TRUE(h) << h.error().message();
  ASSERT_TRUE(driver_->terminate(*h));
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_EQ(driver_->observe(*h).state, RunState::kRunning);
  ASSERT_TRUE(driver_->kill(*h));
  Observation o = wait_exited(*h, std::chrono::seconds(3));
  ASSERT_EQ(o.state, RunState::kExited);
  EXPECT_EQ(o.signal, SIGKILL) << o.message;
}

TEST_P(LifecycleTest, CleanupLeavesNoStateMountOrCgroupButKeepsTheLogs) {
  auto h = driver_->launch(spec("tidy", {"sh", "-c", "echo bye; sleep 300"}));
  ASSERT_TRUE(h) << h.error().message();
  const std::string name = container_name("tidy");
  const std::string bundle = driver_->bundle_dir("tidy");
  auto memory = memory_of("tidy");
  ASSERT_TRUE(memory);
  EXPECT_TRUE(std::filesystem::exists(memory->dir)) << memory->dir;
  EXPECT_TRUE(is_mount_point(bundle + "/rootfs"));
  EXPECT_TRUE(std::filesystem::exists(driver_->state_root() + "/" + name));

  auto refused = driver_->cleanup("tidy");
  EXPECT_FALSE(refused);  // still running
  if (!refused) {
    EXPECT_NE(refused.error().message().find("still running"), std::string::npos);
  }

  ASSERT_TRUE(driver_->kill(*h));
  ASSERT_EQ(wait_exited(*h).state, RunState::kExited);
  ASSERT_TRUE(driver_->cleanup("tidy"));
  EXPECT_FALSE(std::filesystem::exists(driver_->state_root() + "/" + name));
  EXPECT_FALSE(is_mount_point(bundle + "/rootfs"));
  EXPECT_FALSE(std::filesystem::exists(bundle));
  EXPECT_FALSE(std::filesystem::exists(memory->dir)) << memory->dir;
  EXPECT_EQ(
      flotilla::testing::run_command({runtime_path_, "--root", driver_->state_root(), "list", "-q"})
          .out,
      "");
  EXPECT_EQ(out("tidy"), "bye\n");  // logs are kept
  EXPECT_TRUE(driver_->recover().empty());
  EXPECT_TRUE(images_.in_use().empty());
  EXPECT_EQ(driver_->observe(*h).state, RunState::kUnknown);
}

TEST_P(LifecycleTest, RecoverListsLeftoversForTheAgentToCleanUp) {
  // A runtime container nobody launched through the driver, and a bundle left by a launch cut
  // short.
  std::string stray_bundle = tmp_.path() + "/stray";
  ASSERT_TRUE(fs::make_dirs(stray_bundle + "/rootfs"));
  auto made = flotilla::testing::run_command(
      {"/bin/sh", "-c", "cd " + stray_bundle + " && " + runtime_path_ + " spec"});
  ASSERT_EQ(made.exit_code, 0) << made.err;
  auto config = fs::read_file(stray_bundle + "/config.json");
  ASSERT_TRUE(config);
  auto json = nlohmann::json::parse(*config);
  json["process"]["terminal"] = false;
  json["process"]["args"] = {"sleep", "300"};
  json["root"]["path"] = rootfs_;
  json["linux"]["cgroupsPath"] = cgroup_parent_ + "/stray";
  ASSERT_TRUE(fs::write_atomic(stray_bundle + "/config.json", json.dump()));
  auto started = flotilla::testing::run_command({runtime_path_, "--root", driver_->state_root(),
                                                 "run", "-d", "--bundle", stray_bundle, "stray"});
  ASSERT_EQ(started.exit_code, 0) << started.err;
  ASSERT_TRUE(fs::make_dirs(driver_->bundle_dir("cut-short")));

  auto found = driver_->recover();
  std::set<std::string> ids;
  for (const Handle& h : found) ids.insert(h.instance_id);
  EXPECT_EQ(ids, (std::set<std::string>{"cut-short", "stray"}));
  for (const Handle& h : found) {
    EXPECT_NE(driver_->observe(h).state, RunState::kRunning);
    EXPECT_TRUE(driver_->cleanup(h.instance_id)) << h.instance_id;
  }
  EXPECT_TRUE(driver_->recover().empty());
  EXPECT_FALSE(std::filesystem::exists(driver_->state_root() + "/stray"));
}

TEST_P(LifecycleTest, LaunchingAnImageThatIsNotPreparedFailsClearly) {
  LaunchSpec s = spec("nope", {"true"});
  s.container.image = "registry.example/absent:1";
  EXPECT_EQ(driver_->prepare(s).state, Preparation::State::kFailed);
  auto h = driver_->launch(s);
  ASSERT_FALSE(h);
  EXPECT_NE(h.error().message().find("not ready on the node"), std::string::npos)
      << h.error().message();
  EXPECT_FALSE(std::filesystem::exists(driver_->bundle_dir("nope")));
  EXPECT_TRUE(driver_->recover().empty());
}

TEST_P(LifecycleTest, ARuntimeFailureIsReportedByLaunch) {
  auto h = driver_->launch(spec("missing-binary", {"/no/such/program"}));
  ASSERT_FALSE(h);
  EXPECT_NE(h.error().message().find("/no/such/program"), std::string::npos) << h.error().message();
  EXPECT_FALSE(std::filesystem::exists(driver_->bundle_dir("missing-binary")));
  auto again = driver_->launch(spec("missing-binary", {"true"}));  // the id is free again
  EXPECT_TRUE(again) << again.error().message();
}

TEST_P(LifecycleTest, ExecRunsACommandInTheRunningContainer) {
  auto h = driver_->launch(spec("probed", {"sh", "-c", "echo ok > /tmp/health; sleep 300"}));
  ASSERT_TRUE(h) << h.error().message();
  ASSERT_TRUE(eventually([&] {
    auto code = driver_->exec(*h, {"cat", "/tmp/health"}, std::chrono::seconds(5));
    return code && *code == 0;
  }));
  auto code = driver_->exec(*h, {"sh", "-c", "exit 3"}, std::chrono::seconds(5));
  ASSERT_TRUE(code) << code.error().message();
  EXPECT_EQ(*code, 3);

  auto slow = driver_->exec(*h, {"sleep", "30"}, std::chrono::milliseconds(300));
  ASSERT_FALSE(slow);
  EXPECT_NE(slow.error().message().find("timed out"), std::string::npos) << slow.error().message();
  // The timed-out probe does not linger in the container.
  EXPECT_TRUE(eventually([&] {
    auto n = driver_->exec(*h, {"sh", "-c", "ps | grep -q 'sleep 30$'"}, std::chrono::seconds(5));
    return n && *n == 1;
  }));

  ASSERT_TRUE(driver_->kill(*h));
  ASSERT_EQ(wait_exited(*h).state, RunState::kExited);
  EXPECT_FALSE(driver_->exec(*h, {"true"}, std::chrono::seconds(5)));
}

INSTANTIATE_TEST_SUITE_P(Runtimes, LifecycleTest, ::testing::Values("runc", "crun"), runtime_name);

}  // namespace
}  // namespace flotilla::runtime::oci::testing
