#include "runtime/oci/runtime_spec.hpp"

#include <algorithm>

namespace flotilla::runtime::oci {
namespace {

using nlohmann::json;

// Docker's default capability set: enough for ordinary services, nothing that reaches the host.
const std::vector<std::string> kCapabilities = {
    "CAP_CHOWN",   "CAP_DAC_OVERRIDE", "CAP_FSETID",           "CAP_FOWNER",
    "CAP_MKNOD",   "CAP_NET_RAW",      "CAP_SETGID",           "CAP_SETUID",
    "CAP_SETFCAP", "CAP_SETPCAP",      "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT",
    "CAP_KILL",    "CAP_AUDIT_WRITE"};

const std::vector<std::string> kMaskedPaths = {
    "/proc/acpi",          "/proc/asound",     "/proc/kcore",       "/proc/keys",
    "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug",
    "/sys/firmware",       "/proc/scsi"};

const std::vector<std::string> kReadonlyPaths = {"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys",
                                                 "/proc/sysrq-trigger"};

json mount(const std::string& dest, const std::string& type, const std::string& source,
           std::vector<std::string> options) {
  return json{{"destination", dest}, {"type", type}, {"source", source}, {"options", options}};
}

json default_mounts() {
  return json::array({
      mount("/proc", "proc", "proc", {"nosuid", "noexec", "nodev"}),
      mount("/dev", "tmpfs", "tmpfs", {"nosuid", "strictatime", "mode=755", "size=65536k"}),
      mount("/dev/pts", "devpts", "devpts",
            {"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}),
      mount("/dev/shm", "tmpfs", "shm", {"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}),
      mount("/dev/mqueue", "mqueue", "mqueue", {"nosuid", "noexec", "nodev"}),
      mount("/sys", "sysfs", "sysfs", {"nosuid", "noexec", "nodev", "ro"}),
      mount("/sys/fs/cgroup", "cgroup", "cgroup", {"nosuid", "noexec", "nodev", "relatime", "ro"}),
  });
}

bool is_absolute_clean(const std::string& path) {
  if (path.empty() || path[0] != '/' || path.find('\0') != std::string::npos) return false;
  // No ".." component: a destination must not climb out of the root filesystem.
  size_t start = 0;
  while (start < path.size()) {
    size_t end = path.find('/', start);
    if (end == std::string::npos) end = path.size();
    if (path.compare(start, end - start, "..") == 0 && end - start == 2) return false;
    start = end + 1;
  }
  return true;
}

}  // namespace

Expected<std::vector<std::string>> process_args(const ContainerLaunch& launch,
                                                const image::ImageConfig& image) {
  std::vector<std::string> args = launch.command.empty() ? image.entrypoint : launch.command;
  const std::vector<std::string>& tail =
      !launch.args.empty() ? launch.args
                           : (launch.command.empty() ? image.cmd : std::vector<std::string>{});
  args.insert(args.end(), tail.begin(), tail.end());
  if (args.empty() || args[0].empty()) {
    return Error("no command: the spec sets none and the image has no entrypoint or cmd");
  }
  for (const std::string& a : args) {
    if (a.find('\0') != std::string::npos) return Error("a command argument holds a NUL byte");
  }
  return args;
}

std::vector<std::string> process_env(const std::vector<std::string>& image_env,
                                     const std::map<std::string, std::string>& spec_env,
                                     const std::string& home) {
  std::vector<std::string> env;
  auto key_of = [](const std::string& entry) { return entry.substr(0, entry.find('=')); };
  auto set = [&](const std::string& key, const std::string& entry) {
    auto it = std::find_if(env.begin(), env.end(),
                           [&](const std::string& e) { return key_of(e) == key; });
    if (it != env.end()) {
      *it = entry;
    } else {
      env.push_back(entry);
    }
  };
  for (const std::string& entry : image_env) {
    if (!entry.empty() && entry.find('\0') == std::string::npos) set(key_of(entry), entry);
  }
  for (const auto& [key, value] : spec_env) set(key, key + "=" + value);
  auto has = [&](const std::string& key) {
    return std::any_of(env.begin(), env.end(),
                       [&](const std::string& e) { return key_of(e) == key; });
  };
  if (!has("PATH")) env.insert(env.begin(), kDefaultPath);
  if (!has("HOME")) env.push_back("HOME=" + (home.empty() ? std::string("/") : home));
  return env;
}

std::string effective_user(const ContainerLaunch& launch, const image::ImageConfig& image) {
  return launch.user.empty() ? image.user : launch.user;
}

Expected<json> make_runtime_spec(const LaunchSpec& spec, const image::ImageConfig& image,
                                 const RuntimeSpecInput& input) {
  const ContainerLaunch& c = spec.container;
  auto args = process_args(c, image);
  if (!args) return args.error();
  for (const auto& [key, value] : spec.env) {
    if (key.empty() || key.find('=') != std::string::npos || key.find('\0') != std::string::npos ||
        value.find('\0') != std::string::npos) {
      return Error("bad environment variable name '" + key + "'");
    }
  }
  std::string cwd = !c.workdir.empty() ? c.workdir : (!image.workdir.empty() ? image.workdir : "/");
  if (!is_absolute_clean(cwd)) return Error("workdir '" + cwd + "' is not an absolute path");
  if (spec.cpu_millis < 0 || spec.memory_bytes < 0 || c.pids_limit < 0) {
    return Error("resource limits must not be negative");
  }

  json capabilities = kCapabilities;
  json process = {
      {"terminal", false},
      {"user", {{"uid", input.user.uid}, {"gid", input.user.gid}}},
      {"args", *args},
      {"env", process_env(image.env, spec.env, input.user.home)},
      {"cwd", cwd},
      {"capabilities",
       {{"bounding", capabilities}, {"effective", capabilities}, {"permitted", capabilities}}},
      {"noNewPrivileges", true},
  };

  json mounts = default_mounts();
  for (const Mount& m : c.mounts) {
    if (!is_absolute_clean(m.source) || !is_absolute_clean(m.destination)) {
      return Error("mount '" + m.source + "' -> '" + m.destination +
                   "' needs absolute paths without '..'");
    }
    mounts.push_back(
        mount(m.destination, "bind", m.source, {"rbind", "rprivate", m.read_only ? "ro" : "rw"}));
  }

  json namespaces =
      json::array({{{"type", "pid"}}, {{"type", "ipc"}}, {{"type", "uts"}}, {{"type", "mount"}}});
  if (!c.host_network) namespaces.push_back({{"type", "network"}});

  json resources = {{"devices", json::array({{{"allow", false}, {"access", "rwm"}}})}};
  if (spec.cpu_millis > 0) {
    int64_t quota = std::max<int64_t>(1000, spec.cpu_millis * kCpuPeriodMicros / 1000);
    resources["cpu"] = {{"quota", quota}, {"period", kCpuPeriodMicros}};
  }
  if (spec.memory_bytes > 0) {
    resources["memory"] = {{"limit", spec.memory_bytes}};
    if (input.limit_swap) resources["memory"]["swap"] = spec.memory_bytes;
  }
  if (c.pids_limit > 0) resources["pids"] = {{"limit", c.pids_limit}};

  return json{
      {"ociVersion", "1.0.2"},
      {"process", process},
      {"root", {{"path", input.rootfs}, {"readonly", c.read_only_root}}},
      {"hostname", input.hostname},
      {"mounts", mounts},
      {"linux",
       {{"namespaces", namespaces},
        {"cgroupsPath", input.cgroups_path},
        {"resources", resources},
        {"maskedPaths", kMaskedPaths},
        {"readonlyPaths", kReadonlyPaths}}},
      {"annotations",
       {{"io.flotilla.instance", spec.instance_id},
        {"io.flotilla.workload", spec.workload},
        {"io.flotilla.image", c.image}}},
  };
}

}  // namespace flotilla::runtime::oci
