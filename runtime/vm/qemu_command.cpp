#include "runtime/vm/qemu_command.hpp"

#include <arpa/inet.h>

#include <initializer_list>
#include <set>
#include <utility>

namespace flotilla::runtime::vm {
namespace {

bool is_ipv4(const std::string& address) {
  in_addr out{};
  return ::inet_pton(AF_INET, address.c_str(), &out) == 1;
}

// A path embedded in a QEMU option string: commas would start another option there.
Status option_safe_path(const std::string& what, const std::string& path) {
  if (path.find(',') != std::string::npos) return Error(what + " path '" + path + "' has a comma");
  if (path.find('\0') != std::string::npos) return Error(what + " path has a NUL byte");
  return Ok();
}

}  // namespace

Expected<std::string> user_netdev(const std::vector<PortForward>& ports) {
  std::string netdev = "user,id=n0";
  std::set<std::pair<std::string, uint16_t>> seen;
  for (const PortForward& p : ports) {
    const std::string where =
        "port forward " + std::to_string(p.host_port) + "->" + std::to_string(p.guest_port);
    if (p.protocol != "tcp" && p.protocol != "udp") {
      return Error(where + ": protocol '" + p.protocol + "' is neither tcp nor udp");
    }
    if (p.host_port == 0 || p.guest_port == 0) return Error(where + ": port 0");
    std::string address = p.host_address.empty() ? "127.0.0.1" : p.host_address;
    if (!is_ipv4(address)) {
      return Error(where + ": host address '" + address + "' is not an IPv4 address");
    }
    if (!seen.insert({p.protocol, p.host_port}).second) {
      return Error(where + ": host port " + std::to_string(p.host_port) + "/" + p.protocol +
                   " is forwarded twice");
    }
    netdev += ",hostfwd=" + p.protocol + ":" + address + ":" + std::to_string(p.host_port) +
              "-:" + std::to_string(p.guest_port);
  }
  return netdev;
}

Expected<std::vector<std::string>> qemu_argv(const QemuCommand& c) {
  if (c.binary.empty()) return Error("no qemu-system binary");
  if (c.accel != "kvm" && c.accel != "tcg") return Error("accel '" + c.accel + "' is unknown");
  if (c.cpus < 1 || c.cpus > kMaxCpus) {
    return Error("cpus " + std::to_string(c.cpus) + " is outside 1.." + std::to_string(kMaxCpus));
  }
  int64_t memory = c.memory_bytes == 0 ? kDefaultMemoryBytes : c.memory_bytes;
  if (memory < kMinMemoryBytes) {
    return Error("memory " + std::to_string(memory) + " bytes is below the minimum of " +
                 std::to_string(kMinMemoryBytes >> 20) + " MiB");
  }
  if (c.disk.empty() && c.kernel.empty()) return Error("neither a disk image nor a kernel");
  if (!c.initrd.empty() && c.kernel.empty()) return Error("an initrd without a kernel");
  if (!c.kernel_args.empty() && c.kernel.empty()) return Error("kernel_args without a kernel");
  if (c.qmp_socket.empty() || c.pid_file.empty()) return Error("no QMP socket or pid file path");
  for (const auto& [what, path] : {std::pair<std::string, std::string>{"disk", c.disk},
                                   {"QMP socket", c.qmp_socket},
                                   {"kernel", c.kernel},
                                   {"initrd", c.initrd}}) {
    if (Status s = option_safe_path(what, path); !s) return s.error();
  }
  if (c.name.find(',') != std::string::npos) return Error("name '" + c.name + "' has a comma");
  if (c.machine.find(',') != std::string::npos)
    return Error("machine '" + c.machine + "' has a comma");
  if (c.tcg_translation_cache_mib < 0) return Error("negative TCG translation cache size");
  auto netdev = user_netdev(c.ports);
  if (!netdev) return netdev.error();

  std::string accel = c.accel;
  if (accel == "tcg" && c.tcg_translation_cache_mib > 0) {
    accel += ",tb-size=" + std::to_string(c.tcg_translation_cache_mib);
  }
  // Whole MiB: QEMU's -m takes a size with a suffix, and guests expect page-aligned RAM.
  const int64_t memory_mib = (memory + (1 << 20) - 1) >> 20;
  std::vector<std::string> argv = {c.binary};
  auto add = [&argv](std::initializer_list<std::string> items) { argv.insert(argv.end(), items); };
  add({"-name", c.name.empty() ? "flotilla-vm" : c.name});
  if (!c.machine.empty()) {
    add({"-machine", c.machine, "-cpu", c.accel == "kvm" ? "host" : "max"});
  }
  add({"-accel", accel, "-smp", std::to_string(c.cpus), "-m", std::to_string(memory_mib) + "M"});
  add({"-nodefaults", "-no-user-config", "-display", "none", "-monitor", "none"});
  add({"-serial", "stdio"});  // the console: the shim logs QEMU's stdout
  add({"-qmp", "unix:" + c.qmp_socket + ",server=on,wait=off", "-pidfile", c.pid_file});
  add({"-netdev", *netdev, "-device", "virtio-net-pci,netdev=n0"});
  if (!c.disk.empty()) {
    add({"-drive", "file=" + c.disk + ",format=qcow2,if=virtio"});
  }
  if (!c.kernel.empty()) {
    add({"-kernel", c.kernel});
    if (!c.initrd.empty()) add({"-initrd", c.initrd});
    if (!c.kernel_args.empty()) add({"-append", c.kernel_args});
  }
  return argv;
}

}  // namespace flotilla::runtime::vm
