#include "common/fs.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include "test/support/temp_dir.hpp"

namespace flotilla {
namespace {

TEST(Fs, WriteAtomicReplacesWholeFileAndLeavesNoTemp) {
  testing::TempDir dir;
  std::string path = dir / "state";
  ASSERT_TRUE(fs::write_atomic(path, "first").ok());
  ASSERT_TRUE(fs::write_atomic(path, "second").ok());
  EXPECT_EQ(*fs::read_file(path), "second");
  int entries = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir.path())) {
    (void)e;
    ++entries;
  }
  EXPECT_EQ(entries, 1);
}

// Temp names stay apart across threads, processes and hosts sharing a folder (NFS).
TEST(Fs, TempNamesCarryTheHostAndProcessAndNeverRepeat) {
  char host[256] = {};
  ASSERT_EQ(::gethostname(host, sizeof(host) - 1), 0);
  const std::string a = fs::unique_temp_name("/x/f.tmp");
  const std::string b = fs::unique_temp_name("/x/f.tmp");
  EXPECT_NE(a, b);
  EXPECT_EQ(a.rfind("/x/f.tmp." + std::string(host) + "." + std::to_string(::getpid()) + ".", 0),
            0u)
      << a;
}

TEST(Fs, ErrorsNameThePath) {
  auto r = fs::read_file("/nonexistent/flotilla/x");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("'/nonexistent/flotilla/x'"), std::string::npos);
  auto w = fs::write_atomic("/nonexistent/flotilla/x", "data");
  ASSERT_FALSE(w.ok());
  EXPECT_NE(w.error().message().find("Failed to create"), std::string::npos);
}

TEST(Fs, MakeDirsAndRemoveAll) {
  testing::TempDir dir;
  ASSERT_TRUE(fs::make_dirs(dir / "a/b/c").ok());
  EXPECT_TRUE(fs::exists(dir / "a/b/c"));
  ASSERT_TRUE(fs::remove_all(dir / "a").ok());
  EXPECT_FALSE(fs::exists(dir / "a"));
  EXPECT_TRUE(fs::remove_all(dir / "missing").ok());
}

}  // namespace
}  // namespace flotilla

namespace flotilla {
namespace {

TEST(SetCloexecFrom, MarksDescriptorsFromTheFirstOneUpAndLeavesLowerOnesAlone) {
  int low[2];
  int high[2];
  ASSERT_EQ(::pipe(low), 0);
  ASSERT_EQ(::pipe(high), 0);
  ASSERT_EQ(::fcntl(low[0], F_GETFD) & FD_CLOEXEC, 0);
  ASSERT_EQ(::fcntl(high[1], F_GETFD) & FD_CLOEXEC, 0);
  fs::set_cloexec_from(high[0]);
  EXPECT_EQ(::fcntl(low[0], F_GETFD) & FD_CLOEXEC, 0);
  EXPECT_EQ(::fcntl(low[1], F_GETFD) & FD_CLOEXEC, 0);
  EXPECT_NE(::fcntl(high[0], F_GETFD) & FD_CLOEXEC, 0);
  EXPECT_NE(::fcntl(high[1], F_GETFD) & FD_CLOEXEC, 0);
  for (int fd : {low[0], low[1], high[0], high[1]}) ::close(fd);
}

}  // namespace
}  // namespace flotilla
