#include "ota/signing.hpp"

#include <gtest/gtest.h>

#include <string>

namespace flotilla::ota {
namespace {

const std::string kMessage = R"({"name":"fw","version":"2.0"})";

class Signing : public ::testing::Test {
 protected:
  void SetUp() override {
    auto k = generate_key();
    ASSERT_TRUE(k.ok()) << k.error().message();
    key_ = *k;
    auto s = sign(key_.private_pem, kMessage);
    ASSERT_TRUE(s.ok()) << s.error().message();
    sig_ = *s;
  }
  KeyPair key_;
  std::string sig_;
};

TEST_F(Signing, KeysArePemAndSignaturesAre64Bytes) {
  EXPECT_EQ(key_.private_pem.rfind("-----BEGIN PRIVATE KEY-----", 0), 0u);
  EXPECT_EQ(key_.public_pem.rfind("-----BEGIN PUBLIC KEY-----", 0), 0u);
  EXPECT_EQ(sig_.size(), kSignatureBytes);
  // Ed25519 is deterministic: the same key signs the same text alike.
  EXPECT_EQ(*sign(key_.private_pem, kMessage), sig_);
}

TEST_F(Signing, VerifiesTheSignedMessage) {
  auto st = verify(key_.public_pem, kMessage, sig_);
  EXPECT_TRUE(st.ok()) << st.error().message();
}

TEST_F(Signing, RejectsEveryTamperedMessageByte) {
  for (size_t i = 0; i < kMessage.size(); ++i) {
    std::string tampered = kMessage;
    tampered[i] ^= 0x01;
    auto st = verify(key_.public_pem, tampered, sig_);
    ASSERT_FALSE(st.ok()) << "byte " << i;
    EXPECT_EQ(st.error().message(),
              "Failed to verify signature: signature does not match the pinned key");
  }
  EXPECT_FALSE(verify(key_.public_pem, kMessage + " ", sig_).ok());
}

TEST_F(Signing, RejectsTamperedOrTruncatedSignature) {
  std::string tampered = sig_;
  tampered[10] ^= 0x40;
  EXPECT_FALSE(verify(key_.public_pem, kMessage, tampered).ok());
  auto st = verify(key_.public_pem, kMessage, sig_.substr(0, 63));
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().message(), "Failed to verify signature: it is 63 bytes, want 64");
}

TEST_F(Signing, RejectsAnotherKeysSignature) {
  auto other = generate_key();
  ASSERT_TRUE(other.ok());
  EXPECT_NE(other->public_pem, key_.public_pem);
  auto st = verify(other->public_pem, kMessage, sig_);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.error().message().find("does not match the pinned key"), std::string::npos);
}

TEST_F(Signing, RejectsGarbageAndSwappedPem) {
  auto st = verify("not a key", kMessage, sig_);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.error().message().find("not a PEM public key"), std::string::npos);
  // A private key where the public one belongs, and the other way round.
  EXPECT_FALSE(verify(key_.private_pem, kMessage, sig_).ok());
  auto s = sign(key_.public_pem, kMessage);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().message().find("not a PEM private key"), std::string::npos);
  std::string cut = key_.private_pem.substr(0, key_.private_pem.size() / 2);
  EXPECT_FALSE(sign(cut, kMessage).ok());
}

TEST_F(Signing, RejectsANonEd25519Key) {
  // An EC P-256 public key (openssl ecparam -name prime256v1 -genkey | openssl ec -pubout).
  const std::string ec_pub =
      "-----BEGIN PUBLIC KEY-----\n"
      "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE/xhEkKqm9XT/ECUNdt0ZndaWHDUh\n"
      "JYtzvmT65XkQzk0R+YWyimwth3DbdrcA4i48ZvX9lvkJynC6/mI1la1Kmw==\n"
      "-----END PUBLIC KEY-----\n";
  auto st = verify(ec_pub, kMessage, sig_);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.error().message().find("not an Ed25519 public key"), std::string::npos)
      << st.error().message();
}

}  // namespace
}  // namespace flotilla::ota
