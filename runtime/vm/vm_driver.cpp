#include "runtime/vm/vm_driver.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>

#include "common/fs.hpp"
#include "common/log.hpp"
#include "runtime/instance_records.hpp"
#include "runtime/proc_stat.hpp"
#include "runtime/run_command.hpp"
#include "runtime/vm/disk_format.hpp"
#include "runtime/vm/qemu_command.hpp"
#include "runtime/vm/qmp_client.hpp"

namespace flotilla::runtime::vm {
namespace {

namespace stdfs = std::filesystem;

constexpr const char* kOverlayFile = "disk.qcow2";
constexpr const char* kQmpSocketFile = "qmp.sock";
constexpr const char* kQemuPidFile = "qemu.pid";
constexpr const char* kStopRequestFile = "stop-request";
// A disk image shipped in an OCI image (KubeVirt's containerDisk): oci://REFERENCE.
constexpr const char* kOciScheme = "oci://";
constexpr auto kQemuImgTimeout = std::chrono::seconds(30);
constexpr auto kQuitTimeout = std::chrono::milliseconds(500);
constexpr auto kObserveTimeout = std::chrono::milliseconds(250);

std::shared_ptr<spdlog::logger> logger() { return log::get("runtime"); }

// `name` itself when it has a slash, else its first match on PATH (or `name` when none).
std::string find_in_path(const std::string& name) {
  if (name.find('/') != std::string::npos) return name;
  const char* path = std::getenv("PATH");
  std::string dirs = path != nullptr ? path : "/usr/local/bin:/usr/bin:/bin";
  size_t start = 0;
  while (start <= dirs.size()) {
    size_t end = dirs.find(':', start);
    if (end == std::string::npos) end = dirs.size();
    std::string candidate = dirs.substr(start, end - start) + "/" + name;
    if (end > start && ::access(candidate.c_str(), X_OK) == 0) return candidate;
    start = end + 1;
  }
  return name;
}

std::string last_line(const std::string& path) {
  auto text = fs::read_file(path);
  if (!text) return "";
  std::string s = *text;
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.pop_back();
  size_t nl = s.rfind('\n');
  return nl == std::string::npos ? s : s.substr(nl + 1);
}

}  // namespace

VmDriver::VmDriver(std::string root, std::string shim_path, Options options)
    : root_(fs::absolute_path(root)),
      options_(std::move(options)),
      accel_(options_.accel == "auto" ? detect_accel()
                                      : AccelProbe{options_.accel, "set by configuration"}),
      qemu_system_(find_in_path(options_.qemu_system.empty() ? host_qemu_system_name()
                                                             : options_.qemu_system)),
      shims_(root_ + "/shim", std::move(shim_path)) {
  options_.qemu_img = find_in_path(options_.qemu_img);
  FetchFn fetch = options_.fetch ? options_.fetch : FetchFn(image::fetch_to_file);
  const Clock& clock = options_.clock != nullptr ? *options_.clock : system_clock_;
  disks_ = std::make_unique<DiskCache>(root_ + "/images", std::move(fetch), clock, options_.cache);
  logger()->info("vm driver ready accel={} reason=\"{}\" qemu={}", accel_.accel, accel_.reason,
                 qemu_system_);
}

std::string VmDriver::vm_dir(const std::string& id) const { return root_ + "/vms/" + id; }

std::string VmDriver::qmp_socket(const std::string& id) const {
  return vm_dir(id) + "/" + kQmpSocketFile;
}

std::string VmDriver::log_path(const std::string& id, bool stderr_stream) const {
  return shims_.log_path(id, stderr_stream);
}

Expected<std::string> VmDriver::image_location(const LaunchSpec& spec) const {
  const std::string& image = spec.vm.image;
  if (image.rfind(kOciScheme, 0) != 0) return image;
  const std::string reference = image.substr(std::strlen(kOciScheme));
  if (options_.images == nullptr) {
    return Error("Failed to use disk image '" + image +
                 "': this node pulls no OCI images (its container runtime is off)");
  }
  if (spec.vm.sha256.empty()) {
    return Error("Failed to use disk image '" + image + "': an oci:// image needs vm.sha256");
  }
  auto unpacked = options_.images->unpacked(reference);
  if (!unpacked) return unpacked.error();
  // containerDisk: exactly one regular file in /disk/.
  std::string found;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(unpacked->rootfs + "/disk", ec)) {
    if (!entry.is_regular_file(ec) || entry.is_symlink(ec)) continue;
    if (!found.empty()) {
      return Error("Failed to use disk image '" + image + "': its /disk/ holds more than one file");
    }
    found = entry.path().string();
  }
  if (found.empty()) {
    return Error("Failed to use disk image '" + image + "': its /disk/ folder holds no disk file");
  }
  return found;
}

Expected<VmDriver::Sources> VmDriver::sources_of(const LaunchSpec& spec) const {
  Sources sources;
  const VmLaunch& vm = spec.vm;
  if (vm.image.empty() && vm.kernel.empty()) return Error("the vm section has no image or kernel");
  if (!vm.image.empty()) {
    auto location = image_location(spec);
    if (!location) return location.error();
    auto s = parse_disk_source(*location, vm.sha256);
    if (!s) return s.error();
    sources.image = *s;
  }
  for (auto [field, target] :
       {std::pair{&vm.kernel, &sources.kernel}, std::pair{&vm.initrd, &sources.initrd}}) {
    if (field->empty()) continue;
    auto s = parse_disk_source(*field, "");
    if (!s) return s.error();
    *target = *s;
  }
  return sources;
}

Preparation VmDriver::prepare(const LaunchSpec& spec) {
  using State = Preparation::State;
  if (spec.vm.image.rfind(kOciScheme, 0) == 0 && options_.images != nullptr) {
    Preparation pulled = options_.images->prepare(spec.vm.image.substr(std::strlen(kOciScheme)));
    if (!pulled.ready()) return pulled;
  }
  auto sources = sources_of(spec);
  if (!sources) return {State::kFailed, sources.error().message()};
  if (::access(qemu_system_.c_str(), X_OK) != 0) {
    return {State::kFailed, "Failed to find '" + qemu_system_ + "': " + std::strerror(errno)};
  }
  Preparation combined{State::kReady, ""};
  for (const auto* source : {&sources->image, &sources->kernel, &sources->initrd}) {
    if (!*source) continue;
    Preparation p = disks_->prepare(**source);
    if (p.state == State::kReady) continue;
    // A failure outranks a download in progress: the agent shows it to the user.
    if (combined.state != State::kFailed) combined = p;
  }
  if (combined.ready() && sources->image) {
    // Refuse a dangerous image now, so the user sees why before anything is stopped for it.
    auto base = disks_->path(*sources->image);
    auto format = base ? probe_disk_format(*base) : Expected<std::string>(base.error());
    if (!format) return {State::kFailed, format.error().message()};
  }
  return combined;
}

Expected<std::vector<std::string>> VmDriver::command_for(const LaunchSpec& spec) const {
  auto sources = sources_of(spec);
  if (!sources) return sources.error();
  QemuCommand c;
  c.binary = qemu_system_;
  c.accel = accel_.accel;
  c.tcg_translation_cache_mib = options_.tcg_translation_cache_mib;
  // Arm has no default machine; "virt" has PCI (virtio-net) and, with firmware, ACPI. Untested
  // here: the test machine is x86_64.
  if (qemu_system_.size() >= 7 &&
      qemu_system_.compare(qemu_system_.size() - 7, 7, "aarch64") == 0) {
    c.machine = "virt";
  }
  c.name = "flotilla-" + spec.instance_id;
  if (sources->image) c.disk = kOverlayFile;
  for (auto [source, target] :
       {std::pair{&sources->kernel, &c.kernel}, std::pair{&sources->initrd, &c.initrd}}) {
    if (!*source) continue;
    auto path = disks_->path(**source);
    if (!path) return path.error();
    *target = *path;
  }
  c.kernel_args = spec.vm.kernel_args;
  c.qmp_socket = kQmpSocketFile;
  c.pid_file = kQemuPidFile;
  c.cpus = spec.vm.cpus;
  c.memory_bytes = spec.vm.memory_bytes;
  c.ports = spec.vm.ports;
  return qemu_argv(c);
}

Status VmDriver::create_overlay(const std::string& base, const std::string& overlay) const {
  auto format = probe_disk_format(base);
  if (!format) return format.error();
  CommandOptions run;
  run.timeout = kQemuImgTimeout;
  auto result = run_command(
      {options_.qemu_img, "create", "-q", "-f", "qcow2", "-F", *format, "-b", base, overlay}, run);
  if (!result) return result.error();
  if (result->timed_out || result->exit_code != 0) {
    return Error("Failed to create overlay '" + overlay + "' over '" + base +
                 "': qemu-img: " + (result->timed_out ? "timed out" : command_failure(*result)));
  }
  return Ok();
}

Expected<Handle> VmDriver::launch(const LaunchSpec& spec) {
  auto fail = [&](const std::string& why) {
    logger()->warn("vm launch failed instance={} error=\"{}\"", spec.instance_id, why);
    return Error("Failed to launch VM '" + spec.instance_id + "': " + why);
  };
  if (Status s = validate_instance_id(spec.instance_id); !s) return fail(s.error().message());
  auto sources = sources_of(spec);
  if (!sources) return fail(sources.error().message());
  std::string base;
  if (sources->image) {
    auto path = disks_->path(*sources->image);
    if (!path) return fail(path.error().message());
    base = *path;
  }
  auto argv = command_for(spec);
  if (!argv) return fail(argv.error().message());

  const std::string dir = vm_dir(spec.instance_id);
  if (Status s = fs::make_dirs(root_ + "/vms"); !s) return fail(s.error().message());
  if (::mkdir(dir.c_str(), 0750) != 0) {
    if (errno == EEXIST) return fail("it already exists (clean it up first)");
    return fail("Failed to create directory '" + dir + "': " + std::strerror(errno));
  }
  if (!base.empty()) {
    if (Status s = create_overlay(base, dir + "/" + kOverlayFile); !s) {
      (void)fs::remove_all(dir);
      return fail(s.error().message());
    }
  }
  LaunchSpec shim_spec;
  shim_spec.type = "process";
  shim_spec.instance_id = spec.instance_id;
  shim_spec.workload = spec.workload;
  shim_spec.command = *argv;
  shim_spec.env = spec.env;
  shim_spec.workdir = dir;  // QEMU's relative paths (overlay, socket, pid file) live here
  shim_spec.log_limit_bytes = spec.log_limit_bytes;
  auto handle = shims_.launch(shim_spec);
  if (!handle) {
    (void)fs::remove_all(dir);
    return fail(handle.error().message());
  }
  handle->type = type();
  logger()->info("vm launched instance={} workload={} shim_pid={} accel={} cpus={} memory_bytes={}",
                 spec.instance_id, spec.workload, handle->pid, accel_.accel, spec.vm.cpus,
                 spec.vm.memory_bytes == 0 ? kDefaultMemoryBytes : spec.vm.memory_bytes);
  return *handle;
}

std::optional<int64_t> VmDriver::qemu_pid(const std::string& id) const {
  if (!validate_instance_id(id)) return std::nullopt;
  auto text = fs::read_file(vm_dir(id) + "/" + kQemuPidFile);
  auto shim = fs::read_file(root_ + "/shim/instances/" + id + "/" + kPidRecordFile);
  if (!text || !shim) return std::nullopt;
  auto shim_record = parse_pid_record(*shim);
  char* end = nullptr;
  long long pid = std::strtoll(text->c_str(), &end, 10);
  if (!shim_record || end == text->c_str() || pid <= 1) return std::nullopt;
  // QEMU leaves its pid file behind when killed: only the shim's live child is this VM's QEMU.
  auto stat = read_proc_stat(pid);
  if (!stat || stat->zombie() || stat->ppid != shim_record->pid) return std::nullopt;
  return pid;
}

Expected<int> VmDriver::exec(const Handle& handle, const std::vector<std::string>& /*argv*/,
                             std::chrono::milliseconds /*timeout*/) {
  // Without an agent inside the guest there is nowhere to run it; running it on the node, as
  // the default does, would probe the host and report the guest healthy when it is not.
  return Error("Failed to exec in VM '" + handle.instance_id +
               "': exec probes are not supported for vm workloads (no guest agent); use an http "
               "or tcp probe through a port forward");
}

void VmDriver::record_stop_request(const std::string& id, const std::string& what) const {
  if (Status s = fs::write_atomic(vm_dir(id) + "/" + kStopRequestFile, what); !s) {
    logger()->warn("could not record stop request instance={} error=\"{}\"", id,
                   s.error().message());
  }
}

std::string VmDriver::describe_exit(const std::string& id, const Observation& obs) const {
  std::string message = obs.message;
  auto request = fs::read_file(vm_dir(id) + "/" + kStopRequestFile);
  if (request && *request == "powerdown") {
    message += " after system_powerdown";
  } else if (request && *request == "quit") {
    message += " after QMP quit";
  } else if (request && *request == "sigterm") {
    message += " after SIGTERM (QMP did not answer)";
  } else if (obs.signal == 0 && obs.exit_code == 0) {
    message += ": the guest powered off";
  }
  if (obs.signal != 0 || obs.exit_code != 0) {
    std::string qemu_said = last_line(shims_.log_path(id, true));
    if (!qemu_said.empty()) message += "; QEMU: " + qemu_said;
  }
  return message;
}

Observation VmDriver::observe(const Handle& handle) {
  Observation obs = shims_.observe(handle);
  if (obs.state == RunState::kExited) {
    obs.message = describe_exit(handle.instance_id, obs);
    return obs;
  }
  if (obs.state != RunState::kRunning || !options_.observe_guest_status) return obs;
  // Short: observe() runs on the agent's loop, and a busy QMP (one client at a time) only costs
  // the detail.
  const auto timeout = std::min(options_.qmp_timeout, std::chrono::milliseconds(kObserveTimeout));
  auto qmp = QmpClient::connect(qmp_socket(handle.instance_id), timeout);
  if (!qmp) {
    logger()->debug("vm status unavailable instance={} error=\"{}\"", handle.instance_id,
                    qmp.error().message());
    return obs;
  }
  auto status = (*qmp)->execute("query-status", nullptr, timeout);
  if (status && status->is_object() && status->contains("status") &&
      (*status)["status"].is_string()) {
    std::string guest = (*status)["status"].get<std::string>();
    if (guest != "running") obs.message = "running (guest " + guest + ")";
  }
  return obs;
}

Status VmDriver::terminate(const Handle& handle) {
  if (shims_.observe(handle).state != RunState::kRunning) return Ok();
  auto qmp = QmpClient::connect(qmp_socket(handle.instance_id), options_.qmp_timeout);
  Status sent = Ok();
  if (qmp) {
    auto reply = (*qmp)->execute("system_powerdown", nullptr, options_.qmp_timeout);
    if (!reply) sent = reply.error();
  } else {
    sent = qmp.error();
  }
  if (sent) {
    record_stop_request(handle.instance_id, "powerdown");
    logger()->info("vm sent ACPI power button instance={}", handle.instance_id);
    return Ok();
  }
  // QEMU does not answer QMP: SIGTERM makes it exit cleanly, if not gracefully for the guest.
  logger()->warn("vm QMP powerdown failed, sending SIGTERM instance={} error=\"{}\"",
                 handle.instance_id, sent.error().message());
  record_stop_request(handle.instance_id, "sigterm");
  return shims_.terminate(handle);
}

Status VmDriver::kill(const Handle& handle) {
  if (shims_.observe(handle).state == RunState::kRunning) {
    auto timeout = std::min(options_.qmp_timeout, std::chrono::milliseconds(kQuitTimeout));
    auto qmp = QmpClient::connect(qmp_socket(handle.instance_id), timeout);
    if (qmp) {
      if (auto reply = (*qmp)->execute("quit", nullptr, timeout); reply) {
        record_stop_request(handle.instance_id, "quit");
        logger()->info("vm sent QMP quit instance={}", handle.instance_id);
        return Ok();
      }
    }
    logger()->warn("vm QMP quit failed, sending SIGKILL instance={}", handle.instance_id);
  }
  return shims_.kill(handle);
}

Status VmDriver::cleanup(const std::string& id) {
  if (Status s = validate_instance_id(id); !s) {
    return Error("Failed to clean up VM '" + id + "': " + s.error().message());
  }
  if (Status s = shims_.cleanup(id); !s) return s;
  if (Status s = fs::remove_all(vm_dir(id)); !s) {
    return Error("Failed to clean up VM '" + id + "': " + s.error().message());
  }
  logger()->info("vm cleaned up instance={}", id);
  return Ok();
}

std::vector<Handle> VmDriver::recover() {
  std::vector<Handle> handles = shims_.recover();
  for (Handle& h : handles) h.type = type();
  // A VM folder without a shim: a launch cut short. observe() reports it, cleanup() removes it.
  std::error_code ec;
  stdfs::directory_iterator it(root_ + "/vms", ec);
  for (; !ec && it != stdfs::directory_iterator(); it.increment(ec)) {
    std::string id = it->path().filename().string();
    if (!validate_instance_id(id)) continue;
    bool known = std::any_of(handles.begin(), handles.end(),
                             [&](const Handle& h) { return h.instance_id == id; });
    if (!known) handles.push_back(Handle{id, 0, 0, type()});
  }
  std::sort(handles.begin(), handles.end(),
            [](const Handle& a, const Handle& b) { return a.instance_id < b.instance_id; });
  return handles;
}

}  // namespace flotilla::runtime::vm
