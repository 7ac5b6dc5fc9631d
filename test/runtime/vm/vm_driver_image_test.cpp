// VmDriver's prepare()/launch() when the disk image is not what the spec promised: nothing starts.
#include <fstream>

#include <gtest/gtest.h>

#include "common/fs.hpp"
#include "runtime/vm/vm_driver.hpp"
#include "test/support/peers.hpp"
#include "test/support/process.hpp"
#include "test/support/temp_dir.hpp"

namespace flotilla::runtime::vm {
namespace {

using namespace std::chrono_literals;
using flotilla::testing::eventually;
using flotilla::testing::TempDir;

TEST(VmDriverImageTest, ADigestMismatchFailsPrepareClearlyAndNothingStarts) {
  TempDir tmp;
  const std::string disk = tmp / "disk.raw";
  std::ofstream(disk) << "a disk that is not the one promised";
  const std::string promised(64, 'b');
  VmDriver driver(tmp / "root", FLOTILLA_SHIM_PATH);
  LaunchSpec spec;
  spec.type = "vm";
  spec.instance_id = "bad-disk";
  spec.vm.image = disk;
  spec.vm.sha256 = promised;

  Preparation p;
  ASSERT_TRUE(eventually(
      [&] {
        p = driver.prepare(spec);
        return p.state != Preparation::State::kInProgress;
      },
      10s));
  EXPECT_EQ(p.state, Preparation::State::kFailed);
  EXPECT_NE(p.message.find("digest mismatch"), std::string::npos) << p.message;
  EXPECT_NE(p.message.find("sha256:" + promised), std::string::npos) << p.message;
  EXPECT_NE(p.message.find("next attempt in"), std::string::npos) << p.message;

  auto handle = driver.launch(spec);
  ASSERT_FALSE(handle);
  EXPECT_NE(handle.error().message().find("Failed to launch VM 'bad-disk'"), std::string::npos)
      << handle.error().message();
  EXPECT_NE(handle.error().message().find("not on the node"), std::string::npos)
      << handle.error().message();
  EXPECT_TRUE(driver.recover().empty());
  EXPECT_FALSE(fs::exists(tmp / "root/vms/bad-disk"));
  EXPECT_FALSE(fs::exists(tmp / "root/shim/instances/bad-disk"));
  EXPECT_FALSE(fs::exists(tmp / ("root/images/sha256/" + promised)));
  EXPECT_FALSE(driver.qemu_pid("bad-disk"));
}

// A qcow2 image whose header names a backing file would have QEMU open that host path for the
// guest: prepare() refuses it, however well its digest matches.
TEST(VmDriverImageTest, AQcow2WithABackingFileIsRefusedAtPrepare) {
  const std::string qemu_img = flotilla::testing::find_executable("qemu-img");
  if (qemu_img.empty()) GTEST_SKIP() << "qemu-img is not installed";
  TempDir tmp;
  const std::string layered = tmp / "layered.qcow2";
  ASSERT_EQ(flotilla::testing::run_command({qemu_img, "create", "-q", "-f", "qcow2", "-F", "raw",
                                            "-b", "/etc/hostname", layered})
                .exit_code,
            0);
  auto digest = flotilla::testing::run_command({"/usr/bin/sha256sum", layered});
  ASSERT_EQ(digest.exit_code, 0);
  VmDriver driver(tmp / "root", FLOTILLA_SHIM_PATH);
  LaunchSpec spec;
  spec.type = "vm";
  spec.instance_id = "layered";
  spec.vm.image = layered;
  spec.vm.sha256 = digest.out.substr(0, 64);
  Preparation p;
  ASSERT_TRUE(eventually(
      [&] {
        p = driver.prepare(spec);
        return p.state != Preparation::State::kInProgress;
      },
      10s));
  EXPECT_EQ(p.state, Preparation::State::kFailed);
  EXPECT_NE(p.message.find("names a backing file"), std::string::npos) << p.message;
  auto handle = driver.launch(spec);
  ASSERT_FALSE(handle);
  EXPECT_NE(handle.error().message().find("names a backing file"), std::string::npos)
      << handle.error().message();
  EXPECT_FALSE(fs::exists(tmp / "root/vms/layered"));
}

TEST(VmDriverImageTest, ASpecWithoutImageOrKernelIsRefused) {
  TempDir tmp;
  VmDriver driver(tmp / "root", FLOTILLA_SHIM_PATH);
  LaunchSpec spec;
  spec.type = "vm";
  spec.instance_id = "empty";
  Preparation p = driver.prepare(spec);
  EXPECT_EQ(p.state, Preparation::State::kFailed);
  EXPECT_NE(p.message.find("no image or kernel"), std::string::npos) << p.message;
  auto handle = driver.launch(spec);
  ASSERT_FALSE(handle);
  EXPECT_NE(handle.error().message().find("no image or kernel"), std::string::npos);
}

// A launch cut short between creating the VM's folder and starting its shim (an agent crash)
// leaves a folder that recover() reports and cleanup() removes.
TEST(VmDriverImageTest, AnOrphanedVmFolderIsRecoveredAndCleanedUp) {
  TempDir tmp;
  ASSERT_TRUE(fs::make_dirs(tmp / "root/vms/orphan"));
  VmDriver driver(tmp / "root", FLOTILLA_SHIM_PATH);
  auto found = driver.recover();
  ASSERT_EQ(found.size(), 1u);
  EXPECT_EQ(found[0].instance_id, "orphan");
  EXPECT_EQ(found[0].pid, 0);
  EXPECT_EQ(found[0].type, "vm");
  EXPECT_NE(driver.observe(found[0]).state, RunState::kRunning);
  EXPECT_TRUE(driver.kill(found[0]));
  ASSERT_TRUE(driver.cleanup("orphan"));
  EXPECT_FALSE(fs::exists(tmp / "root/vms/orphan"));
  EXPECT_TRUE(driver.recover().empty());
}

TEST(VmDriverImageTest, ExecIsRefusedRatherThanRunOnTheHost) {
  TempDir tmp;
  VmDriver driver(tmp / "root", FLOTILLA_SHIM_PATH);
  auto code = driver.exec(Handle{"vm-1", 0, 0, "vm"}, {"true"}, std::chrono::seconds(1));
  ASSERT_FALSE(code);
  EXPECT_NE(code.error().message().find("exec probes are not supported for vm workloads"),
            std::string::npos);
}

}  // namespace
}  // namespace flotilla::runtime::vm
