// fuzz_vm_inputs: libFuzzer target for the vm driver's decoders of untrusted input:
// parse_qmp_message (what QEMU, swayed by the guest, writes on the QMP socket), parse_disk_header
// (a downloaded image's first sector), parse_disk_source and user_netdev (the workload spec's
// image/kernel/initrd and port forwards).
//
// Invariants: each returns a value or an Error with a reason; an accepted port forward adds
// exactly one hostfwd and no other option to the -netdev string.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "runtime/vm/disk_cache.hpp"
#include "runtime/vm/disk_format.hpp"
#include "runtime/vm/qemu_command.hpp"
#include "runtime/vm/qmp_client.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace flotilla::runtime::vm;
  const std::string input(reinterpret_cast<const char*>(data), size);
  auto msg = parse_qmp_message(input);
  if (!msg && msg.error().message().empty()) std::abort();

  auto format = parse_disk_header(input);
  if (format && *format != "raw" && *format != "qcow2") std::abort();
  if (!format && format.error().message().empty()) std::abort();

  const size_t cut = input.find('\n');
  const std::string location = input.substr(0, cut);
  const std::string digest = cut == std::string::npos ? "" : input.substr(cut + 1);
  auto source = parse_disk_source(location, digest);
  if (!source && source.error().message().empty()) std::abort();

  flotilla::runtime::PortForward port;
  port.host_address = location;
  port.protocol = digest.substr(0, 3);
  port.host_port = size > 0 ? static_cast<uint16_t>(data[0] | (size > 1 ? data[1] << 8 : 0)) : 0;
  port.guest_port = 22;
  auto netdev = user_netdev({port});
  if (netdev && std::count(netdev->begin(), netdev->end(), ',') != 2) std::abort();
  if (!netdev && netdev.error().message().empty()) std::abort();
  return 0;
}
