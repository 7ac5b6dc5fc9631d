// Ed25519 keys, signatures and verification over OpenSSL libcrypto.
//
// Keys travel as PEM text (PKCS#8 private, SubjectPublicKeyInfo public), so `openssl pkey` can
// read and make them too. The agent pins one public key (--ota-public-key) and checks every
// manifest against it before anything is downloaded or installed.
//
// Thread-safety: pure functions.
#pragma once

#include <string>
#include <string_view>

#include "common/expected.hpp"

namespace flotilla::ota {

inline constexpr size_t kSignatureBytes = 64;

struct KeyPair {
  std::string private_pem;
  std::string public_pem;
};

Expected<KeyPair> generate_key();
// The 64-byte signature of `message`.
Expected<std::string> sign(std::string_view private_pem, std::string_view message);
// Ok when `signature` is a valid signature of `message` by the key; an error saying why not
// ("signature does not match the pinned key", "not an Ed25519 public key", ...).
Status verify(std::string_view public_pem, std::string_view message, std::string_view signature);

}  // namespace flotilla::ota
