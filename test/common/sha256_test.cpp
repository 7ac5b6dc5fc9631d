#include "common/sha256.hpp"

#include <gtest/gtest.h>
#include <openssl/evp.h>

#include <random>
#include <string>

namespace flotilla {
namespace {

// libcrypto's SHA-256, the reference this implementation replaced.
std::string openssl_sha256(const std::string& data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), md, &len, EVP_sha256(), nullptr);
  return hex_encode(md, len);
}

TEST(Sha256, MatchesFips180Vectors) {
  EXPECT_EQ(sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  EXPECT_EQ(sha256_hex(std::string(1'000'000, 'a')),
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST(Sha256, MatchesLibcryptoAtEveryLengthAroundTheBlockSize) {
  std::mt19937 rng(9);
  for (size_t len = 0; len <= 300; ++len) {
    std::string data(len, '\0');
    for (auto& c : data) c = static_cast<char>(rng());
    EXPECT_EQ(sha256_hex(data), openssl_sha256(data)) << "length " << len;
  }
}

TEST(Sha256, InPiecesEqualsAtOnce) {
  std::mt19937 rng(17);
  for (int round = 0; round < 200; ++round) {
    std::string data(rng() % 5000, '\0');
    for (auto& c : data) c = static_cast<char>(rng());
    Sha256 hash;
    for (size_t at = 0; at < data.size();) {
      const size_t piece = std::min<size_t>(rng() % 130, data.size() - at);
      hash.update(std::string_view(data).substr(at, piece));
      at += piece;
    }
    EXPECT_EQ(hash.hex_final(), openssl_sha256(data)) << "round " << round;
  }
}

}  // namespace
}  // namespace flotilla
