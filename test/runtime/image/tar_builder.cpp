#include "test/runtime/image/tar_builder.hpp"

#include <archive.h>
#include <archive_entry.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <fstream>
#include <sstream>

#include "common/sha256.hpp"

namespace flotilla::runtime::image::testing {

TarBuilder& TarBuilder::file(const std::string& path, const std::string& content, int mode, int uid,
                             int gid) {
  entries_.push_back({path, content, "", AE_IFREG, mode, uid, gid});
  return *this;
}
TarBuilder& TarBuilder::dir(const std::string& path, int mode, int uid, int gid) {
  entries_.push_back({path, "", "", AE_IFDIR, mode, uid, gid});
  return *this;
}
TarBuilder& TarBuilder::symlink(const std::string& path, const std::string& target) {
  entries_.push_back({path, "", target, AE_IFLNK, 0777, 0, 0});
  return *this;
}
TarBuilder& TarBuilder::hardlink(const std::string& path, const std::string& target) {
  entries_.push_back({path, "", target, -1, 0644, 0, 0});
  return *this;
}

bool TarBuilder::write(const std::string& out_path, Compression c) const {
  archive* a = archive_write_new();
  if (c == Compression::kGzip) archive_write_add_filter_gzip(a);
  if (c == Compression::kZstd) archive_write_add_filter_zstd(a);
  archive_write_set_format_pax_restricted(a);
  if (archive_write_open_filename(a, out_path.c_str()) != ARCHIVE_OK) {
    ADD_FAILURE() << archive_error_string(a);
    archive_write_free(a);
    return false;
  }
  for (const auto& e : entries_) {
    archive_entry* entry = archive_entry_new();
    archive_entry_set_pathname(entry, e.path.c_str());
    archive_entry_set_uid(entry, e.uid);
    archive_entry_set_gid(entry, e.gid);
    archive_entry_set_mtime(entry, 1700000000, 0);
    if (e.type == -1) {
      archive_entry_set_filetype(entry, AE_IFREG);
      archive_entry_set_perm(entry, static_cast<mode_t>(e.mode));
      archive_entry_set_hardlink(entry, e.link.c_str());
      archive_entry_set_size(entry, 0);
    } else {
      archive_entry_set_filetype(entry, static_cast<unsigned>(e.type));
      archive_entry_set_perm(entry, static_cast<mode_t>(e.mode));
      if (e.type == AE_IFLNK) archive_entry_set_symlink(entry, e.link.c_str());
      archive_entry_set_size(entry,
                             e.type == AE_IFREG ? static_cast<la_int64_t>(e.content.size()) : 0);
    }
    if (archive_write_header(a, entry) != ARCHIVE_OK) {
      ADD_FAILURE() << e.path << ": " << archive_error_string(a);
    }
    if (e.type == AE_IFREG && !e.content.empty()) {
      archive_write_data(a, e.content.data(), e.content.size());
    }
    archive_entry_free(entry);
  }
  archive_write_close(a);
  archive_write_free(a);
  return true;
}

std::string sha256_hex(const std::string& data) { return flotilla::sha256_hex(data); }

std::string read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void write_all(const std::string& path, const std::string& data) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << data;
}

}  // namespace flotilla::runtime::image::testing
