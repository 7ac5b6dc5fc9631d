#include "ota/slots.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <memory>

#include "common/fs.hpp"
#include "ota/file_io.hpp"

namespace flotilla::ota {
namespace {

std::string errno_text() { return std::strerror(errno); }

bool is_file(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

}  // namespace

std::string binary_folder(const std::string& binary) {
  char resolved[PATH_MAX];
  std::string path = ::realpath(binary.c_str(), resolved) ? std::string(resolved) : binary;
  const size_t slash = path.rfind('/');
  return slash == std::string::npos ? "." : path.substr(0, slash);
}

std::string SlotSet::slot_path(const std::string& slot) const {
  return file_name.empty() ? dir + "/" + slot : dir + "/" + slot + "/" + file_name;
}

std::string SlotSet::base_path(const std::string& slot) const {
  if (file_name.empty()) return slot_path(slot);
  const std::string archive = dir + "/" + slot + "/" + kAgentArchive;
  return fs::exists(archive) ? archive : slot_path(slot);
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
    // A helper missing beside the seed is left out: complete() names it when it matters.
    if (auto st = copy_helpers(kSlotA, {}, {binary_folder(seed_binary)}, true); !st) return st;
  }
  return point_to(kSlotA);
}

Status SlotSet::copy_helpers(const std::string& slot, const std::vector<std::string>& have,
                             const std::vector<std::string>& sources, bool missing_ok) const {
  const std::string to_dir = dir + "/" + slot;
  for (const char* helper : kAgentHelpers) {
    if (std::find(have.begin(), have.end(), helper) != have.end()) continue;
    std::string from;
    for (const std::string& source : sources) {
      if (!source.empty() && is_file(source + "/" + helper)) {
        from = source + "/" + helper;
        break;
      }
    }
    if (from.empty()) {
      if (missing_ok) continue;
      std::string where;
      for (const std::string& source : sources)
        where += (where.empty() ? "'" : " or '") + source + "'";
      return Error("Failed to complete the agent slot '" + to_dir + "': " + helper +
                   " is neither in the update nor in " + where +
                   " (an agent update bundle can carry it: flotctl artifact build --payload DIR)");
    }
    struct stat st {};
    if (::stat(from.c_str(), &st) != 0) {
      return Error("Failed to copy '" + from + "': " + errno_text());
    }
    auto copied = copy_file_atomic(from, to_dir + "/" + helper, {.mode = st.st_mode & 07777});
    if (!copied) return copied.error();
  }
  return Ok();
}

Status SlotSet::complete(const std::string& slot) const {
  if (file_name.empty()) return Ok();
  std::vector<std::string> missing;
  std::vector<std::string> names = {kAgentBinary};
  names.insert(names.end(), kAgentHelpers.begin(), kAgentHelpers.end());
  for (const std::string& name : names) {
    const std::string path = dir + "/" + slot + "/" + name;
    if (!is_file(path) || ::access(path.c_str(), X_OK) != 0) missing.push_back(name);
  }
  if (missing.empty()) return Ok();
  std::string list;
  for (const std::string& m : missing) list += (list.empty() ? "" : ", ") + m;
  return Error("Failed to use the agent slot '" + dir + "/" + slot + "': " + list +
               (missing.size() == 1 ? " is" : " are") +
               " missing or not executable there (the agent runs its helpers from its own slot; "
               "without them no workload could start)");
}

}  // namespace flotilla::ota
