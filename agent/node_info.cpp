#include "agent/node_info.hpp"

#include <sys/utsname.h>
#include <unistd.h>

#include <random>
#include <sstream>

#include "common/fs.hpp"

namespace flotilla::agent {

int64_t detect_cpu_millis() {
  long cpus = ::sysconf(_SC_NPROCESSORS_ONLN);
  return 1000 * static_cast<int64_t>(cpus > 0 ? cpus : 1);
}

int64_t parse_meminfo_total(const std::string& meminfo) {
  std::istringstream in(meminfo);
  std::string key;
  int64_t kib = 0;
  std::string unit;
  while (in >> key >> kib) {
    std::getline(in, unit);
    if (key == "MemTotal:") return kib * 1024;
  }
  return 0;
}

int64_t detect_memory_bytes() {
  auto text = fs::read_file("/proc/meminfo");
  return text ? parse_meminfo_total(*text) : 0;
}

std::string arch_from_machine(const std::string& machine) {
  if (machine == "x86_64" || machine == "amd64") return "amd64";
  if (machine == "aarch64" || machine == "arm64") return "arm64";
  if (machine.rfind("arm", 0) == 0) return "arm";  // armv7l, armv6l, armv8l (32-bit mode)
  return machine;
}

std::string detect_arch() {
  struct utsname u {};
  if (::uname(&u) != 0) return "unknown";
  return arch_from_machine(u.machine);
}

std::string make_boot_id() {
  std::random_device rd;
  std::ostringstream out;
  out << std::hex;
  for (int i = 0; i < 4; ++i) {
    uint32_t word = rd();
    for (int shift = 28; shift >= 0; shift -= 4) out << ((word >> shift) & 0xF);
  }
  return out.str();
}

}  // namespace flotilla::agent
