// VM workloads end to end: real mosquitto, hub and agent, and QEMU booting a tiny guest (the
// host's Debian kernel and a busybox initramfs built by the test) whose web server a port forward
// and a readiness probe reach.
#include <signal.h>

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "common/fs.hpp"
#include "test/integration/fleet.hpp"
#include "test/runtime/vm/guest.hpp"

namespace flotilla::testing {
namespace {

namespace guest = flotilla::runtime::vm::testing;

const std::vector<std::string> kNode = {"n1"};
constexpr auto kBootTimeout = 120s;  // TCG on a loaded 2-core machine

// A live child of `parent` whose command name starts with `prefix`; 0 when there is none.
pid_t child_named(pid_t parent, const std::string& prefix) {
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator("/proc", ec)) {
    std::string name = entry.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream in(entry.path() / "stat");
    std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    auto open = stat.find('('), close = stat.rfind(')');
    if (open == std::string::npos || close == std::string::npos) continue;
    std::istringstream rest(stat.substr(close + 2));
    char state = 0;
    pid_t ppid = 0;
    rest >> state >> ppid;
    if (ppid == parent && state != 'Z' && stat.compare(open + 1, prefix.size(), prefix) == 0) {
      return static_cast<pid_t>(std::stoi(name));
    }
  }
  return 0;
}

TEST(VmFleet, BootsProbesAdoptsAndPowersOff) {
  if (find_executable("qemu-system-x86_64").empty() || find_executable("qemu-img").empty()) {
    GTEST_SKIP() << "qemu-system-x86_64 / qemu-img are not installed";
  }
  Fleet fleet;
  std::string why;
  guest::Guest g = guest::build_guest(fleet.dir() / "guest", &why);
  if (g.kernel.empty()) GTEST_SKIP() << "cannot build the test guest: " << why;
  const std::string disk = fleet.dir() / "disk.raw";
  std::ofstream(disk, std::ios::binary).write(std::string(1 << 20, '\0').data(), 1 << 20);
  const std::string disk_sha = guest::sha256_of(disk);
  const int http_port = free_port();

  fleet.start_hub();
  fleet.start_agent("n1");
  ASSERT_TRUE(eventually([&] { return fleet.all_ready(kNode); }, 15s)) << fleet.dump_logs();
  json node = fleet.get("node", "n1");
  ASSERT_TRUE(node.dump().find("\"vm\"") != std::string::npos) << node.dump(2);

  std::string manifest = R"(apiVersion: flotilla/v1
kind: Workload
metadata: {name: appliance}
spec:
  type: vm
  placement: {everyNode: true}
  terminationGracePeriodSeconds: 60
  vm:
    image: )" + disk + R"(
    sha256: )" + disk_sha +
                         R"(
    memory: 256Mi
    ports: [{host: )" + std::to_string(http_port) +
                         R"(, guest: 8080}]
    kernel: )" + g.kernel +
                         R"(
    initrd: )" + g.initrd +
                         R"(
    kernelArgs: ")" + g.kernel_args +
                         R"("
  probes:
    readiness:
      httpGet: {path: /, port: )" +
                         std::to_string(http_port) +
                         R"(}
      periodSeconds: 1
)";
  ASSERT_EQ(fleet.apply(manifest).exit_code, 0);
  auto instance = [&] {
    auto all = fleet.instances("appliance");
    return all.size() == 1 ? all.begin()->second : json::object();
  };
  // Booted: the guest's marker is on the serial console, and its web server, reached through
  // the port forward, makes the readiness probe pass.
  ASSERT_TRUE(eventually([&] { return instance().value("ready", false); }, kBootTimeout))
      << fleet.get("workload", "appliance").dump(2) << fleet.dump_logs();
  const std::string id = instance()["instanceId"];
  const std::string console = fleet.dir() / ("agent-n1/runtime/vm/shim/logs/" + id + "/stdout.log");
  EXPECT_TRUE(guest::file_contains(console, guest::kGuestUpMarker))
      << guest::read_or_empty(console);
  EXPECT_EQ(instance()["phase"], "Running");

  // QEMU killed: the agent restarts the VM (restartPolicy Always), which boots again.
  auto qemu_of = [](int64_t shim_pid) -> pid_t {
    return child_named(static_cast<pid_t>(shim_pid), "qemu-system");
  };
  pid_t qemu = qemu_of(instance()["pid"]);
  ASSERT_GT(qemu, 0) << "no qemu-system under the instance's shim";
  ASSERT_EQ(::kill(qemu, SIGKILL), 0);
  ASSERT_TRUE(eventually(
      [&] {
        json i = instance();
        return i.value("restarts", 0) == 1 && i.value("ready", false) &&
               qemu_of(i.value("pid", int64_t{0})) > 0;
      },
      kBootTimeout))
      << fleet.get("workload", "appliance").dump(2);

  // kill -9 of the agent and a new one: the same QEMU is adopted.
  const int64_t shim = instance()["pid"];
  const pid_t qemu_before = qemu_of(shim);
  fleet.kill9_agent("n1");
  fleet.start_agent("n1");
  ASSERT_TRUE(eventually([&] { return fleet.all_ready(kNode); }, 15s));
  std::this_thread::sleep_for(1s);
  EXPECT_EQ(instance()["pid"], shim);
  EXPECT_EQ(instance()["phase"], "Running");
  EXPECT_TRUE(pid_alive(static_cast<pid_t>(shim)));
  EXPECT_EQ(qemu_of(shim), qemu_before) << "QEMU was replaced";
  EXPECT_EQ(instance().value("restarts", -1), 1);

  // Deleted: an ACPI power-off the guest acts on, then nothing of it is left.
  ASSERT_EQ(fleet.flotctl({"delete", "workload", "appliance"}).exit_code, 0);
  ASSERT_TRUE(eventually([&] { return !pid_alive(static_cast<pid_t>(shim)); }, 60s))
      << fleet.dump_logs();
  EXPECT_TRUE(guest::file_contains(console, guest::kPoweringOffMarker))
      << "the guest was not powered off gracefully: " << guest::read_or_empty(console);
  EXPECT_EQ(guest::sha256_of(disk), disk_sha) << "the base image was written to";
}

}  // namespace
}  // namespace flotilla::testing
