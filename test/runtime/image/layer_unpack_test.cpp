#include "runtime/image/layer_unpack.hpp"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <dirent.h>

#include <climits>
#include <random>

#include "test/runtime/image/tar_builder.hpp"
#include "test/support/temp_dir.hpp"

namespace flotilla::runtime::image {
namespace {

using testing::read_all;
using testing::TarBuilder;

struct stat lstat_of(const std::string& p) {
  struct stat st {};
  EXPECT_EQ(::lstat(p.c_str(), &st), 0) << p;
  return st;
}

bool exists(const std::string& p) {
  struct stat st {};
  return ::lstat(p.c_str(), &st) == 0;
}

class LayerUnpackTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_EQ(::mkdir(root().c_str(), 0755), 0); }
  std::string root() const { return tmp_ / "rootfs"; }
  Status apply(const TarBuilder& tar, TarBuilder::Compression c = TarBuilder::Compression::kGzip) {
    std::string path = tmp_ / ("layer" + std::to_string(n_++) + ".tar");
    EXPECT_TRUE(tar.write(path, c));
    return apply_layer(path, root());
  }
  flotilla::testing::TempDir tmp_;
  int n_ = 0;
};

TEST_F(LayerUnpackTest, FilesModesOwnersLinksInEveryCompression) {
  for (auto c : {TarBuilder::Compression::kNone, TarBuilder::Compression::kGzip,
                 TarBuilder::Compression::kZstd}) {
    std::string sub = "c" + std::to_string(static_cast<int>(c));
    auto st = apply(TarBuilder()
                        .dir(sub, 0755)
                        .dir(sub + "/etc", 0750, 0, 42)
                        .file(sub + "/etc/app.conf", "port=1\n", 0640, 1000, 42)
                        .file(sub + "/bin/tool", "#!/bin/sh\n", 04755)
                        .symlink(sub + "/bin/sh", "/bin/busybox")
                        .symlink(sub + "/conf", "etc/app.conf")
                        .hardlink(sub + "/etc/app.hard", sub + "/etc/app.conf"),
                    c);
    ASSERT_TRUE(st) << st.error().message();
    std::string base = root() + "/" + sub;
    EXPECT_EQ(read_all(base + "/etc/app.conf"), "port=1\n");
    auto conf = lstat_of(base + "/etc/app.conf");
    EXPECT_EQ(conf.st_mode & 07777, 0640u);
    EXPECT_EQ(conf.st_uid, 1000u);
    EXPECT_EQ(conf.st_gid, 42u);
    EXPECT_EQ(conf.st_nlink, 2u);
    EXPECT_EQ(lstat_of(base + "/etc/app.hard").st_ino, conf.st_ino);
    EXPECT_EQ(lstat_of(base + "/etc").st_mode & 07777, 0750u);
    EXPECT_EQ(lstat_of(base + "/etc").st_gid, 42u);
    EXPECT_EQ(lstat_of(base + "/bin/tool").st_mode & 07777, 04755u);
    char link[PATH_MAX] = {0};
    ASSERT_GT(::readlink((base + "/bin/sh").c_str(), link, sizeof(link) - 1), 0);
    EXPECT_STREQ(link, "/bin/busybox");  // absolute symlinks are fine inside an image
    EXPECT_TRUE(S_ISLNK(lstat_of(base + "/conf").st_mode));
    EXPECT_EQ(lstat_of(base + "/etc/app.conf").st_mtime, 1700000000);
  }
}

TEST_F(LayerUnpackTest, WhiteoutsAndOpaqueFoldersHideLowerLayers) {
  ASSERT_TRUE(apply(TarBuilder()
                        .file("keep.txt", "k")
                        .file("gone.txt", "g")
                        .dir("gonedir")
                        .file("gonedir/x", "x")
                        .dir("opq")
                        .file("opq/old1", "1")
                        .dir("opq/oldsub")
                        .file("opq/oldsub/old2", "2")
                        .file("replaced", "file")));
  auto st = apply(TarBuilder()
                      .file(".wh.gone.txt", "")
                      .file(".wh.gonedir", "")
                      .dir("opq")
                      .file("opq/.wh..wh..opq", "")
                      .file("opq/new", "n")
                      .dir("replaced")
                      .file("replaced/inner", "i"));
  ASSERT_TRUE(st) << st.error().message();
  EXPECT_TRUE(exists(root() + "/keep.txt"));
  EXPECT_FALSE(exists(root() + "/gone.txt"));
  EXPECT_FALSE(exists(root() + "/gonedir"));
  EXPECT_FALSE(exists(root() + "/.wh.gone.txt"));  // whiteout markers are not files
  EXPECT_FALSE(exists(root() + "/opq/old1"));
  EXPECT_FALSE(exists(root() + "/opq/oldsub"));
  EXPECT_FALSE(exists(root() + "/opq/.wh..wh..opq"));
  EXPECT_EQ(read_all(root() + "/opq/new"), "n");
  EXPECT_TRUE(S_ISDIR(lstat_of(root() + "/replaced").st_mode));
  EXPECT_EQ(read_all(root() + "/replaced/inner"), "i");
}

TEST_F(LayerUnpackTest, RejectsDotDotEscape) {
  auto st = apply(TarBuilder().file("ok", "1").file("../escape", "pwned"));
  ASSERT_FALSE(st);
  EXPECT_NE(st.error().message().find("'../escape' escapes the root (..)"), std::string::npos)
      << st.error().message();
  EXPECT_FALSE(exists(tmp_ / "escape"));
  auto deep = apply(TarBuilder().file("a/../../escape2", "pwned"));
  ASSERT_FALSE(deep);
  EXPECT_FALSE(exists(tmp_ / "escape2"));
}

TEST_F(LayerUnpackTest, RejectsAbsolutePaths) {
  auto st = apply(TarBuilder().file(tmp_ / "abs-escape", "pwned"));
  ASSERT_FALSE(st);
  EXPECT_NE(st.error().message().find("is absolute"), std::string::npos) << st.error().message();
  EXPECT_FALSE(exists(tmp_ / "abs-escape"));
}

TEST_F(LayerUnpackTest, NeverWritesThroughASymlink) {
  ASSERT_EQ(::mkdir((tmp_ / "outside").c_str(), 0755), 0);
  // Absolute symlink to a host folder, then a file "inside" it.
  auto st = apply(TarBuilder().symlink("evil", tmp_ / "outside").file("evil/pwned", "x"));
  ASSERT_FALSE(st);
  EXPECT_NE(st.error().message().find("symlink"), std::string::npos) << st.error().message();
  EXPECT_FALSE(exists(tmp_ / "outside/pwned"));
  // Same trick split over two layers, and with a relative "../.." link.
  ASSERT_TRUE(apply(TarBuilder().symlink("rel", "../outside")));
  auto st2 = apply(TarBuilder().file("rel/pwned2", "x"));
  ASSERT_FALSE(st2);
  EXPECT_FALSE(exists(tmp_ / "outside/pwned2"));
  // A whiteout must not delete through a symlink either.
  testing::write_all(tmp_ / "outside/victim", "v");
  auto st3 = apply(TarBuilder().file("rel/.wh.victim", ""));
  ASSERT_FALSE(st3);
  EXPECT_TRUE(exists(tmp_ / "outside/victim"));
}

TEST_F(LayerUnpackTest, RejectsHardLinksOutOfTheRoot) {
  testing::write_all(tmp_ / "secret", "s");
  auto st = apply(TarBuilder().hardlink("h", "../secret"));
  ASSERT_FALSE(st);
  EXPECT_NE(st.error().message().find("hard link target"), std::string::npos)
      << st.error().message();
  auto abs = apply(TarBuilder().hardlink("h2", tmp_ / "secret"));
  ASSERT_FALSE(abs);
  EXPECT_FALSE(exists(root() + "/h2"));
  ASSERT_EQ(::mkdir((tmp_ / "outside2").c_str(), 0755), 0);
  testing::write_all(tmp_ / "outside2/f", "s");
  auto via = apply(TarBuilder().symlink("l", tmp_ / "outside2").hardlink("h3", "l/f"));
  ASSERT_FALSE(via);
  EXPECT_EQ(lstat_of(tmp_ / "outside2/f").st_nlink, 1u);
}

TEST_F(LayerUnpackTest, ALayerEndingRightAfterItsLastFilesDataIsAcceptedButNotOneCutInData) {
  std::string full = tmp_ / "full.tar";
  std::string content(1000, 'q');
  ASSERT_TRUE(TarBuilder()
                  .file("a", "1")
                  .file("last", content)
                  .write(full, TarBuilder::Compression::kNone));
  std::string bytes = read_all(full);
  // Headers at 0 and 1024 ("a" has one data block); "last"'s data starts at 1536.
  ASSERT_EQ(bytes.substr(1536, 1000), content);
  std::string no_tail = tmp_ / "no_tail.tar";
  testing::write_all(no_tail, bytes.substr(0, 1536 + 1000));  // as umoci 0.4.7 writes them
  auto st = apply_layer(no_tail, root());
  ASSERT_TRUE(st) << st.error().message();
  EXPECT_EQ(read_all(root() + "/last"), content);
  std::string cut = tmp_ / "cut.tar";
  testing::write_all(cut, bytes.substr(0, 1536 + 600));
  auto bad = apply_layer(cut, root());
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message().find("'last'"), std::string::npos) << bad.error().message();
}

TEST_F(LayerUnpackTest, GarbageIsAnErrorNotACrash) {
  std::string path = tmp_ / "garbage.tar.gz";
  testing::write_all(path, std::string("\x1f\x8b\x08\x00garbage", 12) + std::string(100, 'z'));
  auto st = apply_layer(path, root());
  ASSERT_FALSE(st);
  EXPECT_NE(st.error().message().find("Failed to unpack layer"), std::string::npos);
  testing::write_all(path, std::string(1024, 'x'));
  EXPECT_FALSE(apply_layer(path, root()));
}

}  // namespace
}  // namespace flotilla::runtime::image

namespace flotilla::runtime::image {
namespace {

// Seeded byte mutations of a small uncompressed layer: an Error or a rootfs, never a crash, and
// never a file outside the root.
TEST_F(LayerUnpackTest, MutatedLayersNeverCrashOrEscape) {
  std::string good = tmp_ / "good.tar";
  ASSERT_TRUE(TarBuilder()
                  .dir("d")
                  .file("d/f", "hello", 0644, 5, 6)
                  .symlink("d/l", "f")
                  .hardlink("d/h", "d/f")
                  .file(".wh.x", "")
                  .write(good, TarBuilder::Compression::kNone));
  const std::string bytes = read_all(good);
  std::mt19937 rng(99);
  for (int i = 0; i < 300; ++i) {
    std::string m = bytes;
    for (int e = 0; e < 8; ++e) m[rng() % 2048] = static_cast<char>(rng());
    std::string path = tmp_ / "m.tar";
    testing::write_all(path, m);
    std::string root_i = tmp_ / ("r" + std::to_string(i));
    ASSERT_EQ(::mkdir(root_i.c_str(), 0755), 0);
    auto st = apply_layer(path, root_i);
    if (!st) {
      EXPECT_EQ(st.error().message().rfind("Failed to unpack layer", 0), 0u);
    }
  }
  // Only the layer, the roots and the mutated file are in the temp folder: nothing escaped.
  int others = 0;
  if (DIR* d = opendir(tmp_.path().c_str())) {
    while (auto* e = readdir(d)) {
      std::string n = e->d_name;
      if (n != "." && n != ".." && n != "rootfs" && n != "good.tar" && n != "m.tar" &&
          n[0] != 'r') {
        ++others;
        ADD_FAILURE() << "unexpected " << n;
      }
    }
    closedir(d);
  }
  EXPECT_EQ(others, 0);
}

}  // namespace
}  // namespace flotilla::runtime::image
