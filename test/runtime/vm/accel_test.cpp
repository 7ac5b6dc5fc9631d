// detect_accel: KVM only with a usable /dev/kvm and a hardware backend, TCG otherwise, with the
// reason either way.
#include "runtime/vm/accel.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include "common/fs.hpp"
#include "test/support/temp_dir.hpp"

namespace flotilla::runtime::vm {
namespace {

using flotilla::testing::TempDir;

bool dev_kvm_opens() {
  int fd = ::open("/dev/kvm", O_RDWR | O_CLOEXEC);
  if (fd >= 0) ::close(fd);
  return fd >= 0;
}

TEST(AccelTest, NoDeviceMeansTcg) {
  TempDir tmp;
  AccelProbe probe = detect_accel(tmp / "no-kvm", tmp.path());
  EXPECT_EQ(probe.accel, "tcg");
  EXPECT_NE(probe.reason.find("cannot open"), std::string::npos) << probe.reason;
}

TEST(AccelTest, ANonKvmDeviceMeansTcg) {
  TempDir tmp;
  AccelProbe probe = detect_accel("/dev/null", tmp.path());
  EXPECT_EQ(probe.accel, "tcg");
  EXPECT_NE(probe.reason.find("API version"), std::string::npos) << probe.reason;
}

TEST(AccelTest, TheBackendModuleDecides) {
#if !defined(__x86_64__) && !defined(__i386__)
  GTEST_SKIP() << "only x86 KVM has backend modules (kvm_intel, kvm_amd, kvm_pvm)";
#endif
  if (!dev_kvm_opens()) GTEST_SKIP() << "/dev/kvm cannot be opened here";
  TempDir tmp;
  ASSERT_TRUE(fs::make_dirs(tmp / "pvm/kvm_pvm"));
  AccelProbe pvm = detect_accel("/dev/kvm", tmp / "pvm");
  EXPECT_EQ(pvm.accel, "tcg");
  EXPECT_NE(pvm.reason.find("kvm_pvm"), std::string::npos) << pvm.reason;

  ASSERT_TRUE(fs::make_dirs(tmp / "intel/kvm_intel"));
  AccelProbe intel = detect_accel("/dev/kvm", tmp / "intel");
  EXPECT_EQ(intel.accel, "kvm");
  EXPECT_NE(intel.reason.find("kvm_intel"), std::string::npos) << intel.reason;
}

TEST(AccelTest, QemuSystemNameFollowsTheHostArch) {
#if defined(__x86_64__)
  EXPECT_EQ(host_qemu_system_name(), "qemu-system-x86_64");
#elif defined(__aarch64__)
  EXPECT_EQ(host_qemu_system_name(), "qemu-system-aarch64");
#elif defined(__arm__)
  EXPECT_EQ(host_qemu_system_name(), "qemu-system-arm");  // not qemu-system-armv7l
#elif defined(__i386__)
  EXPECT_EQ(host_qemu_system_name(), "qemu-system-i386");
#else
  EXPECT_EQ(host_qemu_system_name().rfind("qemu-system-", 0), 0u);
#endif
}

}  // namespace
}  // namespace flotilla::runtime::vm
