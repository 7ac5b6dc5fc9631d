#include "ota/slots.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>

#include "common/fs.hpp"
#include "common/sha256.hpp"

namespace flotilla::ota {
namespace {

std::string errno_text() { return std::strerror(errno); }

std::string parent_of(const std::string& path) {
  auto slash = path.rfind('/');
  return slash == std::string::npos ? "." : (slash == 0 ? "/" : path.substr(0, slash));
}

}  // namespace

std::string SlotSet::slot_path(const std::string& slot) const {
  return file_name.empty() ? dir + "/" + slot : dir + "/" + slot + "/" + file_name;
}

std::string SlotSet::active_path() const {
  return file_name.empty() ? dir + "/active" : dir + "/active/" + file_name;
}

Expected<std::string> SlotSet::active() const {
  char buf[256];
  const std::string link = dir + "/active";
  ssize_t n = ::readlink(link.c_str(), buf, sizeof(buf) - 1);
  if (n < 0) return Error("Failed to read the slot link '" + link + "': " + errno_text());
  std::string target(buf, static_cast<size_t>(n));
  if (target != kSlotA && target != kSlotB) {
    return Error("Failed to read the slot link '" + link + "': points at '" + target +
                 "', not slot-a or slot-b");
  }
  return target;
}

std::string SlotSet::active_or_default() const {
  auto slot = active();
  return slot ? *slot : kSlotA;
}

Status SlotSet::point_to(const std::string& slot,
                         const std::function<void()>& before_rename) const {
  const std::string link = dir + "/active";
  const std::string tmp = link + ".tmp";
  ::unlink(tmp.c_str());
  if (::symlink(slot.c_str(), tmp.c_str()) != 0) {
    return Error("Failed to switch '" + link + "' to " + slot + ": " + errno_text());
  }
  if (before_rename) before_rename();
  if (::rename(tmp.c_str(), link.c_str()) != 0) {
    std::string cause = errno_text();
    ::unlink(tmp.c_str());
    return Error("Failed to switch '" + link + "' to " + slot + ": " + cause);
  }
  fs::fsync_dir(dir);
  return Ok();
}

Status SlotSet::prepare(const std::string& seed_binary) const {
  if (auto st = fs::make_dirs(dir); !st) return st;
  for (const char* slot : {kSlotA, kSlotB}) {
    if (file_name.empty()) {
      const std::string path = slot_path(slot);
      int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
      if (fd < 0) return Error("Failed to create the slot '" + path + "': " + errno_text());
      ::close(fd);
    } else if (auto st = fs::make_dirs(dir + "/" + slot); !st) {
      return st;
    }
  }
  if (active()) return Ok();
  // No link yet: slot-a becomes active; the agent's slot-a gets the running binary.
  if (!file_name.empty() && !fs::exists(slot_path(kSlotA))) {
    if (seed_binary.empty()) {
      return Error("Failed to prepare the agent slots '" + dir + "': no binary to seed slot-a");
    }
    auto copied = copy_file_atomic(seed_binary, slot_path(kSlotA), true);
    if (!copied) return copied.error();
  }
  return point_to(kSlotA);
}

Expected<std::string> copy_file_atomic(const std::string& src, const std::string& dest,
                                       bool executable, const std::function<void()>& at_half) {
  auto fail = [&](const std::string& cause) {
    return Error("Failed to write '" + dest + "' from '" + src + "': " + cause);
  };
  int in = ::open(src.c_str(), O_RDONLY | O_CLOEXEC);
  if (in < 0) return fail(errno_text());
  struct stat st {};
  ::fstat(in, &st);
  const uint64_t total = static_cast<uint64_t>(st.st_size);
  const std::string tmp = dest + ".tmp";
  int out = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, executable ? 0755 : 0644);
  if (out < 0) {
    std::string cause = errno_text();
    ::close(in);
    return fail(cause);
  }
  Sha256 hash;
  std::string error;
  uint64_t written = 0;
  bool half_seen = false;
  std::unique_ptr<char[]> buf(new char[1 << 20]);
  while (true) {
    ssize_t n = ::read(in, buf.get(), 1 << 20);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      error = "read: " + errno_text();
      break;
    }
    if (n == 0) break;
    if (!fs::write_all(out, std::string_view(buf.get(), static_cast<size_t>(n)))) {
      error = "write: " + errno_text();
      break;
    }
    hash.update(std::string_view(buf.get(), static_cast<size_t>(n)));
    written += static_cast<uint64_t>(n);
    if (!half_seen && written * 2 >= total && written < total && at_half) {
      half_seen = true;
      ::fsync(out);
      at_half();
    }
  }
  ::close(in);
  if (error.empty() && ::fsync(out) != 0) error = "fsync: " + errno_text();
  ::close(out);
  if (error.empty() && ::rename(tmp.c_str(), dest.c_str()) != 0) error = "rename: " + errno_text();
  if (!error.empty()) {
    ::unlink(tmp.c_str());
    return fail(error);
  }
  fs::fsync_dir(parent_of(dest));
  return hash.hex_final();
}

}  // namespace flotilla::ota
