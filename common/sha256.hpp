// SHA-256 digests as lowercase hex (spec hashes, image and blob digests), over OpenSSL libcrypto.
//
// Thread-safety: pure functions.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/expected.hpp"

struct evp_md_ctx_st;

namespace flotilla {

// Hex SHA-256 of `data`.
std::string sha256_hex(std::string_view data);
// Lowercase hex of `size` bytes.
std::string hex_encode(const unsigned char* bytes, size_t size);

// SHA-256 over data that arrives in pieces.
class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;
  void update(std::string_view data);
  // Hex digest of everything updated so far; the object is spent afterwards.
  std::string hex_final();

 private:
  evp_md_ctx_st* ctx_;
};

struct FileDigest {
  std::string sha256;  // lowercase hex
  uint64_t size = 0;
};

// Hex SHA-256 and size of a file, read in pieces ("Failed to hash '<path>': <cause>").
Expected<FileDigest> sha256_file(const std::string& path);

}  // namespace flotilla
