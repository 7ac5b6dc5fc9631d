// Ed25519 keys, signatures and verification over OpenSSL libcrypto.
//
// Keys travel as PEM text (PKCS#8 private, SubjectPublicKeyInfo public), so `openssl pkey` can
// read and make them too; on the wire a public key is its 32 raw bytes. A loaded key is parsed
// once and can sign or verify many messages (the hub signs every message it sends to agents,
// docs/security.md), from any number of threads at once.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/expected.hpp"

struct evp_pkey_st;

namespace flotilla::ed25519 {

inline constexpr size_t kSignatureBytes = 64;
inline constexpr size_t kPublicKeyBytes = 32;
inline constexpr size_t kKeyIdBytes = 8;

struct KeyPair {
  std::string private_pem;
  std::string public_pem;
};

Expected<KeyPair> generate();

// The first 8 bytes of SHA-256 over the raw public key: names a key in messages and logs.
std::string key_id(std::string_view raw_public_key);

class PublicKey {
 public:
  // Fails unless `pem` holds an Ed25519 public key (its first PEM block).
  static Expected<PublicKey> from_pem(std::string_view pem);
  static Expected<PublicKey> from_raw(std::string_view raw);
  // Every "PUBLIC KEY" block of a PEM text (a trust file may list several); fails on none.
  static Expected<std::vector<PublicKey>> all_from_pem(std::string_view pem);

  // Ok when `signature` is this key's signature of `message`; otherwise why not.
  Status verify(std::string_view message, std::string_view signature) const;
  const std::string& raw() const { return raw_; }
  const std::string& id() const { return id_; }

 private:
  std::shared_ptr<evp_pkey_st> key_;
  std::string raw_;
  std::string id_;
};

class PrivateKey {
 public:
  static Expected<PrivateKey> from_pem(std::string_view pem);
  // The 64-byte signature of `message`.
  Expected<std::string> sign(std::string_view message) const;
  const PublicKey& public_key() const { return public_; }

 private:
  std::shared_ptr<evp_pkey_st> key_;
  PublicKey public_;
};

}  // namespace flotilla::ed25519
