// VmDriver against real QEMU booting a real (tiny) guest: the serial console in the shim's log,
// a port forward into the guest, an agent restart that re-finds the same QEMU, a graceful ACPI
// power-off, the base image untouched by the guest's writes, QMP quit, a SIGKILLed QEMU seen as
// exited, and the launch-to-console time against running the same QEMU command line by hand.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "common/fs.hpp"
#include "runtime/proc_stat.hpp"
#include "runtime/vm/qmp_client.hpp"
#include "runtime/vm/vm_driver.hpp"
#include "test/runtime/vm/guest.hpp"
#include "test/support/peers.hpp"
#include "test/support/process.hpp"
#include "test/support/temp_dir.hpp"

namespace flotilla::runtime::vm {
namespace {

using namespace std::chrono_literals;
using flotilla::testing::eventually;
using flotilla::testing::find_executable;
using flotilla::testing::free_port;
using flotilla::testing::run_command;
using flotilla::testing::TempDir;
using testing::file_contains;
using testing::Guest;
using testing::kGuestUpMarker;
using testing::sha256_of;

constexpr auto kBootTimeout = 90s;  // TCG on a loaded 2-core machine
constexpr int64_t kGuestRam = 256LL << 20;

class VmGuestTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (find_executable("qemu-system-x86_64").empty() || find_executable("qemu-img").empty()) {
      GTEST_SKIP() << "qemu-system-x86_64 / qemu-img are not installed";
    }
    std::string why;
    guest_ = testing::build_guest(tmp_ / "guest", &why);
    if (guest_.kernel.empty()) GTEST_SKIP() << "cannot build the test guest: " << why;
    base_ = tmp_ / "base.raw";
    std::ofstream(base_, std::ios::binary).write(std::string(4 << 20, '\0').data(), 4 << 20);
    base_sha_ = sha256_of(base_);
    ASSERT_EQ(base_sha_.size(), 64u);
    root_ = tmp_ / "vm-root";
  }

  void TearDown() override {
    VmDriver driver(root_, FLOTILLA_SHIM_PATH);
    for (const Handle& h : driver.recover()) (void)driver.kill(h);
  }

  LaunchSpec spec(const std::string& id, int host_port = 0) const {
    LaunchSpec s;
    s.type = "vm";
    s.instance_id = id;
    s.workload = "guest";
    s.vm.image = base_;
    s.vm.sha256 = base_sha_;
    s.vm.kernel = guest_.kernel;
    s.vm.initrd = guest_.initrd;
    s.vm.kernel_args = guest_.kernel_args;
    if (host_port != 0) {
      s.vm.ports.push_back(PortForward{"tcp", static_cast<uint16_t>(host_port),
                                       static_cast<uint16_t>(testing::kGuestHttpPort)});
    }
    return s;
  }

  static void prepare_ok(VmDriver& driver, const LaunchSpec& s) {
    Preparation p;
    ASSERT_TRUE(eventually(
        [&] {
          p = driver.prepare(s);
          return p.state != Preparation::State::kInProgress;
        },
        30s));
    ASSERT_TRUE(p.ready()) << p.message;
  }

  static Observation wait_exited(VmDriver& driver, const Handle& h, std::chrono::seconds limit) {
    Observation last;
    eventually(
        [&] {
          last = driver.observe(h);
          return last.state != RunState::kRunning;
        },
        limit);
    return last;
  }

  TempDir tmp_;
  Guest guest_;  // built under tmp_/guest
  std::string base_, base_sha_, root_;
};

double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

// kB of "<field>:" summed over a smaps-style file (all mappings, or one when rollup).
int64_t smaps_kb(const std::string& text, const std::string& field) {
  int64_t total = 0;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(field + ":", 0) == 0) total += std::stoll(line.substr(field.size() + 1));
  }
  return total;
}

// The PSS of the mapping that holds the guest's RAM: the one anonymous mapping of at least its
// size (QEMU adds alignment), in kB.
int64_t guest_ram_pss_kb(int64_t pid, int64_t ram_bytes) {
  auto text = fs::read_file("/proc/" + std::to_string(pid) + "/smaps");
  if (!text) return -1;
  std::istringstream in(*text);
  std::string line;
  int64_t size_kb = 0;
  int64_t best = -1;
  while (std::getline(in, line)) {
    if (line.rfind("Size:", 0) == 0) size_kb = std::stoll(line.substr(5));
    if (line.rfind("Pss:", 0) == 0 && size_kb >= ram_bytes / 1024 &&
        size_kb <= ram_bytes / 1024 + 8 * 1024) {
      best = std::max<int64_t>(best, std::stoll(line.substr(4)));
    }
  }
  return best;
}

// The image and the initrd come over HTTP from a local server (the initrd with its digest in the
// URL), through fetch_to_file into the cache; the rest of the tests use local paths.
TEST_F(VmGuestTest, BootsServesRecoversPowersOffAndLeavesTheBaseImageUntouched) {
  const std::string python = find_executable("python3");
  if (python.empty()) GTEST_SKIP() << "python3 (the test's HTTP server) is not installed";
  const int http_port = free_port();
  flotilla::testing::ChildProcess http;
  http.start({python, "-m", "http.server", "--bind", "127.0.0.1", std::to_string(http_port),
              "--directory", tmp_.path()},
             tmp_ / "http.log");
  ASSERT_TRUE(flotilla::testing::wait_for_port(http_port, 10s)) << http.log();
  const std::string served = "http://127.0.0.1:" + std::to_string(http_port) + "/";

  const int port = free_port();
  LaunchSpec s = spec("web-1", port);
  s.vm.image = served + "base.raw";
  s.vm.initrd = served + "guest/initramfs.cpio#sha256=" + sha256_of(guest_.initrd);
  Handle handle;
  int64_t qemu = 0;
  {
    VmDriver driver(root_, FLOTILLA_SHIM_PATH);
    prepare_ok(driver, s);
    auto launched = driver.launch(s);
    ASSERT_TRUE(launched) << launched.error().message();
    handle = *launched;
    EXPECT_EQ(handle.type, "vm");
    const std::string console = driver.log_path("web-1", false);
    ASSERT_TRUE(eventually([&] { return file_contains(console, kGuestUpMarker); }, kBootTimeout))
        << "serial console:\n"
        << testing::read_or_empty(console) << "\nQEMU stderr:\n"
        << testing::read_or_empty(driver.log_path("web-1", true));
    Observation running = driver.observe(handle);
    EXPECT_EQ(running.state, RunState::kRunning) << running.message;
    EXPECT_EQ(running.message, "running");  // QMP says the guest runs (not paused)
    auto pid = driver.qemu_pid("web-1");
    ASSERT_TRUE(pid);
    qemu = *pid;
    auto stat = read_proc_stat(qemu);
    ASSERT_TRUE(stat);
    EXPECT_EQ(stat->ppid, handle.pid);  // QEMU runs under the shim
    EXPECT_TRUE(fs::exists(driver.qmp_socket("web-1")));
    EXPECT_NE(fs::read_file("/proc/" + std::to_string(qemu) + "/cmdline")
                  ->find("hostfwd=tcp:127.0.0.1:" + std::to_string(port) + "-:8080"),
              std::string::npos);

    std::string response;
    EXPECT_TRUE(eventually(
        [&] {
          response = testing::http_get(port);
          return response.find(testing::kWebMarker) != std::string::npos;
        },
        30s))
        << "last response: " << response;
  }  // the agent goes away; the VM does not

  VmDriver restarted(root_, FLOTILLA_SHIM_PATH);
  auto found = restarted.recover();
  ASSERT_EQ(found.size(), 1u);
  EXPECT_EQ(found[0].instance_id, "web-1");
  EXPECT_EQ(found[0].pid, handle.pid);
  EXPECT_EQ(found[0].start_ticks, handle.start_ticks);
  EXPECT_EQ(found[0].type, "vm");
  EXPECT_EQ(restarted.qemu_pid("web-1"), qemu);
  EXPECT_EQ(restarted.observe(found[0]).state, RunState::kRunning);
  constexpr int kObserves = 20;  // the agent observes every instance on each loop tick
  auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < kObserves; ++i) {
    EXPECT_EQ(restarted.observe(found[0]).message, "running");  // QMP reconnected each time
  }
  std::printf("[ measure ] observe() with a QMP query-status: %.2f ms per call\n",
              seconds_since(t0) * 1000 / kObserves);

  // QMP's view of the guest shows in observe(): pause it behind the driver's back.
  auto pause = [&](const char* command) {
    auto qmp = QmpClient::connect(restarted.qmp_socket("web-1"), 5s);
    ASSERT_TRUE(qmp) << qmp.error().message();
    auto reply = (*qmp)->execute(command);
    ASSERT_TRUE(reply) << reply.error().message();
  };  // the client closes here: QMP serves one at a time
  pause("stop");
  EXPECT_EQ(restarted.observe(found[0]).message, "running (guest paused)");
  pause("cont");
  EXPECT_EQ(restarted.observe(found[0]).message, "running");

  // Graceful stop: the ACPI power button, which the guest answers by powering off.
  ASSERT_TRUE(restarted.terminate(found[0]));
  Observation stopped = wait_exited(restarted, found[0], 60s);
  EXPECT_EQ(stopped.state, RunState::kExited) << stopped.message;
  EXPECT_EQ(stopped.signal, 0);
  EXPECT_EQ(stopped.exit_code, 0);
  EXPECT_NE(stopped.message.find("system_powerdown"), std::string::npos) << stopped.message;
  const std::string console = restarted.log_path("web-1", false);
  EXPECT_TRUE(file_contains(console, testing::kPoweringOffMarker));

  // The guest's write went to its overlay; the base image is as it was.
  const std::string overlay = root_ + "/vms/web-1/disk.qcow2";
  EXPECT_TRUE(file_contains(overlay, testing::kDiskMarker));
  const std::string cached = root_ + "/images/sha256/" + base_sha_;
  EXPECT_EQ(sha256_of(cached), base_sha_);
  EXPECT_FALSE(file_contains(cached, testing::kDiskMarker));
  EXPECT_EQ(sha256_of(base_), base_sha_);

  ASSERT_TRUE(restarted.cleanup("web-1"));
  EXPECT_FALSE(fs::exists(overlay));
  EXPECT_FALSE(fs::exists(restarted.qmp_socket("web-1")));
  EXPECT_TRUE(file_contains(console, kGuestUpMarker));  // the serial log is kept
  EXPECT_TRUE(restarted.recover().empty());
}

TEST_F(VmGuestTest, KillQuitsQemuThroughQmp) {
  VmDriver driver(root_, FLOTILLA_SHIM_PATH);
  const LaunchSpec s = spec("quit-1");
  prepare_ok(driver, s);
  auto handle = driver.launch(s);
  ASSERT_TRUE(handle) << handle.error().message();
  // QEMU answers QMP once its main loop runs (after loading the kernel): wait for that.
  ASSERT_TRUE(
      eventually([&] { return QmpClient::connect(driver.qmp_socket("quit-1"), 1s).ok(); }, 30s));
  ASSERT_TRUE(driver.kill(*handle));
  Observation obs = wait_exited(driver, *handle, 30s);
  EXPECT_EQ(obs.state, RunState::kExited);
  EXPECT_EQ(obs.signal, 0);
  EXPECT_EQ(obs.exit_code, 0);
  EXPECT_NE(obs.message.find("after QMP quit"), std::string::npos) << obs.message;
  EXPECT_TRUE(driver.cleanup("quit-1"));
}

// A host port that is taken makes QEMU exit at once; observe() passes on QEMU's reason.
TEST_F(VmGuestTest, AHostPortInUseEndsTheVmWithQemusReason) {
  int taken = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(taken, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  ASSERT_EQ(::bind(taken, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(::listen(taken, 1), 0);
  ASSERT_EQ(::getsockname(taken, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  const int port = ntohs(addr.sin_port);

  VmDriver driver(root_, FLOTILLA_SHIM_PATH);
  const LaunchSpec s = spec("port-clash", port);
  prepare_ok(driver, s);
  auto handle = driver.launch(s);
  ASSERT_TRUE(handle) << handle.error().message();
  Observation obs = wait_exited(driver, *handle, 30s);
  ::close(taken);
  EXPECT_EQ(obs.state, RunState::kExited);
  EXPECT_NE(obs.exit_code, 0);
  EXPECT_NE(obs.message.find("host forwarding rule 'tcp:127.0.0.1:" + std::to_string(port)),
            std::string::npos)
      << obs.message;
  EXPECT_TRUE(driver.cleanup("port-clash"));
}

// Times launch -> guest marker on the console through the driver and for the same QEMU command
// line started by hand (alternating, kRounds each, medians compared: the machine is shared);
// measures QEMU's memory beyond the guest's RAM; and SIGKILLs one QEMU behind the driver's back.
TEST_F(VmGuestTest, LaunchToConsoleAgainstBareQemuThenQemuKilled) {
  constexpr int kRounds = 3;
  VmDriver driver(root_, FLOTILLA_SHIM_PATH);
  std::vector<double> driver_s, bare_s, launch_ms;
  int64_t pss_kb = 0, ram_pss_kb = 0, shim_pss_kb = 0;
  for (int round = 0; round < kRounds; ++round) {
    const std::string id = "timed-" + std::to_string(round);
    const LaunchSpec s = spec(id);
    prepare_ok(driver, s);
    auto t0 = std::chrono::steady_clock::now();
    auto handle = driver.launch(s);
    ASSERT_TRUE(handle) << handle.error().message();
    launch_ms.push_back(seconds_since(t0) * 1000);  // qemu-img overlay + shim start
    const std::string console = driver.log_path(id, false);
    ASSERT_TRUE(eventually([&] { return file_contains(console, kGuestUpMarker); }, kBootTimeout));
    driver_s.push_back(seconds_since(t0));
    auto qemu = driver.qemu_pid(id);
    ASSERT_TRUE(qemu);

    if (round == 0) {
      const std::string proc = "/proc/" + std::to_string(*qemu);
      pss_kb = smaps_kb(testing::read_or_empty(proc + "/smaps_rollup"), "Pss");
      ram_pss_kb = guest_ram_pss_kb(*qemu, kGuestRam);
      shim_pss_kb = smaps_kb(
          testing::read_or_empty("/proc/" + std::to_string(handle->pid) + "/smaps_rollup"), "Pss");
      EXPECT_GT(pss_kb, 0);
      EXPECT_GT(ram_pss_kb, 0);

      // QEMU killed behind the driver's back: observe() says the VM exited, and why.
      ASSERT_EQ(::kill(static_cast<pid_t>(*qemu), SIGKILL), 0);
      Observation obs = wait_exited(driver, *handle, 10s);
      EXPECT_EQ(obs.state, RunState::kExited);
      EXPECT_EQ(obs.signal, SIGKILL);
      EXPECT_NE(obs.message.find("signal 9"), std::string::npos) << obs.message;
      EXPECT_FALSE(driver.qemu_pid(id));
    } else {
      ASSERT_TRUE(driver.kill(*handle));
      EXPECT_EQ(wait_exited(driver, *handle, 10s).state, RunState::kExited);
    }
    ASSERT_TRUE(driver.cleanup(id));

    // The same command line by hand, in a folder laid out like the driver's.
    auto argv = driver.command_for(s);
    ASSERT_TRUE(argv);
    const std::string bare = tmp_ / ("bare-" + std::to_string(round));
    ASSERT_TRUE(fs::make_dirs(bare));
    auto made =
        run_command({find_executable("qemu-img"), "create", "-q", "-f", "qcow2", "-F", "raw", "-b",
                     root_ + "/images/sha256/" + base_sha_, bare + "/disk.qcow2"});
    ASSERT_EQ(made.exit_code, 0) << made.err;
    std::vector<std::string> by_hand = {find_executable("sh"), "-c", "cd \"$0\" && exec \"$@\"",
                                        bare};
    by_hand.insert(by_hand.end(), argv->begin(), argv->end());
    auto t1 = std::chrono::steady_clock::now();
    flotilla::testing::ChildProcess qemu_by_hand;
    qemu_by_hand.start(by_hand, bare + "/console.log");
    ASSERT_TRUE(eventually([&] { return file_contains(bare + "/console.log", kGuestUpMarker); },
                           kBootTimeout));
    bare_s.push_back(seconds_since(t1));
    qemu_by_hand.kill9();
  }

  std::sort(driver_s.begin(), driver_s.end());
  std::sort(bare_s.begin(), bare_s.end());
  std::sort(launch_ms.begin(), launch_ms.end());
  const double driver_median = driver_s[kRounds / 2], bare_median = bare_s[kRounds / 2];
  std::printf(
      "[ measure ] accel=%s launch->console over %d rounds: driver median %.2f s (%.2f..%.2f), "
      "by hand median %.2f s (%.2f..%.2f), ratio %.2f\n"
      "[ measure ] launch() itself (overlay + shim): median %.1f ms\n"
      "[ measure ] QEMU PSS %lld KiB, of which guest RAM mapping %lld KiB (guest %lld MiB): "
      "overhead %lld KiB; shim PSS %lld KiB\n",
      driver.accel().accel.c_str(), kRounds, driver_median, driver_s.front(), driver_s.back(),
      bare_median, bare_s.front(), bare_s.back(), driver_median / bare_median,
      launch_ms[kRounds / 2], static_cast<long long>(pss_kb), static_cast<long long>(ram_pss_kb),
      static_cast<long long>(kGuestRam >> 20), static_cast<long long>(pss_kb - ram_pss_kb),
      static_cast<long long>(shim_pss_kb));
  RecordProperty("driver_launch_to_console_ms", static_cast<int>(driver_median * 1000));
  RecordProperty("bare_launch_to_console_ms", static_cast<int>(bare_median * 1000));
  RecordProperty("qemu_pss_overhead_kib", static_cast<int>(pss_kb - ram_pss_kb));
}

}  // namespace
}  // namespace flotilla::runtime::vm
