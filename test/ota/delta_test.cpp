#include "ota/delta.hpp"

#include <gtest/gtest.h>

#include <cstdlib>
#include <string>

#include "common/fs.hpp"
#include "common/sha256.hpp"
#include "test/ota/test_images.hpp"
#include "test/support/temp_dir.hpp"

namespace flotilla::ota {
namespace {

using ota::testing::change_image;
using ota::testing::make_image;

constexpr size_t kImageBytes = 3 << 20;

class Delta : public ::testing::Test {
 protected:
  void write(const std::string& name, const std::string& data) {
    ASSERT_TRUE(fs::write_atomic(tmp_ / name, data).ok());
  }
  std::string read(const std::string& name) { return fs::read_file(tmp_ / name).value(); }

  flotilla::testing::TempDir tmp_;
};

TEST_F(Delta, SmallChangeMakesASmallDeltaThatRebuildsTheImage) {
  const std::string base = make_image(kImageBytes, 1);
  const std::string next = change_image(base, 1.0, 2);
  ASSERT_NE(base, next);
  write("base", base);
  write("new", next);
  auto delta = make_delta(tmp_ / "base", tmp_ / "new", tmp_ / "delta");
  ASSERT_TRUE(delta.ok()) << delta.error().message();
  EXPECT_EQ(delta->sha256, sha256_hex(read("delta")));
  // 1% of the bytes changed, in random runs that do not compress: the delta is about that much.
  EXPECT_LT(delta->size, next.size() * 3 / 100) << delta->size;

  auto out = apply_delta(tmp_ / "base", tmp_ / "delta", tmp_ / "out", next.size());
  ASSERT_TRUE(out.ok()) << out.error().message();
  EXPECT_EQ(out->size, next.size());
  EXPECT_EQ(out->sha256, sha256_hex(next));
  EXPECT_TRUE(read("out") == next);
}

TEST_F(Delta, UnrelatedBaseStillRebuildsTheImageJustBigger) {
  const std::string base = make_image(1 << 20, 7);
  const std::string next = make_image(1 << 20, 8);
  write("base", base);
  write("new", next);
  auto delta = make_delta(tmp_ / "base", tmp_ / "new", tmp_ / "delta");
  ASSERT_TRUE(delta.ok()) << delta.error().message();
  EXPECT_GT(delta->size, next.size() / 4);  // about the random half of the image
  auto out = apply_delta(tmp_ / "base", tmp_ / "delta", tmp_ / "out", next.size());
  ASSERT_TRUE(out.ok()) << out.error().message();
  EXPECT_TRUE(read("out") == next);
}

TEST_F(Delta, EmptyBaseWorksAsPlainCompression) {
  const std::string next = make_image(100000, 3);
  write("base", "");
  write("new", next);
  ASSERT_TRUE(make_delta(tmp_ / "base", tmp_ / "new", tmp_ / "delta").ok());
  auto out = apply_delta(tmp_ / "base", tmp_ / "delta", tmp_ / "out", next.size());
  ASSERT_TRUE(out.ok()) << out.error().message();
  EXPECT_TRUE(read("out") == next);
}

TEST_F(Delta, WrongBaseIsReportedAndLeavesNoOutput) {
  const std::string base = make_image(kImageBytes, 1);
  const std::string next = change_image(base, 1.0, 2);
  write("base", base);
  write("new", next);
  ASSERT_TRUE(make_delta(tmp_ / "base", tmp_ / "new", tmp_ / "delta").ok());
  // A device still at an older or locally modified base.
  write("other", change_image(base, 0.5, 9));
  auto out = apply_delta(tmp_ / "other", tmp_ / "delta", tmp_ / "out", next.size());
  ASSERT_FALSE(out.ok());
  EXPECT_NE(out.error().message().find("the base does not match the delta"), std::string::npos)
      << out.error().message();
  EXPECT_FALSE(fs::exists(tmp_ / "out"));
  // An unrelated base, or none.
  write("unrelated", make_image(kImageBytes, 5));
  auto out2 = apply_delta(tmp_ / "unrelated", tmp_ / "delta", tmp_ / "out", next.size());
  ASSERT_FALSE(out2.ok());
  EXPECT_NE(out2.error().message().find("base does not match"), std::string::npos)
      << out2.error().message();
  write("empty", "");
  EXPECT_FALSE(apply_delta(tmp_ / "empty", tmp_ / "delta", tmp_ / "out", next.size()).ok());
  EXPECT_FALSE(fs::exists(tmp_ / "out"));
}

class DeltaInput : public Delta {
 protected:
  void SetUp() override {
    next_ = make_image(500000, 4);
    write("base", change_image(next_, 5, 5));
    write("new", next_);
    ASSERT_TRUE(make_delta(tmp_ / "base", tmp_ / "new", tmp_ / "delta").ok());
    delta_ = read("delta");
  }
  std::string error_applying(const std::string& delta, uint64_t size) {
    write("bad", delta);
    auto out = apply_delta(tmp_ / "base", tmp_ / "bad", tmp_ / "out", size);
    EXPECT_FALSE(out.ok());
    EXPECT_FALSE(fs::exists(tmp_ / "out"));
    return out ? "" : out.error().message();
  }
  std::string next_;
  std::string delta_;
};

TEST_F(DeltaInput, RefusesAnotherSizeThanExpected) {
  EXPECT_NE(error_applying(delta_, next_.size() - 1)
                .find("it makes " + std::to_string(next_.size()) + " bytes, want "),
            std::string::npos);
  EXPECT_NE(error_applying(delta_, next_.size() + 1).find("bytes, want"), std::string::npos);
}

TEST_F(DeltaInput, RefusesTruncatedCorruptEmptyAndTrailingDeltas) {
  EXPECT_NE(error_applying(delta_.substr(0, delta_.size() / 2), next_.size()).find("truncated"),
            std::string::npos);
  EXPECT_NE(error_applying(delta_.substr(0, delta_.size() - 1), next_.size()).find("truncated"),
            std::string::npos);
  EXPECT_NE(error_applying("", next_.size()).find("it is empty"), std::string::npos);
  EXPECT_NE(error_applying("not zstd at all", next_.size()).find("not a zstd delta"),
            std::string::npos);
  EXPECT_NE(error_applying(delta_ + "x", next_.size()).find("trailing data"), std::string::npos);
  std::string flipped = delta_;
  flipped[flipped.size() / 2] ^= 0x20;
  EXPECT_FALSE(error_applying(flipped, next_.size()).empty());
}

TEST_F(DeltaInput, MissingFilesAreNamed) {
  auto out = apply_delta(tmp_ / "nope", tmp_ / "delta", tmp_ / "out", next_.size());
  ASSERT_FALSE(out.ok());
  EXPECT_NE(out.error().message().find("nope"), std::string::npos);
  auto made = make_delta(tmp_ / "base", tmp_ / "missing", tmp_ / "d2");
  ASSERT_FALSE(made.ok());
  EXPECT_NE(made.error().message().find("missing"), std::string::npos);
  EXPECT_FALSE(fs::exists(tmp_ / "d2"));
}

// The reason for patch-from: the standard tool applies our deltas by hand.
TEST_F(DeltaInput, TheZstdCommandAppliesIt) {
  if (std::system("command -v zstd >/dev/null 2>&1") != 0) GTEST_SKIP() << "no zstd command";
  const std::string cmd = "zstd -q -d --patch-from=" + (tmp_ / "base") + " " + (tmp_ / "delta") +
                          " -o " + (tmp_ / "by-cli");
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  EXPECT_TRUE(read("by-cli") == next_);
}

}  // namespace
}  // namespace flotilla::ota
