// fuzz_sha256: common/sha256 against libcrypto's SHA-256 on arbitrary bytes.
//
// Invariants: the digest of the whole input equals libcrypto's; hashed in pieces (the first byte
// sets the piece length) it is the same digest; base64 of the input decodes back to it.
#include <openssl/evp.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/base64.hpp"
#include "common/sha256.hpp"
#include "test/fuzz/fuzz_check.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace flotilla;
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data, size, md, &len, EVP_sha256(), nullptr);
  const std::string want = hex_encode(md, len);
  FUZZ_CHECK(sha256_hex(input) == want, "sha256_hex differs from libcrypto: " + want);
  const size_t piece = size > 0 ? 1 + data[0] % 97 : 1;
  Sha256 hash;
  for (size_t at = 0; at < size; at += piece) hash.update(input.substr(at, piece));
  FUZZ_CHECK(hash.hex_final() == want, "Sha256 in pieces of " + std::to_string(piece) + " differs");
  auto back = base64_decode(base64_encode(input));
  FUZZ_CHECK(back.ok() && *back == input, "base64 does not round-trip");
  return 0;
}
