#include "runtime/image/layer_unpack.hpp"

#include <archive.h>
#include <archive_entry.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <set>
#include <vector>

#include "common/dynlib.hpp"

namespace flotilla::runtime::image {
namespace {

namespace stdfs = std::filesystem;

// The libarchive functions used here. libarchive is dlopen'ed (common/dynlib.hpp), not linked:
// it and what it depends on (libxml2, ICU, ...) are loaded only when a node unpacks its first
// image layer.
struct LibArchive {
  decltype(&::archive_read_new) read_new;
  decltype(&::archive_read_free) read_free;
  decltype(&::archive_read_support_filter_gzip) read_support_filter_gzip;
  decltype(&::archive_read_support_filter_zstd) read_support_filter_zstd;
  decltype(&::archive_read_support_format_tar) read_support_format_tar;
  decltype(&::archive_read_open_filename) read_open_filename;
  decltype(&::archive_read_next_header) read_next_header;
  decltype(&::archive_read_data_block) read_data_block;
  decltype(&::archive_write_disk_new) write_disk_new;
  decltype(&::archive_write_disk_set_options) write_disk_set_options;
  decltype(&::archive_write_header) write_header;
  decltype(&::archive_write_data_block) write_data_block;
  decltype(&::archive_write_finish_entry) write_finish_entry;
  decltype(&::archive_write_close) write_close;
  decltype(&::archive_write_free) write_free;
  decltype(&::archive_error_string) error_string;
  decltype(&::archive_entry_pathname) entry_pathname;
  decltype(&::archive_entry_hardlink) entry_hardlink;
  decltype(&::archive_entry_set_hardlink) entry_set_hardlink;
  decltype(&::archive_entry_set_pathname) entry_set_pathname;
  decltype(&::archive_entry_filetype) entry_filetype;
  decltype(&::archive_entry_size) entry_size;
};

// libarchive.so.13, loaded once per process (thread-safe); an Error naming it when missing.
const Expected<const LibArchive*>& libarchive() {
  static const Expected<const LibArchive*> loaded = []() -> Expected<const LibArchive*> {
    auto lib = DynLib::open("libarchive.so.13");
    if (!lib) return lib.error();
    static LibArchive api;
    lib->bind("archive_read_new", api.read_new);
    lib->bind("archive_read_free", api.read_free);
    lib->bind("archive_read_support_filter_gzip", api.read_support_filter_gzip);
    lib->bind("archive_read_support_filter_zstd", api.read_support_filter_zstd);
    lib->bind("archive_read_support_format_tar", api.read_support_format_tar);
    lib->bind("archive_read_open_filename", api.read_open_filename);
    lib->bind("archive_read_next_header", api.read_next_header);
    lib->bind("archive_read_data_block", api.read_data_block);
    lib->bind("archive_write_disk_new", api.write_disk_new);
    lib->bind("archive_write_disk_set_options", api.write_disk_set_options);
    lib->bind("archive_write_header", api.write_header);
    lib->bind("archive_write_data_block", api.write_data_block);
    lib->bind("archive_write_finish_entry", api.write_finish_entry);
    lib->bind("archive_write_close", api.write_close);
    lib->bind("archive_write_free", api.write_free);
    lib->bind("archive_error_string", api.error_string);
    lib->bind("archive_entry_pathname", api.entry_pathname);
    lib->bind("archive_entry_hardlink", api.entry_hardlink);
    lib->bind("archive_entry_set_hardlink", api.entry_set_hardlink);
    lib->bind("archive_entry_set_pathname", api.entry_set_pathname);
    lib->bind("archive_entry_filetype", api.entry_filetype);
    lib->bind("archive_entry_size", api.entry_size);
    if (auto st = lib->status(); !st) return st.error();
    return &api;
  }();
  return loaded;
}

constexpr const char* kWhiteoutPrefix = ".wh.";
constexpr const char* kOpaque = ".wh..wh..opq";

// "./a//b/" -> "a/b"; an Error for absolute paths and ".." components.
Expected<std::string> clean_path(const std::string& raw, const char* what) {
  if (raw.empty()) return Error(std::string("empty ") + what);
  // umoci (and others) write the root folder itself as "/": that one names the root, not the host.
  if (raw == "/") return std::string();
  if (raw[0] == '/') return Error(std::string(what) + " '" + raw + "' is absolute");
  std::string out;
  size_t i = 0;
  while (i <= raw.size()) {
    size_t j = raw.find('/', i);
    if (j == std::string::npos) j = raw.size();
    std::string comp = raw.substr(i, j - i);
    i = j + 1;
    if (comp.empty() || comp == ".") continue;
    if (comp == "..") return Error(std::string(what) + " '" + raw + "' escapes the root (..)");
    if (!out.empty()) out += "/";
    out += comp;
  }
  return out;
}

// Refuses a relative path whose parent folders (inside `root`) include a symlink: writing or
// deleting through it could touch the host.
Status check_no_symlink_parents(const std::string& root, const std::string& rel) {
  std::string cur = root;
  size_t i = 0;
  while (true) {
    size_t j = rel.find('/', i);
    if (j == std::string::npos) return Ok();
    cur += "/" + rel.substr(i, j - i);
    i = j + 1;
    struct stat st {};
    if (::lstat(cur.c_str(), &st) != 0) return Ok();  // missing: nothing to traverse
    if (S_ISLNK(st.st_mode)) {
      return Error("'" + rel + "' goes through the symlink '" + cur.substr(root.size() + 1) + "'");
    }
  }
}

// Deletes what lies under `dir` except paths this layer itself created.
void clear_opaque(const std::string& root, const std::string& dir_rel,
                  const std::set<std::string>& from_this_layer) {
  std::string dir = dir_rel.empty() ? root : root + "/" + dir_rel;
  std::error_code ec;
  for (const auto& e : stdfs::directory_iterator(dir, ec)) {
    std::string rel = (dir_rel.empty() ? "" : dir_rel + "/") + e.path().filename().string();
    if (from_this_layer.count(rel)) continue;
    stdfs::remove_all(e.path(), ec);
  }
}

// libarchive's message for the last error; it has none for some failures (it returns NULL).
std::string error_text(const LibArchive& la, archive* a) {
  const char* text = la.error_string(a);
  return text != nullptr ? text : "malformed archive (libarchive gave no reason)";
}

struct ArchiveDeleter {
  void operator()(archive* a) const { (*libarchive())->read_free(a); }
};
struct WriterDeleter {
  void operator()(archive* a) const { (*libarchive())->write_free(a); }
};

}  // namespace

Status apply_layer(const std::string& layer_path, const std::string& rootfs_in) {
  auto fail = [&](const std::string& cause) {
    return Error("Failed to unpack layer '" + layer_path + "': " + cause);
  };
  const auto& loaded = libarchive();
  if (!loaded) return fail(loaded.error().message());
  const LibArchive& la = **loaded;
  char resolved[PATH_MAX];
  if (::realpath(rootfs_in.c_str(), resolved) == nullptr) {
    return fail("cannot resolve '" + rootfs_in + "': " + std::strerror(errno));
  }
  const std::string root = resolved;

  std::unique_ptr<archive, ArchiveDeleter> in(la.read_new());
  la.read_support_filter_gzip(in.get());
  la.read_support_filter_zstd(in.get());
  la.read_support_format_tar(in.get());
  if (la.read_open_filename(in.get(), layer_path.c_str(), 1 << 16) != ARCHIVE_OK) {
    return fail(error_text(la, in.get()));
  }
  std::unique_ptr<archive, WriterDeleter> out(la.write_disk_new());
  // Owners are the numeric ids in the tar (no user-name lookup on the host); the SECURE flags
  // make libarchive refuse to write through symlinks or via "..". Entry names are made absolute
  // (root + name) below after our own checks, so NOABSOLUTEPATHS cannot be set here: the
  // absolute-path check is done on the original name instead.
  la.write_disk_set_options(out.get(),
                            ARCHIVE_EXTRACT_TIME | ARCHIVE_EXTRACT_PERM | ARCHIVE_EXTRACT_OWNER |
                                ARCHIVE_EXTRACT_XATTR | ARCHIVE_EXTRACT_SECURE_SYMLINKS |
                                ARCHIVE_EXTRACT_SECURE_NODOTDOT | ARCHIVE_EXTRACT_UNLINK);

  std::set<std::string> created;
  bool ends_early = false;
  archive_entry* entry = nullptr;
  while (true) {
    int r = la.read_next_header(in.get(), &entry);
    if (r == ARCHIVE_EOF) break;
    if (r < ARCHIVE_WARN) return fail(error_text(la, in.get()));
    const char* name_c = la.entry_pathname(entry);
    auto rel = clean_path(name_c ? name_c : "", "entry");
    if (!rel) return fail(rel.error().message());
    if (rel->empty()) continue;  // "./" itself: the root's mode is ours
    if (auto st = check_no_symlink_parents(root, *rel); !st) return fail(st.error().message());

    std::string base = rel->substr(rel->rfind('/') == std::string::npos ? 0 : rel->rfind('/') + 1);
    std::string parent = rel->find('/') == std::string::npos ? "" : rel->substr(0, rel->rfind('/'));
    if (base == kOpaque) {
      clear_opaque(root, parent, created);
      continue;
    }
    if (base.rfind(kWhiteoutPrefix, 0) == 0) {
      std::string victim = base.substr(std::strlen(kWhiteoutPrefix));
      if (victim.empty() || victim == "." || victim == "..")
        return fail("bad whiteout '" + *rel + "'");
      std::error_code ec;
      stdfs::remove_all(root + "/" + (parent.empty() ? "" : parent + "/") + victim, ec);
      continue;
    }

    const std::string target = root + "/" + *rel;
    if (const char* link = la.entry_hardlink(entry); link != nullptr) {
      auto link_rel = clean_path(link, "hard link target");
      if (!link_rel) return fail(link_rel.error().message());
      if (auto st = check_no_symlink_parents(root, *link_rel); !st) {
        return fail("hard link target " + st.error().message());
      }
      std::string link_abs = root + "/" + *link_rel;
      la.entry_set_hardlink(entry, link_abs.c_str());
    }
    // A file replacing a folder (or the reverse) from a lower layer: remove the old one first.
    struct stat old {};
    if (::lstat(target.c_str(), &old) == 0) {
      bool new_is_dir = la.entry_filetype(entry) == AE_IFDIR;
      if (S_ISDIR(old.st_mode) != new_is_dir || (!new_is_dir && S_ISDIR(old.st_mode))) {
        std::error_code ec;
        stdfs::remove_all(target, ec);
      }
    }
    la.entry_set_pathname(entry, target.c_str());
    r = la.write_header(out.get(), entry);
    if (r < ARCHIVE_WARN) return fail("'" + *rel + "': " + error_text(la, out.get()));
    if (la.entry_size(entry) > 0 && la.entry_filetype(entry) == AE_IFREG) {
      const void* buf = nullptr;
      size_t size = 0;
      la_int64_t offset = 0;
      la_int64_t written = 0;
      while ((r = la.read_data_block(in.get(), &buf, &size, &offset)) == ARCHIVE_OK) {
        if (la.write_data_block(out.get(), buf, size, offset) < ARCHIVE_WARN) {
          return fail("'" + *rel + "': " + error_text(la, out.get()));
        }
        written = std::max<la_int64_t>(written, offset + static_cast<la_int64_t>(size));
      }
      if (r != ARCHIVE_EOF) {
        // umoci 0.4.7 ends its layers right after the last file's data, without the block
        // padding and the end-of-archive blocks. The file itself is complete (and the blob's
        // digest is what the publisher made), so that one shape of truncation is the end.
        if (written < la.entry_size(entry)) {
          return fail("'" + *rel + "': " + error_text(la, in.get()));
        }
        ends_early = true;
      }
    }
    if (la.write_finish_entry(out.get()) < ARCHIVE_WARN) {
      return fail("'" + *rel + "': " + error_text(la, out.get()));
    }
    created.insert(*rel);
    if (ends_early) break;
  }
  // Folder modes and times are set at close (libarchive defers them so it can fill the folders).
  if (la.write_close(out.get()) < ARCHIVE_WARN) return fail(error_text(la, out.get()));
  return Ok();
}

}  // namespace flotilla::runtime::image
