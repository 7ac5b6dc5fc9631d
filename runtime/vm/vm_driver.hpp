// VmDriver: the `vm` runtime driver. Each instance is a qemu-system process run under its own
// flotilla-shim (through a ProcessDriver with a folder of its own), so a VM is detached from the
// agent, survives its restarts and is re-adopted by the shim's pid and start time; the shim's
// size-capped stdout log is the VM's serial console, its stderr log QEMU's own messages.
//
// prepare() fetches and verifies the disk image (and kernel/initrd URLs) on a background thread
// (see DiskCache); an `oci://REFERENCE` image is pulled as an OCI image through the agent's image
// store first, and its /disk/ file then verified and cached like a local one; launch() gives the
// instance a copy-on-write qcow2 overlay over the cached base image, which is never written. The
// agent talks to the VM through QMP, connecting on demand: terminate() = system_powerdown (ACPI
// power button; a guest that ignores it is killed after the agent's grace period), kill() = quit
// (SIGKILL when QMP does not answer).
//
// On-disk layout under `root` (the agent passes <data>/runtime/vm):
//   images/sha256/<hex>                 verified disk images, kernels, initrds (shared)
//   vms/<id>/disk.qcow2, qmp.sock, qemu.pid, stop-request
//                                       the instance's runtime state; removed by cleanup()
//   shim/instances/<id>/, shim/logs/<id>/stdout.log (serial console), stderr.log (QEMU)
//                                       the ProcessDriver's; logs are kept after cleanup()
//
// Thread-safety: like every Driver, used by one thread (DiskCache's threads are internal).
// launch() blocks for qemu-img (tens of ms) and the shim's ready report; terminate(), kill()
// and observe() for one QMP exchange, bounded by Options::qmp_timeout (observe(): 250 ms at
// most). exec() is refused (no guest agent) and so may be called from any thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/clock.hpp"
#include "runtime/driver.hpp"
#include "runtime/image/image_source.hpp"
#include "runtime/process_driver.hpp"
#include "runtime/vm/accel.hpp"
#include "runtime/vm/disk_cache.hpp"

namespace flotilla::runtime::vm {

class VmDriver final : public Driver {
 public:
  struct Options {
    std::string qemu_system;  // empty: host_qemu_system_name() on PATH
    std::string qemu_img = "qemu-img";
    std::string accel = "auto";  // auto (detect_accel()) | kvm | tcg
    std::chrono::milliseconds qmp_timeout{1000};
    bool observe_guest_status = true;  // observe() asks QMP for the guest's run state
    // TCG's translation cache in MiB (0: QEMU's default, up to 1 GiB reserved, of which a small
    // guest touches ~50 MiB). Smaller saves memory per VM and costs speed.
    int64_t tcg_translation_cache_mib = 0;
    FetchFn fetch;                 // empty: image::fetch_to_file
    const Clock* clock = nullptr;  // empty: the system clock
    DiskCache::Options cache;
    // Where `oci://REFERENCE` disk images come from (KubeVirt's containerDisk convention: an OCI
    // image whose /disk/ folder holds one disk file); null: such images are refused.
    image::ImageSource* images = nullptr;
  };

  VmDriver(std::string root, std::string shim_path, Options options);
  VmDriver(std::string root, std::string shim_path) : VmDriver(root, shim_path, Options{}) {}

  std::string type() const override { return "vm"; }
  Preparation prepare(const LaunchSpec& spec) override;
  Expected<Handle> launch(const LaunchSpec& spec) override;
  Observation observe(const Handle& handle) override;
  Status terminate(const Handle& handle) override;
  Status kill(const Handle& handle) override;
  Status cleanup(const std::string& instance_id) override;
  std::vector<Handle> recover() override;
  // Always an Error: there is no guest agent to run a command in the guest.
  Expected<int> exec(const Handle& handle, const std::vector<std::string>& argv,
                     std::chrono::milliseconds timeout) override;
  std::string log_path(const std::string& instance_id, bool stderr_stream) const override;

  // The accelerator VMs get ("kvm" | "tcg") and why: for the node's capabilities.
  const AccelProbe& accel() const { return accel_; }
  // QEMU's own pid (the shim's child), from the pid file QEMU writes; nullopt when not running.
  std::optional<int64_t> qemu_pid(const std::string& instance_id) const;
  std::string qmp_socket(const std::string& instance_id) const;
  // The qemu-system argv launch() would run for `spec` (paths relative to the instance folder,
  // where QEMU runs), for tests and `flotilla-agent --explain`.
  Expected<std::vector<std::string>> command_for(const LaunchSpec& spec) const;

 private:
  struct Sources {
    std::optional<DiskSource> image, kernel, initrd;
  };
  std::string vm_dir(const std::string& instance_id) const;
  Expected<Sources> sources_of(const LaunchSpec& spec) const;
  // The disk image location for `spec`: spec.vm.image, or for oci:// the disk file inside the
  // pulled image (an Error until the image source has it).
  Expected<std::string> image_location(const LaunchSpec& spec) const;
  Status create_overlay(const std::string& base, const std::string& overlay) const;
  void record_stop_request(const std::string& instance_id, const std::string& what) const;
  std::string describe_exit(const std::string& instance_id, const Observation& obs) const;

  std::string root_;
  Options options_;
  SystemClock system_clock_;
  AccelProbe accel_;
  std::string qemu_system_;
  ProcessDriver shims_;
  std::unique_ptr<DiskCache> disks_;
};

}  // namespace flotilla::runtime::vm
