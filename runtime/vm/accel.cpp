#include "runtime/vm/accel.hpp"

#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/fs.hpp"

// 32-bit ARM kernels have no KVM host support since Linux 5.7, and its headers no <asm/kvm.h>,
// which <linux/kvm.h> includes; there the two architecture-independent values this file uses are
// spelled out (such a kernel has no /dev/kvm; a device that opens fails the version check).
#if __has_include(<asm/kvm.h>)
#include <linux/kvm.h>
#else
#include <linux/ioctl.h>
#define KVM_GET_API_VERSION _IO(0xAE, 0x00)
#define KVM_API_VERSION 12
#endif

namespace flotilla::runtime::vm {

AccelProbe detect_accel(const std::string& dev_kvm, const std::string& sys_module) {
  int fd = ::open(dev_kvm.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0) {
    return {"tcg", "cannot open '" + dev_kvm + "': " + std::strerror(errno)};
  }
  int version = ::ioctl(fd, KVM_GET_API_VERSION, 0);
  ::close(fd);
  if (version != KVM_API_VERSION) {
    return {"tcg", "'" + dev_kvm + "' reports KVM API version " + std::to_string(version) +
                       ", not " + std::to_string(KVM_API_VERSION)};
  }
#if !defined(__x86_64__) && !defined(__i386__)
  (void)sys_module;  // elsewhere (arm64) KVM is built into the kernel, with no backend module
  return {"kvm", "KVM API " + std::to_string(version)};
#endif
  for (const char* backend : {"kvm_intel", "kvm_amd"}) {
    if (fs::exists(sys_module + "/" + backend)) {
      return {"kvm", std::string("KVM API ") + std::to_string(version) + " with " + backend};
    }
  }
  if (fs::exists(sys_module + "/kvm_pvm")) {
    return {"tcg", "the only KVM backend is kvm_pvm, which runs only PVM-aware guest kernels"};
  }
  return {"tcg", "'" + dev_kvm +
                     "' answers but no hardware KVM backend (kvm_intel, kvm_amd) "
                     "is loaded"};
}

std::string host_qemu_system_name() {
  utsname u{};
  std::string arch = ::uname(&u) == 0 ? u.machine : "x86_64";
  if (arch == "arm64") arch = "aarch64";
  // 32-bit ARM kernels report armv7l, armv6l (or armv8l for 32-bit code on a 64-bit CPU); QEMU
  // has one qemu-system-arm for all of them. Likewise i386 for i486 to i686.
  if (arch.rfind("armv", 0) == 0) arch = "arm";
  if (arch.size() == 4 && arch[0] == 'i' && arch.compare(2, 2, "86") == 0) arch = "i386";
  return "qemu-system-" + arch;
}

}  // namespace flotilla::runtime::vm
