// qemu_argv: the qemu-system command line for a VM instance, built from the `vm` section of its
// LaunchSpec. Pure: no file is touched, so it is unit-tested without QEMU.
//
// The VM gets: the chosen accelerator; -smp/-m from the spec; no default devices, no display and
// no monitor; its first serial port on stdio (the shim logs it: the serial console); QMP on a
// unix socket; QEMU's pid in a file; user-mode networking with the declared port forwards and a
// virtio-net NIC; the disk overlay on virtio-blk; direct kernel boot when a kernel is given.
//
// Thread-safety: stateless.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/expected.hpp"
#include "runtime/driver.hpp"

namespace flotilla::runtime::vm {

inline constexpr int64_t kDefaultMemoryBytes = 256LL << 20;
inline constexpr int64_t kMinMemoryBytes = 16LL << 20;
inline constexpr int64_t kMaxCpus = 64;

struct QemuCommand {
  std::string binary;                     // qemu-system-<arch>
  std::string accel = "tcg";              // kvm | tcg
  int64_t tcg_translation_cache_mib = 0;  // tcg only; 0: QEMU's default
  std::string machine;  // -machine (and a -cpu to match); empty: QEMU's default (x86: pc)
  std::string name;     // -name, shown in ps and QMP
  std::string disk;     // the overlay (qcow2); empty: no disk
  std::string kernel;   // host paths for direct kernel boot; empty: boot the disk
  std::string initrd;
  std::string kernel_args;
  std::string qmp_socket;  // path QEMU binds
  std::string pid_file;    // where QEMU writes its pid
  int64_t cpus = 1;
  int64_t memory_bytes = 0;  // 0: kDefaultMemoryBytes
  std::vector<PortForward> ports;
};

// Checks the values and returns argv (argv[0] = binary). Values QEMU would read as option syntax
// (commas in a path that goes into a -drive/-netdev string) are rejected, not escaped.
Expected<std::vector<std::string>> qemu_argv(const QemuCommand& command);

// The -netdev user option string for `ports` ("user,id=n0,hostfwd=tcp:127.0.0.1:8080-:80,...").
Expected<std::string> user_netdev(const std::vector<PortForward>& ports);

}  // namespace flotilla::runtime::vm
