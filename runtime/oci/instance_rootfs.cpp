#include "runtime/oci/instance_rootfs.hpp"

#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "common/fs.hpp"
#include "common/log.hpp"

namespace flotilla::runtime::oci {
namespace {

namespace stdfs = std::filesystem;

// overlayfs splits its options at ',' and lowerdir at ':'; such paths take the copy route.
bool overlay_safe(const std::string& path) {
  return path.find_first_of(",:\\") == std::string::npos;
}

// mountinfo escapes space, tab, newline and backslash as \ooo.
std::string unescape_mountinfo(const std::string& field) {
  std::string out;
  for (size_t i = 0; i < field.size(); ++i) {
    bool octal = field[i] == '\\' && i + 3 < field.size();
    for (size_t j = 1; octal && j <= 3; ++j) octal = field[i + j] >= '0' && field[i + j] <= '7';
    if (octal) {
      out.push_back(static_cast<char>((field[i + 1] - '0') * 64 + (field[i + 2] - '0') * 8 +
                                      (field[i + 3] - '0')));
      i += 3;
    } else {
      out.push_back(field[i]);
    }
  }
  return out;
}

Status copy_tree(const std::string& from, const std::string& to) {
  std::error_code ec;
  stdfs::copy(from, to,
              stdfs::copy_options::recursive | stdfs::copy_options::copy_symlinks |
                  stdfs::copy_options::overwrite_existing,
              ec);
  if (ec) return Error("Failed to copy '" + from + "' to '" + to + "': " + ec.message());
  // std::filesystem keeps modes but not owners: restore them, files owned by service users
  // must stay theirs.
  for (stdfs::recursive_directory_iterator it(from, ec), end; !ec && it != end; it.increment(ec)) {
    struct stat st {};
    if (::lstat(it->path().c_str(), &st) != 0) continue;
    std::string target = to + "/" + stdfs::relative(it->path(), from, ec).string();
    if (::lchown(target.c_str(), st.st_uid, st.st_gid) != 0) {
      return Error("Failed to chown '" + target + "': " + std::strerror(errno));
    }
  }
  return Ok();
}

}  // namespace

bool is_mount_point(const std::string& path) {
  std::ifstream in("/proc/self/mountinfo");
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::string id, parent, devno, root, mount_point;
    if (fields >> id >> parent >> devno >> root >> mount_point &&
        unescape_mountinfo(mount_point) == path) {
      return true;
    }
  }
  return false;
}

Expected<RootfsKind> make_instance_rootfs(const std::string& image_rootfs,
                                          const std::string& bundle) {
  const std::string rootfs = bundle + "/rootfs";
  const std::string upper = bundle + "/upper";
  const std::string work = bundle + "/work";
  for (const std::string& dir : {rootfs, upper, work}) {
    if (Status s = fs::make_dirs(dir); !s) return s.error();
  }
  if (overlay_safe(image_rootfs) && overlay_safe(upper) && overlay_safe(work)) {
    std::string options = "lowerdir=" + image_rootfs + ",upperdir=" + upper + ",workdir=" + work;
    // `volatile` (Linux 5.10+) spares the syncfs of the whole host filesystem that overlayfs
    // otherwise runs on every sync and unmount. An instance layer never outlives a node crash
    // (its container dies with the node and is recreated from the image), so nothing is lost.
    if (::mount("overlay", rootfs.c_str(), "overlay", MS_NODEV, (options + ",volatile").c_str()) ==
            0 ||
        ::mount("overlay", rootfs.c_str(), "overlay", MS_NODEV, options.c_str()) == 0) {
      return RootfsKind::kOverlay;
    }
    log::get("runtime")->info("overlay mount failed, copying the rootfs path={} error=\"{}\"",
                              rootfs, std::strerror(errno));
  }
  (void)fs::remove_all(upper);
  (void)fs::remove_all(work);
  if (Status s = copy_tree(image_rootfs, rootfs); !s) return s.error();
  return RootfsKind::kCopy;
}

Status release_instance_rootfs(const std::string& bundle) {
  const std::string rootfs = bundle + "/rootfs";
  // Lazily: a process that still has a file open in it (a runtime being torn down) must not
  // make the unmount fail.
  // Stacked mounts (a launch retried over a leftover) come off one at a time.
  for (int i = 0; i < 8 && is_mount_point(rootfs); ++i) {
    if (::umount2(rootfs.c_str(), MNT_DETACH) != 0) {
      if (errno == EINVAL) break;
      return Error("Failed to unmount '" + rootfs + "': " + std::strerror(errno));
    }
  }
  return Ok();
}

}  // namespace flotilla::runtime::oci
