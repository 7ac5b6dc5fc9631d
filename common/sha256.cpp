#include "common/sha256.hpp"

#include <fcntl.h>
#include <openssl/evp.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace flotilla {

std::string hex_encode(const unsigned char* bytes, size_t size) {
  static const char* kHex = "0123456789abcdef";
  std::string out;
  out.reserve(size * 2);
  for (size_t i = 0; i < size; ++i) {
    out.push_back(kHex[bytes[i] >> 4]);
    out.push_back(kHex[bytes[i] & 0xf]);
  }
  return out;
}

std::string sha256_hex(std::string_view data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), digest, &len, EVP_sha256(), nullptr);
  return hex_encode(digest, len);
}

Sha256::Sha256() : ctx_(EVP_MD_CTX_new()) { EVP_DigestInit_ex(ctx_, EVP_sha256(), nullptr); }

Sha256::~Sha256() { EVP_MD_CTX_free(ctx_); }

void Sha256::update(std::string_view data) { EVP_DigestUpdate(ctx_, data.data(), data.size()); }

std::string Sha256::hex_final() {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_DigestFinal_ex(ctx_, digest, &len);
  return hex_encode(digest, len);
}

Expected<FileDigest> sha256_file(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Error("Failed to hash '" + path + "': " + std::strerror(errno));
  Sha256 hash;
  FileDigest digest;
  char buf[1 << 16];
  while (true) {
    const ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int err = errno;
      ::close(fd);
      return Error("Failed to hash '" + path + "': " + std::strerror(err));
    }
    if (n == 0) break;
    hash.update(std::string_view(buf, static_cast<size_t>(n)));
    digest.size += static_cast<uint64_t>(n);
  }
  ::close(fd);
  digest.sha256 = hash.hex_final();
  return digest;
}

}  // namespace flotilla
