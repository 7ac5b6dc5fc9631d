// Which accelerator QEMU can use on this node: KVM when the kernel offers a hardware KVM backend
// that runs ordinary guests, TCG (software emulation, 10-50x slower) otherwise. The agent puts
// the answer into the node's capabilities ("vm" runtime with accel kvm|tcg).
//
// /dev/kvm opening and answering KVM_GET_API_VERSION is not enough: a KVM whose only backend is
// kvm_pvm (a paravirtual KVM found inside some cloud sandboxes) runs only PVM-aware guest
// kernels, so the backend module (kvm_intel, kvm_amd) must be loaded too.
//
// Thread-safety: stateless functions.
#pragma once

#include <string>

namespace flotilla::runtime::vm {

struct AccelProbe {
  std::string accel;   // "kvm" | "tcg"
  std::string reason;  // why, for logs and the capabilities report
};

// `dev_kvm` and `sys_module` are parameters so tests can point them elsewhere.
AccelProbe detect_accel(const std::string& dev_kvm = "/dev/kvm",
                        const std::string& sys_module = "/sys/module");

// "qemu-system-<arch>" for the host's architecture (uname machine, with arm64 -> aarch64).
std::string host_qemu_system_name();

}  // namespace flotilla::runtime::vm
