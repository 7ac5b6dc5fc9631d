// SHA-256 digests as lowercase hex (spec hashes, image and blob digests), over OpenSSL libcrypto.
//
// Thread-safety: pure functions.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace flotilla {

// Hex SHA-256 of `data`.
std::string sha256_hex(std::string_view data);
// Lowercase hex of `size` bytes.
std::string hex_encode(const unsigned char* bytes, size_t size);

}  // namespace flotilla
