// Disk image formats: raw and qcow2 are told apart, and qcow2 images that would make QEMU open
// host files (backing or external data files) are refused.
#include "runtime/vm/disk_format.hpp"

#include <fstream>
#include <string>

#include <gtest/gtest.h>

#include "test/support/peers.hpp"
#include "test/support/process.hpp"
#include "test/support/temp_dir.hpp"

namespace flotilla::runtime::vm {
namespace {

using flotilla::testing::find_executable;
using flotilla::testing::run_command;
using flotilla::testing::TempDir;

// A qcow2 header of `version` with big-endian fields set at their offsets.
std::string qcow2_header(uint32_t version) {
  std::string h(kDiskHeaderBytes, '\0');
  h.replace(0, 4, std::string("QFI\xfb", 4));
  h[7] = static_cast<char>(version);
  h[23] = 16;  // cluster_bits
  return h;
}

TEST(DiskFormatTest, RawAndCleanQcow2AreRecognised) {
  EXPECT_EQ(*parse_disk_header(std::string(512, '\0')), "raw");
  EXPECT_EQ(*parse_disk_header(""), "raw");
  EXPECT_EQ(*parse_disk_header(qcow2_header(2)), "qcow2");
  EXPECT_EQ(*parse_disk_header(qcow2_header(3)), "qcow2");
}

TEST(DiskFormatTest, DangerousOrBrokenQcow2IsRefusedWithAReason) {
  std::string backing = qcow2_header(3);
  backing[15] = 0x70;  // backing_file_offset
  std::string external = qcow2_header(3);
  external[79] = 0x04;  // incompatible feature: external data file
  std::string encrypted = qcow2_header(2);
  encrypted[35] = 1;
  const std::pair<std::string, std::string> cases[] = {
      {backing, "names a backing file"},
      {external, "external file"},
      {encrypted, "encrypted"},
      {qcow2_header(9), "version 9"},
      {qcow2_header(2).substr(0, 40), "truncated"},
      {qcow2_header(3).substr(0, 80), "truncated"},
  };
  for (const auto& [head, expected] : cases) {
    auto format = parse_disk_header(head);
    ASSERT_FALSE(format) << expected;
    EXPECT_NE(format.error().message().find(expected), std::string::npos)
        << format.error().message();
  }
}

TEST(DiskFormatTest, ImagesMadeByQemuImg) {
  const std::string qemu_img = find_executable("qemu-img");
  if (qemu_img.empty()) GTEST_SKIP() << "qemu-img is not installed";
  TempDir tmp;
  const std::string raw = tmp / "base.raw";
  std::ofstream(raw) << std::string(1 << 16, '\0');
  ASSERT_EQ(
      run_command({qemu_img, "create", "-q", "-f", "qcow2", tmp / "plain.qcow2", "1M"}).exit_code,
      0);
  ASSERT_EQ(run_command({qemu_img, "create", "-q", "-f", "qcow2", "-F", "raw", "-b", raw,
                         tmp / "layered.qcow2"})
                .exit_code,
            0);
  EXPECT_EQ(*probe_disk_format(raw), "raw");
  EXPECT_EQ(*probe_disk_format(tmp / "plain.qcow2"), "qcow2");
  auto layered = probe_disk_format(tmp / "layered.qcow2");
  ASSERT_FALSE(layered);
  EXPECT_NE(layered.error().message().find("Refused image '" + tmp / "layered.qcow2" + "'"),
            std::string::npos)
      << layered.error().message();
  EXPECT_NE(layered.error().message().find("backing file"), std::string::npos);
  auto missing = probe_disk_format(tmp / "absent");
  ASSERT_FALSE(missing);
  EXPECT_NE(missing.error().message().find("No such file"), std::string::npos);
}

}  // namespace
}  // namespace flotilla::runtime::vm
