#include "ota/slots.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>

#include "common/fs.hpp"
#include "ota/file_io.hpp"

namespace flotilla::ota {
namespace {

std::string errno_text() { return std::strerror(errno); }

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
    auto copied = copy_file_atomic(seed_binary, slot_path(kSlotA), {.mode = 0755});
    if (!copied) return copied.error();
  }
  return point_to(kSlotA);
}

}  // namespace flotilla::ota
