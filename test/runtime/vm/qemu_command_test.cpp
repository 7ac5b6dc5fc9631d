// qemu_argv: the command line a VM gets, and the specs it refuses.
#include "runtime/vm/qemu_command.hpp"

#include <algorithm>

#include <gtest/gtest.h>

namespace flotilla::runtime::vm {
namespace {

QemuCommand base_command() {
  QemuCommand c;
  c.binary = "/usr/bin/qemu-system-x86_64";
  c.name = "flotilla-web-1";
  c.disk = "disk.qcow2";
  c.qmp_socket = "qmp.sock";
  c.pid_file = "qemu.pid";
  return c;
}

// The value following `flag` in argv (the first occurrence), or "<absent>".
std::string after(const std::vector<std::string>& argv, const std::string& flag) {
  auto it = std::find(argv.begin(), argv.end(), flag);
  return it == argv.end() || it + 1 == argv.end() ? "<absent>" : *(it + 1);
}

bool has(const std::vector<std::string>& argv, const std::string& item) {
  return std::find(argv.begin(), argv.end(), item) != argv.end();
}

TEST(QemuCommandTest, DefaultsGiveAHeadlessVmWithSerialConsoleQmpAndDefaultMemory) {
  auto argv = qemu_argv(base_command());
  ASSERT_TRUE(argv) << argv.error().message();
  EXPECT_EQ((*argv)[0], "/usr/bin/qemu-system-x86_64");
  EXPECT_EQ(after(*argv, "-accel"), "tcg");
  EXPECT_EQ(after(*argv, "-smp"), "1");
  EXPECT_EQ(after(*argv, "-m"), "256M");
  EXPECT_EQ(after(*argv, "-serial"), "stdio");
  EXPECT_EQ(after(*argv, "-display"), "none");
  EXPECT_EQ(after(*argv, "-monitor"), "none");
  EXPECT_TRUE(has(*argv, "-nodefaults"));
  EXPECT_EQ(after(*argv, "-qmp"), "unix:qmp.sock,server=on,wait=off");
  EXPECT_EQ(after(*argv, "-pidfile"), "qemu.pid");
  EXPECT_EQ(after(*argv, "-netdev"), "user,id=n0");
  EXPECT_EQ(after(*argv, "-device"), "virtio-net-pci,netdev=n0");
  EXPECT_EQ(after(*argv, "-drive"), "file=disk.qcow2,format=qcow2,if=virtio");
  EXPECT_FALSE(has(*argv, "-kernel"));
}

TEST(QemuCommandTest, SpecValuesPortsAndDirectKernelBoot) {
  QemuCommand c = base_command();
  c.accel = "kvm";
  c.cpus = 2;
  c.memory_bytes = (512LL << 20) + 1;  // rounded up to whole MiB
  c.ports = {PortForward{"tcp", 8080, 80}, PortForward{"udp", 5353, 53, "127.0.0.2"}};
  c.kernel = "/boot/vmlinuz";
  c.initrd = "/boot/initrd.img";
  c.kernel_args = "console=ttyS0 root=/dev/vda";
  auto argv = qemu_argv(c);
  ASSERT_TRUE(argv) << argv.error().message();
  EXPECT_EQ(after(*argv, "-accel"), "kvm");
  EXPECT_EQ(after(*argv, "-smp"), "2");
  EXPECT_EQ(after(*argv, "-m"), "513M");
  EXPECT_EQ(after(*argv, "-netdev"),
            "user,id=n0,hostfwd=tcp:127.0.0.1:8080-:80,hostfwd=udp:127.0.0.2:5353-:53");
  EXPECT_EQ(after(*argv, "-kernel"), "/boot/vmlinuz");
  EXPECT_EQ(after(*argv, "-initrd"), "/boot/initrd.img");
  EXPECT_EQ(after(*argv, "-append"), "console=ttyS0 root=/dev/vda");
}

TEST(QemuCommandTest, TcgTranslationCacheSizeGoesIntoTheAccelOption) {
  QemuCommand c = base_command();
  c.tcg_translation_cache_mib = 32;
  auto argv = qemu_argv(c);
  ASSERT_TRUE(argv) << argv.error().message();
  EXPECT_EQ(after(*argv, "-accel"), "tcg,tb-size=32");
  c.accel = "kvm";  // KVM has no translation cache
  argv = qemu_argv(c);
  ASSERT_TRUE(argv) << argv.error().message();
  EXPECT_EQ(after(*argv, "-accel"), "kvm");
}

TEST(QemuCommandTest, AMachineComesWithAMatchingCpu) {
  QemuCommand c = base_command();
  auto argv = qemu_argv(c);
  ASSERT_TRUE(argv);
  EXPECT_FALSE(has(*argv, "-machine"));  // x86: QEMU's default pc machine
  c.machine = "virt";
  argv = qemu_argv(c);
  ASSERT_TRUE(argv) << argv.error().message();
  EXPECT_EQ(after(*argv, "-machine"), "virt");
  EXPECT_EQ(after(*argv, "-cpu"), "max");
  c.accel = "kvm";
  argv = qemu_argv(c);
  ASSERT_TRUE(argv);
  EXPECT_EQ(after(*argv, "-cpu"), "host");
}

TEST(QemuCommandTest, KernelWithoutDiskIsEnough) {
  QemuCommand c = base_command();
  c.disk.clear();
  c.kernel = "/boot/vmlinuz";
  auto argv = qemu_argv(c);
  ASSERT_TRUE(argv) << argv.error().message();
  EXPECT_FALSE(has(*argv, "-drive"));
}

TEST(QemuCommandTest, RefusesBadSpecsWithAClearReason) {
  struct Case {
    const char* name;
    void (*mutate)(QemuCommand&);
    const char* expected;
  };
  const Case cases[] = {
      {"no cpus", [](QemuCommand& c) { c.cpus = 0; }, "cpus 0 is outside 1..64"},
      {"tiny memory", [](QemuCommand& c) { c.memory_bytes = 1 << 20; }, "below the minimum"},
      {"bad accel", [](QemuCommand& c) { c.accel = "hvf"; }, "accel 'hvf' is unknown"},
      {"nothing to boot", [](QemuCommand& c) { c.disk.clear(); }, "neither a disk image"},
      {"initrd alone", [](QemuCommand& c) { c.initrd = "/x"; }, "an initrd without a kernel"},
      {"protocol",
       [](QemuCommand& c) {
         c.ports = {PortForward{"sctp", 1, 2}};
       },
       "sctp"},
      {"port 0",
       [](QemuCommand& c) {
         c.ports = {PortForward{"tcp", 0, 2}};
       },
       "port 0"},
      {"option injection",
       [](QemuCommand& c) {
         c.ports = {PortForward{"tcp", 1, 2, "127.0.0.1,smb=/"}};
       },
       "is not an IPv4 address"},
      {"duplicate",
       [](QemuCommand& c) {
         c.ports = {PortForward{"tcp", 80, 1}, PortForward{"tcp", 80, 2}};
       },
       "forwarded twice"},
      {"comma in kernel path", [](QemuCommand& c) { c.kernel = "/boot/a,b"; }, "has a comma"},
      {"comma in name", [](QemuCommand& c) { c.name = "a,b"; }, "has a comma"},
  };
  for (const Case& tc : cases) {
    QemuCommand c = base_command();
    tc.mutate(c);
    auto argv = qemu_argv(c);
    ASSERT_FALSE(argv) << tc.name;
    EXPECT_NE(argv.error().message().find(tc.expected), std::string::npos)
        << tc.name << ": " << argv.error().message();
  }
}

}  // namespace
}  // namespace flotilla::runtime::vm
