// What a container sees is what its spec says: args, env, workdir, user, mounts, root
// filesystem, network, and the cgroup limits (memory with OOM reporting, pids, cpu).
#include <sys/stat.h>

#include <fstream>
#include <sstream>

#include "test/runtime/oci/oci_test_fixture.hpp"

namespace flotilla::runtime::oci::testing {
namespace {

using SpecTest = ContainerTest;

TEST_P(SpecTest, EnvArgsWorkdirAndUserAreWhatTheSpecSays) {
  image::UnpackedImage app;
  app.rootfs = rootfs_;
  app.config.entrypoint = {"/bin/sh", "-c"};
  app.config.cmd = {"echo image cmd"};
  app.config.env = {"PATH=/bin", "FROM_IMAGE=image", "OVERRIDDEN=image"};
  app.config.workdir = "/tmp";
  app.config.user = "app";
  images_.add("app:1", app);

  // The image's entrypoint, cmd, workdir and user as they are.
  LaunchSpec s = spec("defaults", {});
  s.container.image = "app:1";
  EXPECT_EQ(run_to_end(s), "image cmd\n");

  // args replace CMD (the entrypoint stays); env overrides the image's; user by number.
  s = spec("overrides", {},
           {"echo \"$FROM_IMAGE $OVERRIDDEN $FROM_SPEC $HOME\"; pwd; id -u; id -g"});
  s.container.image = "app:1";
  s.env = {{"OVERRIDDEN", "spec"}, {"FROM_SPEC", "yes"}};
  s.container.workdir = "/srv";
  s.container.user = "1234:4321";
  EXPECT_EQ(run_to_end(s), "image spec yes /\n/srv\n1234\n4321\n");

  // The image's user by name, its workdir, its HOME from /etc/passwd.
  s = spec("image-user", {}, {"id -u; id -g; pwd; echo $HOME"});
  s.container.image = "app:1";
  EXPECT_EQ(run_to_end(s), "1000\n1000\n/tmp\n/home/app\n");

  // command replaces ENTRYPOINT and, without args, CMD too; name:group resolved.
  s = spec("command-only", {"/bin/echo", "only", "command"});
  s.container.image = "app:1";
  s.container.user = "app:staff";
  EXPECT_EQ(run_to_end(s), "only command\n");
  s = spec("command-args", {"/bin/echo"}, {"a", "b"});
  s.container.image = "app:1";
  EXPECT_EQ(run_to_end(s), "a b\n");

  s = spec("nobody-here", {"true"});
  s.container.user = "ghost";
  auto h = driver_->launch(s);
  ASSERT_FALSE(h);
  EXPECT_NE(h.error().message().find("no user 'ghost'"), std::string::npos) << h.error().message();
}

TEST_P(SpecTest, ReadOnlyRootRejectsWritesAndAWritableRootLeavesTheImageAlone) {
  LaunchSpec s = spec("ro", {"sh", "-c", "touch /written && echo wrote || echo refused"});
  s.container.read_only_root = true;
  EXPECT_EQ(run_to_end(s), "refused\n");
  EXPECT_NE(err("ro").find("Read-only file system"), std::string::npos) << err("ro");

  s = spec("rw", {"sh", "-c", "touch /written && echo wrote; rm /bin/cat && echo removed"});
  EXPECT_EQ(run_to_end(s), "wrote\nremoved\n");
  EXPECT_FALSE(std::filesystem::exists(rootfs_ + "/written"));  // the shared image is untouched
  EXPECT_TRUE(std::filesystem::is_symlink(rootfs_ + "/bin/cat"));
  for (const char* created : {"/proc", "/dev", "/sys"}) {
    EXPECT_FALSE(std::filesystem::exists(rootfs_ + created)) << created;
  }
}

TEST_P(SpecTest, ARootfsOverlayfsCannotTakeIsCopied) {
  // overlayfs cannot take a lower folder with ',' in its path: the instance gets a copy.
  std::string odd = tmp_.path() + "/odd,name";
  std::string why;
  ASSERT_FALSE(build_busybox_rootfs(odd, &why).empty()) << why;
  image::UnpackedImage image;
  image.rootfs = odd;
  images_.add("odd:1", image);
  LaunchSpec s = spec("copied", {"sh", "-c", "echo hi > /tmp/x && cat /tmp/x && ls /etc/passwd"});
  s.container.image = "odd:1";
  auto h = driver_->launch(s);
  ASSERT_TRUE(h) << h.error().message();
  EXPECT_FALSE(is_mount_point(driver_->bundle_dir("copied") + "/rootfs"));
  ASSERT_EQ(wait_exited(*h).state, RunState::kExited);
  EXPECT_EQ(out("copied"), "hi\n/etc/passwd\n");
  EXPECT_FALSE(std::filesystem::exists(odd + "/tmp/x"));
  ASSERT_TRUE(driver_->cleanup("copied"));
  EXPECT_FALSE(std::filesystem::exists(driver_->bundle_dir("copied")));
}

TEST_P(SpecTest, BindMountsHonourReadOnly) {
  std::string rw = tmp_.path() + "/rw", ro = tmp_.path() + "/ro";
  ASSERT_TRUE(fs::make_dirs(rw));
  ASSERT_TRUE(fs::make_dirs(ro));
  ASSERT_TRUE(fs::write_atomic(ro + "/input", "from host\n"));
  LaunchSpec s = spec("mounts", {"sh", "-c",
                                 "cat /in/input; echo out > /out/file && echo wrote; "
                                 "echo no > /in/file && echo wrote-ro || echo refused"});
  s.container.mounts = {{ro, "/in", true}, {rw, "/out", false}};
  EXPECT_EQ(run_to_end(s), "from host\nwrote\nrefused\n");
  EXPECT_EQ(read_or_empty(rw + "/file"), "out\n");
  EXPECT_FALSE(std::filesystem::exists(ro + "/file"));
}

TEST_P(SpecTest, HostNetworkByDefaultAndOnlyLoopbackWhenPrivate) {
  // Interface names as /proc/net/dev lists them (the counters move with other traffic).
  std::string host_ifaces;
  std::istringstream dev(read_or_empty("/proc/net/dev"));
  std::string line;
  for (int n = 0; std::getline(dev, line); ++n) {
    if (n < 2 || line.find(':') == std::string::npos) continue;
    std::string name = line.substr(0, line.find(':'));
    name.erase(0, name.find_first_not_of(' '));
    host_ifaces += name + "\n";
  }
  const std::string list = "tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' '";
  EXPECT_EQ(run_to_end(spec("hostnet", {"sh", "-c", list})), host_ifaces);

  LaunchSpec s = spec("privnet", {"sh", "-c", list});
  s.container.host_network = false;
  EXPECT_EQ(run_to_end(s), "lo\n");
}

TEST_P(SpecTest, AContainerPastItsMemoryLimitIsReportedOOMKilled) {
  LaunchSpec s = spec("hungry", {"tail", "/dev/zero"});  // tail buffers the endless "line"
  s.memory_bytes = 32 * 1024 * 1024;
  auto h = driver_->launch(s);
  ASSERT_TRUE(h) << h.error().message();
  Observation o = wait_exited(*h, std::chrono::seconds(20));
  ASSERT_EQ(o.state, RunState::kExited) << o.message;
  EXPECT_EQ(o.exit_code, 137);
  EXPECT_NE(o.message.find("OOMKilled"), std::string::npos) << o.message;
}

TEST_P(SpecTest, PidsLimitIsEnforced) {
  // An inner shell starts up to 50 sleeps and dies at its first failed fork; the outer one then
  // counts the container's processes with builtins only (a fork could fail too).
  LaunchSpec s = spec("forky", {"sh", "-c",
                                "sh -c 'i=0; while [ $i -lt 50 ]; do sleep 30 & i=$((i+1)); done'; "
                                "n=0; for p in /proc/[0-9]*; do n=$((n+1)); done; echo procs $n"});
  s.container.pids_limit = 8;
  std::string output = run_to_end(s);
  EXPECT_NE(err("forky").find("can't fork"), std::string::npos) << err("forky");
  int procs = 0;
  ASSERT_EQ(std::sscanf(output.c_str(), "procs %d", &procs), 1) << output;
  EXPECT_LE(procs, 8);
  EXPECT_GE(procs, 2);
}

TEST_P(SpecTest, CpuAndMemoryLimitsReachTheCgroup) {
  LaunchSpec s = spec("limited", {"sleep", "300"});
  s.cpu_millis = 250;
  s.memory_bytes = 64 * 1024 * 1024;
  auto h = driver_->launch(s);
  ASSERT_TRUE(h) << h.error().message();
  auto memory = memory_of("limited");
  ASSERT_TRUE(memory);
  if (memory->v2) {
    EXPECT_EQ(read_or_empty(memory->dir + "/memory.max"), "67108864\n");
    EXPECT_EQ(read_or_empty(memory->dir + "/cpu.max"), "25000 100000\n");
  } else {
    EXPECT_EQ(read_or_empty(memory->dir + "/memory.limit_in_bytes"), "67108864\n");
    // The cpu hierarchy holds the container at the same path below this process's cgroup.
    auto cpu_dir = std::string("/sys/fs/cgroup/cpu") +
                   memory->dir.substr(memory->dir.find("/" + cgroup_parent_ + "/"));
    auto own = read_or_empty("/proc/self/cgroup");
    if (own.find(":cpu:/\n") != std::string::npos ||
        own.find(":cpu,cpuacct:/\n") != std::string::npos) {
      EXPECT_EQ(read_or_empty(cpu_dir + "/cpu.cfs_quota_us"), "25000\n") << cpu_dir;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Runtimes, SpecTest, ::testing::Values("runc", "crun"), runtime_name);

}  // namespace
}  // namespace flotilla::runtime::oci::testing
