#include "runtime/oci/user_lookup.hpp"

#include <sys/stat.h>

#include <sstream>

#include "common/fs.hpp"

namespace flotilla::runtime::oci {
namespace {

std::vector<std::string> split_fields(const std::string& line) {
  std::vector<std::string> fields;
  size_t start = 0;
  for (;;) {
    size_t colon = line.find(':', start);
    fields.push_back(line.substr(start, colon == std::string::npos ? colon : colon - start));
    if (colon == std::string::npos) return fields;
    start = colon + 1;
  }
}

std::vector<std::vector<std::string>> records(const std::string& text, size_t min_fields) {
  std::vector<std::vector<std::string>> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    auto fields = split_fields(line);
    if (fields.size() >= min_fields && !fields[0].empty()) out.push_back(std::move(fields));
  }
  return out;
}

bool is_plain_file_or_dir(const std::string& path) {
  struct stat st {};
  return ::lstat(path.c_str(), &st) == 0 && (S_ISREG(st.st_mode) || S_ISDIR(st.st_mode));
}

// A file of the image's /etc, or empty when it is absent or reached through a symlink.
std::string read_etc_file(const std::string& rootfs, const std::string& name) {
  std::string etc = rootfs + "/etc";
  std::string path = etc + "/" + name;
  if (!is_plain_file_or_dir(etc) || !is_plain_file_or_dir(path)) return "";
  auto text = fs::read_file(path);
  return text ? *text : "";
}

}  // namespace

std::optional<uint32_t> parse_id(const std::string& text) {
  if (text.empty() || text.size() > 10) return std::nullopt;
  uint64_t value = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return std::nullopt;
    value = value * 10 + static_cast<uint64_t>(c - '0');
  }
  if (value >= 0xFFFFFFFFull) return std::nullopt;  // (uid_t)-1 means "no change" to the kernel
  return static_cast<uint32_t>(value);
}

std::vector<PasswdEntry> parse_passwd(const std::string& text) {
  std::vector<PasswdEntry> entries;
  for (const auto& f : records(text, 7)) {
    auto uid = parse_id(f[2]);
    auto gid = parse_id(f[3]);
    if (uid && gid) entries.push_back({f[0], *uid, *gid, f[5]});
  }
  return entries;
}

std::vector<GroupEntry> parse_group(const std::string& text) {
  std::vector<GroupEntry> entries;
  for (const auto& f : records(text, 3)) {
    if (auto gid = parse_id(f[2])) entries.push_back({f[0], *gid});
  }
  return entries;
}

Expected<UserIds> resolve_user(const std::string& rootfs, const std::string& user) {
  auto fail = [&](const std::string& why) {
    return Error("Failed to resolve user '" + user + "': " + why);
  };
  UserIds ids;
  if (user.empty()) {
    ids.home = "/root";
    return ids;
  }
  size_t colon = user.find(':');
  std::string user_part = user.substr(0, colon);
  std::string group_part = colon == std::string::npos ? "" : user.substr(colon + 1);
  if (user_part.empty() || (colon != std::string::npos && group_part.empty())) {
    return fail("expected uid[:gid] or name[:group]");
  }
  const auto passwd = parse_passwd(read_etc_file(rootfs, "passwd"));
  std::optional<PasswdEntry> entry;
  if (auto uid = parse_id(user_part)) {
    ids.uid = *uid;
    for (const auto& e : passwd) {
      if (e.uid == *uid) {
        entry = e;
        break;
      }
    }
  } else {
    for (const auto& e : passwd) {
      if (e.name == user_part) {
        entry = e;
        break;
      }
    }
    if (!entry) return fail("no user '" + user_part + "' in the image's /etc/passwd");
    ids.uid = entry->uid;
  }
  if (entry) {
    ids.gid = entry->gid;
    ids.home = entry->home;
  }
  if (group_part.empty()) return ids;
  if (auto gid = parse_id(group_part)) {
    ids.gid = *gid;
    return ids;
  }
  for (const auto& g : parse_group(read_etc_file(rootfs, "group"))) {
    if (g.name == group_part) {
      ids.gid = g.gid;
      return ids;
    }
  }
  return fail("no group '" + group_part + "' in the image's /etc/group");
}

}  // namespace flotilla::runtime::oci
