// Test helpers: TarBuilder writes layer tarballs (plain, gzip, zstd) entry by entry, so tests
// can make exactly the hostile or tricky layers they need; sha256_hex hashes bytes.
#pragma once

#include <string>
#include <vector>

namespace flotilla::runtime::image::testing {

class TarBuilder {
 public:
  enum class Compression { kNone, kGzip, kZstd };
  TarBuilder& file(const std::string& path, const std::string& content, int mode = 0644,
                   int uid = 0, int gid = 0);
  TarBuilder& dir(const std::string& path, int mode = 0755, int uid = 0, int gid = 0);
  TarBuilder& symlink(const std::string& path, const std::string& target);
  TarBuilder& hardlink(const std::string& path, const std::string& target);
  // Writes the tarball; returns false (with a gtest failure) on error.
  bool write(const std::string& out_path, Compression c = Compression::kGzip) const;

 private:
  struct Entry {
    std::string path, content, link;
    int type = 0, mode = 0, uid = 0, gid = 0;
  };
  std::vector<Entry> entries_;
};

std::string sha256_hex(const std::string& data);
std::string read_all(const std::string& path);
void write_all(const std::string& path, const std::string& data);

}  // namespace flotilla::runtime::image::testing
