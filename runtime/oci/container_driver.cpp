#include "runtime/oci/container_driver.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "common/fs.hpp"
#include "common/log.hpp"
#include "runtime/detached_spawn.hpp"
#include "runtime/instance_records.hpp"
#include "runtime/oci/cgroup_paths.hpp"
#include "runtime/oci/instance_rootfs.hpp"
#include "runtime/oci/runtime_spec.hpp"
#include "runtime/oci/user_lookup.hpp"

namespace flotilla::runtime::oci {
namespace {

namespace stdfs = std::filesystem;

constexpr const char* kMonitorName = "flotilla-oci-monitor";
constexpr const char* kContainerPidFile = "container.pid";
constexpr const char* kImageFile = "image";
constexpr size_t kMaxHostnameLength = 63;
constexpr int kMonitorReadyFd = 3;

std::shared_ptr<spdlog::logger> logger() { return log::get("runtime"); }

// Symlinks resolved too: the kernel names mount points by their real path, and the driver must
// recognise its own overlay mounts in /proc/self/mountinfo.
std::string make_canonical(const std::string& path) {
  std::error_code ec;
  stdfs::path real = stdfs::weakly_canonical(fs::absolute_path(path), ec);
  return ec ? fs::absolute_path(path) : real.string();
}

bool name_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '_' || c == '-' || c == '+';
}

std::string hostname_for(const LaunchSpec& spec, const std::string& name) {
  if (spec.container.host_network) {
    if (std::string host = fs::host_name(""); !host.empty()) return host;
  }
  std::string out;
  for (char c : name.substr(0, kMaxHostnameLength)) {
    out.push_back((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ? c
                                                                                             : '-');
  }
  return out;
}

// Bundle files need no fsync: a bundle does not outlive a crash of the node in any useful way
// (its container dies too, and recover() lists the bundle for cleanup), while an fsync on a
// busy disk costs more than the rest of a launch.
Status write_unsynced(const std::string& path, const std::string& data) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return Error("Failed to create '" + path + "': " + std::strerror(errno));
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = ::write(fd, data.data() + off, data.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      int saved = errno;
      ::close(fd);
      return Error("Failed to write '" + path + "': " + std::strerror(saved));
    }
    off += static_cast<size_t>(n);
  }
  if (::close(fd) != 0) return Error("Failed to write '" + path + "': " + std::strerror(errno));
  return Ok();
}

}  // namespace

std::string container_name(const std::string& instance_id) {
  if (std::all_of(instance_id.begin(), instance_id.end(), name_char)) return instance_id;
  std::string name;
  uint64_t hash = 1469598103934665603ull;  // FNV-1a
  for (char c : instance_id) {
    name.push_back(name_char(c) ? c : '_');
    hash = (hash ^ static_cast<unsigned char>(c)) * 1099511628211ull;
  }
  char suffix[20];
  std::snprintf(suffix, sizeof suffix, "-%012llx",
                static_cast<unsigned long long>(hash & 0xFFFFFFFFFFFFull));
  return name + suffix;
}

Expected<std::unique_ptr<ContainerDriver>> ContainerDriver::create(ContainerDriverConfig config,
                                                                   image::ImageSource& images,
                                                                   CommandRunner* runner) {
  if (config.root.empty()) return Error("Failed to create the container driver: no root folder");
  config.root = make_canonical(config.root);
  auto binary = detect_runtime(config.runtime_path);
  if (!binary) return binary.error().WithContext("Failed to create the container driver");
  if (config.shim_path.empty()) config.shim_path = default_shim_path();
  config.shim_path = fs::absolute_path(config.shim_path);
  if (config.monitor_path.empty()) {
    config.monitor_path = (stdfs::path(config.shim_path).parent_path() / kMonitorName).string();
  }
  config.monitor_path = fs::absolute_path(config.monitor_path);
  std::unique_ptr<CommandRunner> owned;
  if (runner == nullptr) {
    owned = std::make_unique<SystemCommandRunner>();
    runner = owned.get();
  }
  logger()->info("container driver ready runtime={} root={}", *binary, config.root);
  return std::unique_ptr<ContainerDriver>(
      new ContainerDriver(std::move(config), *binary, images, std::move(owned), *runner));
}

ContainerDriver::ContainerDriver(ContainerDriverConfig config, std::string runtime_binary,
                                 image::ImageSource& images,
                                 std::unique_ptr<CommandRunner> owned_runner, CommandRunner& runner)
    : config_(std::move(config)),
      images_(images),
      owned_runner_(std::move(owned_runner)),
      runtime_(std::move(runtime_binary), config_.root + "/state", runner),
      shims_(config_.root + "/shim", config_.shim_path),
      limit_swap_(swap_limit_supported()) {}

std::string ContainerDriver::bundle_dir(const std::string& id) const {
  return config_.root + "/bundles/" + id;
}

std::string ContainerDriver::cgroups_path(const std::string& id) const {
  std::string parent = config_.cgroup_parent;
  while (parent.size() > 1 && parent.back() == '/') parent.pop_back();
  if (parent.empty()) return container_name(id);
  return (parent == "/" ? "" : parent) + "/" + container_name(id);
}

std::string ContainerDriver::shim_instance_dir(const std::string& id) const {
  return config_.root + "/shim/instances/" + id;
}

std::string ContainerDriver::log_path(const std::string& id, bool stderr_stream) const {
  return shims_.log_path(id, stderr_stream);
}

int64_t ContainerDriver::container_pid(const std::string& id) const {
  auto text = fs::read_file(bundle_dir(id) + "/" + kContainerPidFile);
  if (!text) return 0;
  long long pid = std::atoll(text->c_str());
  return pid > 1 ? pid : 0;
}

Preparation ContainerDriver::prepare(const LaunchSpec& spec) {
  if (spec.container.image.empty()) {
    return Preparation{Preparation::State::kFailed, "the container section names no image"};
  }
  return images_.prepare(spec.container.image);
}

Expected<Handle> ContainerDriver::launch(const LaunchSpec& spec) {
  auto fail = [&](const std::string& why) {
    logger()->warn("launch failed instance={} error=\"{}\"", spec.instance_id, why);
    return Error("Failed to launch container '" + spec.instance_id + "': " + why);
  };
  if (Status s = validate_instance_id(spec.instance_id); !s) return fail(s.error().message());
  if (spec.type != type()) return fail("its type is '" + spec.type + "', not 'container'");
  if (spec.container.image.empty()) return fail("no image given");
  if (spec.log_limit_bytes == 0) return fail("log_limit_bytes must be greater than 0");
  if (::access(config_.monitor_path.c_str(), X_OK) != 0) {
    return fail("monitor '" + config_.monitor_path +
                "' is not executable: " + std::strerror(errno));
  }
  const std::string bundle = bundle_dir(spec.instance_id);
  if (Status s = fs::make_dirs(config_.root + "/bundles"); !s) return fail(s.error().message());
  if (Status s = fs::make_dirs(runtime_.state_root()); !s) return fail(s.error().message());
  // A plain mkdir claims the id: a second launch of the same instance fails here.
  if (::mkdir(bundle.c_str(), 0700) != 0) {
    if (errno == EEXIST) return fail("it already exists (clean it up first)");
    return fail("Failed to create directory '" + bundle + "': " + std::strerror(errno));
  }
  auto handle = start(spec, bundle);
  if (!handle) {
    if (Status s = remove_instance(spec.instance_id); !s) {
      logger()->warn("cleanup after a failed launch failed instance={} error=\"{}\"",
                     spec.instance_id, s.error().message());
    }
    return fail(handle.error().message());
  }
  in_use_[spec.instance_id] = spec.container.image;
  publish_in_use();
  logger()->info("container launched instance={} workload={} image={} pid={} runtime={}",
                 spec.instance_id, spec.workload, spec.container.image, handle->pid,
                 runtime_.name());
  return handle;
}

// Everything between claiming the bundle folder and a running container. On an Error the caller
// removes what was made.
Expected<Handle> ContainerDriver::start(const LaunchSpec& spec, const std::string& bundle) {
  const std::string& id = spec.instance_id;
  auto image = images_.unpacked(spec.container.image);
  if (!image) {
    return Error("image '" + spec.container.image +
                 "' is not ready on the node (prepare() it first): " + image.error().message());
  }
  auto user = resolve_user(image->rootfs, effective_user(spec.container, image->config));
  if (!user) return user.error();
  RuntimeSpecInput input;
  input.rootfs = bundle + "/rootfs";
  input.user = *user;
  input.cgroups_path = cgroups_path(id);
  input.hostname = hostname_for(spec, container_name(id));
  input.limit_swap = limit_swap_;
  auto config = make_runtime_spec(spec, image->config, input);
  if (!config) return config.error();
  if (Status s = write_unsynced(bundle + "/" + kImageFile, spec.container.image); !s) {
    return s.error();
  }
  auto kind = make_instance_rootfs(image->rootfs, bundle);
  if (!kind) return kind.error();
  if (Status s = write_unsynced(bundle + "/config.json", config->dump(2)); !s) {
    return s.error();
  }

  return start_monitor(spec, bundle);
}

// Starts flotilla-oci-monitor, which starts the container and reports once it runs (or why the
// runtime failed). It keeps its records where the process driver keeps a shim's, so `shims_`
// observes, stops, cleans up and recovers it like any process instance.
Expected<Handle> ContainerDriver::start_monitor(const LaunchSpec& spec, const std::string& bundle) {
  const std::string& id = spec.instance_id;
  const std::string records = shim_instance_dir(id);
  const std::string logs = stdfs::path(log_path(id, false)).parent_path().string();
  if (Status s = fs::make_dirs(config_.root + "/shim/instances"); !s) return s.error();
  if (Status s = fs::make_dirs(logs); !s) return s.error();
  if (::mkdir(records.c_str(), 0750) != 0) {
    return Error("Failed to create directory '" + records + "': " + std::strerror(errno));
  }
  const std::string pid_file = bundle + "/" + kContainerPidFile;
  std::vector<std::string> argv = {config_.monitor_path,
                                   "--ready-fd=" + std::to_string(kMonitorReadyFd),
                                   records,
                                   logs,
                                   std::to_string(spec.log_limit_bytes),
                                   pid_file,
                                   "--"};
  for (std::string& a : runtime_.run_detached_args(bundle, container_name(id), pid_file)) {
    argv.push_back(std::move(a));
  }
  auto report = spawn_detached(argv, {kDefaultPath}, kMonitorReadyFd, kStartTimeout);
  if (!report) return report.error();
  auto record_text = fs::read_file(records + "/" + kPidRecordFile);
  auto record = record_text ? parse_pid_record(*record_text) : std::nullopt;
  std::string text = report->text;
  while (!text.empty() && text.back() == '\n') text.pop_back();
  if (report->timed_out || text != "ok") {
    if (report->timed_out) {
      // Whatever the runtime got to, it goes: a launch that failed leaves nothing running.
      (void)runtime_.kill(container_name(id), "KILL");
      if (record) (void)shims_.kill(Handle{id, record->pid, record->start_ticks, type()});
      text = "error: " + runtime_.name() + " did not start the container within " +
             std::to_string(kStartTimeout.count()) + " ms";
    }
    if (Status s = shims_.cleanup(id); !s) {
      logger()->warn("cleanup after a failed start failed instance={} error=\"{}\"", id,
                     s.error().message());
    }
    if (text.rfind("error: ", 0) == 0) text = text.substr(7);
    return Error(runtime_.name() + ": " + (text.empty() ? "the monitor exited early" : text));
  }
  if (!record) {
    return Error("the monitor reported ready but left no readable '" + records + "/" +
                 kPidRecordFile + "'");
  }
  return Handle{id, record->pid, record->start_ticks, type()};
}

Observation ContainerDriver::observe(const Handle& handle) {
  Observation o = shims_.observe(handle);
  if (o.state != RunState::kExited) return o;
  if (o.signal != 0) o.exit_code = 128 + o.signal;
  if (o.exit_code == 128 + SIGKILL) {
    auto cgroup = memory_cgroup(cgroups_path(handle.instance_id));
    auto ooms = cgroup ? oom_kill_count(*cgroup) : std::nullopt;
    if (ooms && *ooms > 0) {
      o.message = "OOMKilled: the container exceeded its memory limit (exit code 137)";
    }
  }
  return o;
}

Status ContainerDriver::terminate(const Handle& handle) {
  // The shim forwards SIGTERM to the monitor, which forwards it to the container's init.
  return shims_.terminate(handle);
}

Status ContainerDriver::kill(const Handle& handle) {
  if (Status s = validate_instance_id(handle.instance_id); !s) return s;
  const std::string name = container_name(handle.instance_id);
  if (runtime_.has_state(name)) {
    // With the init gone the pid namespace goes too; the monitor and shim then record a
    // SIGKILL. Killing the shim as well would lose that record.
    Status s = runtime_.kill(name, "KILL");
    if (s) {
      logger()->info("container sent SIGKILL instance={}", handle.instance_id);
      return Ok();
    }
    logger()->debug("runtime kill failed instance={} error=\"{}\"", handle.instance_id,
                    s.error().message());
  }
  return shims_.kill(handle);
}

Status ContainerDriver::cleanup(const std::string& id) {
  if (Status s = validate_instance_id(id); !s) {
    return Error("Failed to clean up container '" + id + "': " + s.error().message());
  }
  if (Status s = shims_.cleanup(id); !s) return s;
  if (Status s = remove_instance(id); !s) {
    return Error("Failed to clean up container '" + id + "': " + s.error().message());
  }
  in_use_.erase(id);
  publish_in_use();
  logger()->info("container cleaned up instance={}", id);
  return Ok();
}

Status ContainerDriver::remove_instance(const std::string& id) {
  const std::string name = container_name(id);
  if (runtime_.has_state(name)) {
    if (Status s = runtime_.remove(name); !s) return s;
  }
  const std::string bundle = bundle_dir(id);
  if (Status s = release_instance_rootfs(bundle); !s) return s;
  return fs::remove_all(bundle);
}

std::vector<Handle> ContainerDriver::recover() {
  std::vector<Handle> handles = shims_.recover();
  std::set<std::string> ids, names;
  for (Handle& h : handles) {
    h.type = type();
    ids.insert(h.instance_id);
  }
  // Bundles whose shim never started (or whose records were lost), and runtime state nobody
  // has a bundle for: listed so the agent kills and cleans them up.
  std::error_code ec;
  stdfs::directory_iterator it(config_.root + "/bundles", ec);
  for (; !ec && it != stdfs::directory_iterator(); it.increment(ec)) {
    std::string id = it->path().filename().string();
    if (validate_instance_id(id) && ids.insert(id).second) handles.push_back({id, 0, 0, type()});
  }
  for (const std::string& id : ids) names.insert(container_name(id));
  for (const std::string& name : runtime_.list()) {
    if (!names.count(name) && validate_instance_id(name) && ids.insert(name).second) {
      handles.push_back({name, 0, 0, type()});
    }
  }
  std::sort(handles.begin(), handles.end(),
            [](const Handle& a, const Handle& b) { return a.instance_id < b.instance_id; });
  in_use_.clear();
  for (const Handle& h : handles) {
    if (auto ref = fs::read_file(bundle_dir(h.instance_id) + "/" + kImageFile)) {
      in_use_[h.instance_id] = *ref;
    }
  }
  publish_in_use();
  logger()->debug("recover found={}", handles.size());
  return handles;
}

Expected<int> ContainerDriver::exec(const Handle& handle, const std::vector<std::string>& argv,
                                    std::chrono::milliseconds timeout) {
  if (Status s = validate_instance_id(handle.instance_id); !s) return s.error();
  static uint64_t counter = 0;
  std::string pid_file =
      bundle_dir(handle.instance_id) + "/exec-" + std::to_string(++counter) + ".pid";
  return runtime_.exec(container_name(handle.instance_id), argv, timeout, pid_file);
}

void ContainerDriver::publish_in_use() {
  std::set<std::string> refs;
  for (const auto& [id, ref] : in_use_) refs.insert(ref);
  images_.set_in_use(refs);
}

}  // namespace flotilla::runtime::oci
