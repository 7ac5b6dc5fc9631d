#include "ota/file_io.hpp"

#include <gtest/gtest.h>

#include <filesystem>

#include "common/fs.hpp"
#include "test/support/temp_dir.hpp"

namespace flotilla::ota {
namespace {

size_t entries(const std::string& dir) {
  size_t n = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    (void)e;
    ++n;
  }
  return n;
}

TEST(AtomicOutput, NothingAppearsUntilCommitAndAnAbandonedOutputLeavesNothing) {
  flotilla::testing::TempDir tmp;
  {
    auto out = AtomicOutput::create(tmp / "file");
    ASSERT_TRUE(out.ok());
    ASSERT_TRUE(out->write("half").ok());
    EXPECT_FALSE(fs::exists(tmp / "file"));
  }
  EXPECT_EQ(entries(tmp.path()), 0u);
  auto out = AtomicOutput::create(tmp / "file");
  ASSERT_TRUE(out.ok());
  ASSERT_TRUE(out->write("whole").ok());
  ASSERT_TRUE(out->commit().ok());
  EXPECT_EQ(fs::read_file(tmp / "file").value(), "whole");
  EXPECT_EQ(out->size(), 5u);
  EXPECT_EQ(entries(tmp.path()), 1u);
}

TEST(CopyFileAtomic, CopiesWithDigestAndFailsCleanly) {
  flotilla::testing::TempDir tmp;
  ASSERT_TRUE(fs::write_atomic(tmp / "src", "abc").ok());
  auto d = copy_file_atomic(tmp / "src", tmp / "dst");
  ASSERT_TRUE(d.ok()) << d.error().message();
  EXPECT_EQ(d->size, 3u);
  EXPECT_EQ(d->sha256, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(fs::read_file(tmp / "dst").value(), "abc");
  auto missing = copy_file_atomic(tmp / "nope", tmp / "dst2");
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.error().message().find("Failed to open '" + (tmp / "nope") + "'"),
            std::string::npos);
  EXPECT_FALSE(fs::exists(tmp / "dst2"));
  EXPECT_EQ(entries(tmp.path()), 2u);
}

TEST(CopyFileAtomic, ALeftoverFromAKilledCopyIsReplacedAndModeAndHalfwayHookApply) {
  flotilla::testing::TempDir tmp;
  const std::string data(3 << 20, 'x');
  ASSERT_TRUE(fs::write_atomic(tmp / "src", data).ok());
  // What a copy killed mid-way leaves: the fixed temp name, half written.
  ASSERT_TRUE(fs::write_atomic(tmp / "dst.tmp", "stale half").ok());
  int halfway_calls = 0;
  auto d = copy_file_atomic(tmp / "src", tmp / "dst", {.mode = 0750, .at_half = [&] {
                                                         ++halfway_calls;
                                                         EXPECT_FALSE(fs::exists(tmp / "dst"));
                                                       }});
  ASSERT_TRUE(d.ok()) << d.error().message();
  EXPECT_EQ(halfway_calls, 1);
  EXPECT_EQ(fs::read_file(tmp / "dst").value(), data);
  EXPECT_FALSE(fs::exists(tmp / "dst.tmp"));
  EXPECT_EQ(std::filesystem::status(tmp / "dst").permissions() & std::filesystem::perms::all,
            std::filesystem::perms(0750));
  EXPECT_EQ(entries(tmp.path()), 2u);
}

TEST(MappedFile, MapsFilesIncludingEmptyOnesAndRefusesDirectories) {
  flotilla::testing::TempDir tmp;
  ASSERT_TRUE(fs::write_atomic(tmp / "f", "mapped").ok());
  ASSERT_TRUE(fs::write_atomic(tmp / "empty", "").ok());
  EXPECT_EQ(MappedFile::open(tmp / "f").value().data(), "mapped");
  EXPECT_TRUE(MappedFile::open(tmp / "empty").value().data().empty());
  auto dir = MappedFile::open(tmp.path());
  ASSERT_FALSE(dir.ok());
  EXPECT_NE(dir.error().message().find("not a regular file"), std::string::npos);
}

}  // namespace
}  // namespace flotilla::ota
