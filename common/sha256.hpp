// SHA-256 digests as lowercase hex (spec hashes, image and blob digests, key ids).
//
// Computed here (FIPS 180-4), not by libcrypto: every agent hashes specs, and linking libcrypto
// for that alone cost an idle agent about 1.8 MiB (its relocations and symbol tables,
// docs/footprint.md). Checked against libcrypto in test/common/sha256_test.cpp.
//
// Thread-safety: pure functions.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/expected.hpp"

namespace flotilla {

// Hex SHA-256 of `data`.
std::string sha256_hex(std::string_view data);
// Lowercase hex of `size` bytes.
std::string hex_encode(const unsigned char* bytes, size_t size);

// SHA-256 over data that arrives in pieces.
class Sha256 {
 public:
  Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;
  void update(std::string_view data);
  // Hex digest of everything updated so far; the object is spent afterwards.
  std::string hex_final();
  // The 32-byte digest of everything updated so far; the object is spent afterwards.
  void final(unsigned char out[32]);

 private:
  void compress(const unsigned char block[64]);

  uint32_t state_[8];
  unsigned char block_[64];
  size_t used_ = 0;      // bytes waiting in block_
  uint64_t length_ = 0;  // bytes updated so far
};

struct FileDigest {
  std::string sha256;  // lowercase hex
  uint64_t size = 0;
};

// Hex SHA-256 and size of a file, read in pieces ("Failed to hash '<path>': <cause>").
Expected<FileDigest> sha256_file(const std::string& path);

}  // namespace flotilla
