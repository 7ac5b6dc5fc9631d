// Resolves a container's `user` ("uid", "uid:gid", "name", "name:group", ...) to numeric ids the
// way Docker does: names are looked up in the image's own /etc/passwd and /etc/group, a bare uid
// takes its primary group from /etc/passwd (else 0), and an empty user is root.
//
// The files come from an untrusted image: parse_passwd/parse_group never fail on malformed
// lines (they skip them), and files reached through symlinks are ignored, so an image cannot
// make the driver read a host file.
//
// Thread-safety: stateless functions.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/expected.hpp"

namespace flotilla::runtime::oci {

struct UserIds {
  uint32_t uid = 0;
  uint32_t gid = 0;
  std::string home;  // from /etc/passwd; empty when the user has no entry
};

struct PasswdEntry {
  std::string name;
  uint32_t uid = 0;
  uint32_t gid = 0;
  std::string home;
};

struct GroupEntry {
  std::string name;
  uint32_t gid = 0;
};

// The well-formed entries of /etc/passwd and /etc/group text.
std::vector<PasswdEntry> parse_passwd(const std::string& text);
std::vector<GroupEntry> parse_group(const std::string& text);

// A decimal id in [0, 2^32-2]; nullopt for anything else.
std::optional<uint32_t> parse_id(const std::string& text);

// Resolves `user` against the passwd/group files of the root filesystem at `rootfs`.
Expected<UserIds> resolve_user(const std::string& rootfs, const std::string& user);

}  // namespace flotilla::runtime::oci
