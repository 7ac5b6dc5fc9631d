#include "ota/bundle.hpp"

#include <gtest/gtest.h>

#include <string>

#include "common/fs.hpp"
#include "common/sha256.hpp"
#include "ota/signing.hpp"
#include "test/ota/test_images.hpp"
#include "test/support/temp_dir.hpp"

namespace flotilla::ota {
namespace {

using ota::testing::change_image;
using ota::testing::make_image;

class BundleTest : public ::testing::Test {
 protected:
  void SetUp() override {
    base_ = make_image(600000, 11);
    next_ = change_image(base_, 1.0, 12);
    ASSERT_TRUE(fs::write_atomic(tmp_ / "fw-1.0.img", base_).ok());
    ASSERT_TRUE(fs::write_atomic(tmp_ / "fw-2.0.img", next_).ok());
    auto k = generate_key();
    ASSERT_TRUE(k.ok());
    key_ = *k;
    dir_ = tmp_ / "bundle";
  }

  BuildRequest request(bool with_base) const {
    BuildRequest r;
    r.name = "fw";
    r.version = "2.0";
    r.target = "image";
    r.payload_path = tmp_ / "fw-2.0.img";
    if (with_base) {
      r.base_path = tmp_ / "fw-1.0.img";
      r.base_version = "1.0";
    }
    r.out_dir = dir_;
    return r;
  }

  void build_signed(bool with_base) {
    auto m = build_bundle(request(with_base));
    ASSERT_TRUE(m.ok()) << m.error().message();
    auto st = sign_bundle(dir_, key_.private_pem);
    ASSERT_TRUE(st.ok()) << st.error().message();
  }

  std::string load_error() {
    auto b = load_bundle(dir_, key_.public_pem);
    EXPECT_FALSE(b.ok());
    return b ? "" : b.error().message();
  }

  void rewrite(const std::string& file, const std::string& data) {
    ASSERT_TRUE(fs::write_atomic(dir_ + "/" + file, data).ok());
  }
  std::string read(const std::string& file) { return fs::read_file(dir_ + "/" + file).value(); }

  flotilla::testing::TempDir tmp_;
  std::string base_, next_, dir_;
  KeyPair key_;
};

TEST_F(BundleTest, BuildWritesPayloadDeltaAndCanonicalManifest) {
  auto m = build_bundle(request(true));
  ASSERT_TRUE(m.ok()) << m.error().message();
  EXPECT_EQ(m->sha256, sha256_hex(next_));
  EXPECT_EQ(m->size, next_.size());
  ASSERT_TRUE(m->delta.has_value());
  EXPECT_EQ(m->delta->base_version, "1.0");
  EXPECT_EQ(m->delta->base_sha256, sha256_hex(base_));
  EXPECT_EQ(m->delta->sha256, sha256_hex(read("delta")));
  EXPECT_EQ(m->delta->size, read("delta").size());
  EXPECT_LT(m->delta->size, next_.size() / 10);
  EXPECT_TRUE(read("payload") == next_);
  EXPECT_EQ(read("manifest.json"), manifest_json(*m));
}

TEST_F(BundleTest, SignedBundleLoadsAndItsDeltaRebuildsThePayload) {
  build_signed(true);
  EXPECT_EQ(read("manifest.sig").size(), kSignatureBytes);
  auto b = load_bundle(dir_, key_.public_pem);
  ASSERT_TRUE(b.ok()) << b.error().message();
  EXPECT_EQ(b->manifest.version, "2.0");
  EXPECT_EQ(b->manifest_text, read("manifest.json"));
  EXPECT_EQ(b->delta_path, dir_ + "/delta");
  auto out = apply_bundle_delta(b->manifest, tmp_ / "fw-1.0.img", b->delta_path, tmp_ / "rebuilt");
  ASSERT_TRUE(out.ok()) << out.error().message();
  EXPECT_TRUE(fs::read_file(tmp_ / "rebuilt").value() == next_);
}

TEST_F(BundleTest, FullBundleHasNoDelta) {
  build_signed(false);
  auto b = load_bundle(dir_, key_.public_pem);
  ASSERT_TRUE(b.ok()) << b.error().message();
  EXPECT_FALSE(b->manifest.delta.has_value());
  EXPECT_TRUE(b->delta_path.empty());
  EXPECT_FALSE(fs::exists(dir_ + "/delta"));
}

TEST_F(BundleTest, RebuildingRemovesTheOldSignatureAndDelta) {
  build_signed(true);
  auto m = build_bundle(request(false));
  ASSERT_TRUE(m.ok()) << m.error().message();
  EXPECT_FALSE(fs::exists(dir_ + "/manifest.sig"));
  EXPECT_FALSE(fs::exists(dir_ + "/delta"));
  EXPECT_NE(load_error().find("manifest.sig is missing"), std::string::npos);
}

TEST_F(BundleTest, BadRequestsAreRefusedBeforeAnythingIsWritten) {
  auto r = request(true);
  r.version = "2 0";
  auto m = build_bundle(r);
  ASSERT_FALSE(m.ok());
  EXPECT_NE(m.error().message().find("'version' must be"), std::string::npos);
  r = request(true);
  r.target = "rootfs";
  EXPECT_FALSE(build_bundle(r).ok());
  r = request(true);
  r.base_version.clear();
  EXPECT_NE(build_bundle(r).error().message().find("needs its version"), std::string::npos);
  r = request(true);
  r.base_version = "2.0";
  EXPECT_FALSE(build_bundle(r).ok());
  EXPECT_FALSE(fs::exists(dir_));
  r = request(false);
  r.payload_path = tmp_ / "missing.img";
  m = build_bundle(r);
  ASSERT_FALSE(m.ok());
  EXPECT_NE(m.error().message().find("missing.img"), std::string::npos);
  EXPECT_FALSE(fs::exists(dir_ + "/manifest.json"));
}

TEST_F(BundleTest, TamperedManifestIsRejectedBeforeParsing) {
  build_signed(true);
  std::string text = read("manifest.json");
  text[text.find("2.0")] = '3';
  rewrite("manifest.json", text);
  EXPECT_NE(load_error().find("manifest.sig: Failed to verify signature: signature does not match"),
            std::string::npos);
  // Only the signature can tell: payload and delta still match the changed manifest.
  EXPECT_TRUE(load_bundle(dir_).ok());
}

TEST_F(BundleTest, TamperedSignatureAndWrongKeyAreRejected) {
  build_signed(false);
  std::string sig = read("manifest.sig");
  sig[0] ^= 1;
  rewrite("manifest.sig", sig);
  EXPECT_NE(load_error().find("does not match the pinned key"), std::string::npos);
  build_signed(false);
  auto other = generate_key().value();
  auto b = load_bundle(dir_, other.public_pem);
  ASSERT_FALSE(b.ok());
  EXPECT_NE(b.error().message().find("does not match the pinned key"), std::string::npos);
}

TEST_F(BundleTest, TamperedPayloadIsRejectedWithTheMismatch) {
  build_signed(true);
  std::string payload = read("payload");
  payload[1000] ^= 1;
  rewrite("payload", payload);
  const std::string err = load_error();
  EXPECT_NE(err.find("Failed to load bundle '" + dir_ + "': payload: sha256 is " +
                     sha256_hex(payload) + ", manifest says " + sha256_hex(next_)),
            std::string::npos)
      << err;
  rewrite("payload", payload + "x");
  EXPECT_NE(load_error().find("payload: size is " + std::to_string(next_.size() + 1) +
                              " bytes, manifest says " + std::to_string(next_.size())),
            std::string::npos);
}

TEST_F(BundleTest, TamperedOrMissingDeltaIsRejected) {
  build_signed(true);
  std::string delta = read("delta");
  delta[delta.size() / 2] ^= 1;
  rewrite("delta", delta);
  EXPECT_NE(load_error().find("delta: sha256 is"), std::string::npos);
  fs::remove_all(dir_ + "/delta").ok();
  EXPECT_NE(load_error().find("delta: "), std::string::npos);
  build_signed(false);
  rewrite("delta", "stray");
  EXPECT_NE(load_error().find("the manifest names no delta"), std::string::npos);
}

TEST_F(BundleTest, OversizedManifestIsNotRead) {
  build_signed(false);
  rewrite("manifest.json", std::string(kMaxManifestBytes + 1, ' '));
  EXPECT_NE(load_error().find("more than the limit"), std::string::npos);
}

TEST_F(BundleTest, DeltaAgainstAnotherBaseSaysBaseDoesNotMatch) {
  build_signed(true);
  auto b = load_bundle(dir_, key_.public_pem).value();
  ASSERT_TRUE(fs::write_atomic(tmp_ / "fw-0.9.img", change_image(base_, 0.1, 99)).ok());
  auto out = apply_bundle_delta(b.manifest, tmp_ / "fw-0.9.img", b.delta_path, tmp_ / "rebuilt");
  ASSERT_FALSE(out.ok());
  EXPECT_NE(out.error().message().find("base does not match"), std::string::npos)
      << out.error().message();
  EXPECT_FALSE(fs::exists(tmp_ / "rebuilt"));
}

TEST_F(BundleTest, VerifyManifestChecksTheSignatureBeforeParsing) {
  build_signed(true);
  const std::string text = read("manifest.json");
  const std::string sig = read("manifest.sig");
  auto m = verify_manifest(text, sig, key_.public_pem);
  ASSERT_TRUE(m.ok()) << m.error().message();
  EXPECT_EQ(m->version, "2.0");
  // Signed garbage parses no further than the parser; unsigned garbage no further than verify.
  const std::string junk = "{not json";
  auto signed_junk = verify_manifest(junk, sign(key_.private_pem, junk).value(), key_.public_pem);
  ASSERT_FALSE(signed_junk.ok());
  EXPECT_NE(signed_junk.error().message().find("Failed to parse manifest"), std::string::npos);
  auto unsigned_junk = verify_manifest(junk, sig, key_.public_pem);
  ASSERT_FALSE(unsigned_junk.ok());
  EXPECT_NE(unsigned_junk.error().message().find("signature does not match"), std::string::npos);
}

}  // namespace
}  // namespace flotilla::ota
