#include "runtime/oci/cgroup_paths.hpp"

#include <fstream>
#include <sstream>
#include <vector>

#include "common/fs.hpp"

namespace flotilla::runtime::oci {
namespace {

struct MountedHierarchy {
  std::string mount_point;
  bool v2 = false;
};

bool has_option(const std::string& options, const std::string& wanted) {
  std::istringstream in(options);
  std::string option;
  while (std::getline(in, option, ',')) {
    if (option == wanted) return true;
  }
  return false;
}

// The hierarchy that holds the memory controller: a v1 "cgroup" mount with the memory option,
// else a cgroup2 mount that offers memory.
std::optional<MountedHierarchy> memory_hierarchy() {
  std::ifstream in("/proc/self/mountinfo");
  std::string line;
  std::optional<MountedHierarchy> v2;
  while (std::getline(in, line)) {
    size_t dash = line.find(" - ");
    if (dash == std::string::npos) continue;
    std::istringstream head(line.substr(0, dash));
    std::istringstream tail(line.substr(dash + 3));
    std::string id, parent, devno, root, mount_point, type, source, options;
    if (!(head >> id >> parent >> devno >> root >> mount_point) ||
        !(tail >> type >> source >> options)) {
      continue;
    }
    if (type == "cgroup" && has_option(options, "memory")) return MountedHierarchy{mount_point};
    if (type == "cgroup2" && !v2) {
      auto controllers = fs::read_file(mount_point + "/cgroup.controllers");
      std::istringstream words(controllers ? *controllers : "");
      std::string word;
      while (words >> word) {
        if (word == "memory") v2 = MountedHierarchy{mount_point, true};
      }
    }
  }
  return v2;
}

// This process's cgroup in the memory hierarchy (/proc/self/cgroup: "N:memory:/path" on v1,
// "0::/path" on v2).
std::string own_cgroup(bool v2) {
  std::ifstream in("/proc/self/cgroup");
  std::string line;
  while (std::getline(in, line)) {
    size_t first = line.find(':');
    size_t second = first == std::string::npos ? first : line.find(':', first + 1);
    if (second == std::string::npos) continue;
    std::string controllers = line.substr(first + 1, second - first - 1);
    if ((v2 && line.compare(0, first, "0") == 0 && controllers.empty()) ||
        (!v2 && has_option(controllers, "memory"))) {
      return line.substr(second + 1);
    }
  }
  return "/";
}

}  // namespace

std::optional<MemoryCgroup> memory_cgroup(const std::string& cgroups_path) {
  auto hierarchy = memory_hierarchy();
  if (!hierarchy) return std::nullopt;
  std::string path = cgroups_path;
  if (path.empty() || path[0] != '/') {
    std::string own = own_cgroup(hierarchy->v2);
    path = (own == "/" ? "" : own) + "/" + path;
  }
  return MemoryCgroup{hierarchy->mount_point + path, hierarchy->v2};
}

std::optional<uint64_t> parse_oom_kill(const std::string& text) {
  std::istringstream in(text);
  std::string key;
  std::string value;
  while (in >> key >> value) {
    if (key != "oom_kill") continue;
    if (value.empty() || value.size() > 19 ||
        value.find_first_not_of("0123456789") != std::string::npos) {
      return std::nullopt;
    }
    return std::stoull(value);
  }
  return std::nullopt;
}

std::optional<uint64_t> oom_kill_count(const MemoryCgroup& cgroup) {
  auto text = fs::read_file(cgroup.dir + (cgroup.v2 ? "/memory.events" : "/memory.oom_control"));
  if (!text) return std::nullopt;
  return parse_oom_kill(*text);
}

bool swap_limit_supported() {
  auto hierarchy = memory_hierarchy();
  if (!hierarchy) return false;
  // v2 offers memory.swap.max only with swap accounting, and only below the root; leave swap
  // alone there rather than make the runtime fail on a missing file.
  if (hierarchy->v2) return false;
  return fs::exists(hierarchy->mount_point + "/memory.memsw.limit_in_bytes");
}

}  // namespace flotilla::runtime::oci
