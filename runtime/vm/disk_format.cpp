#include "runtime/vm/disk_format.hpp"

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <fstream>

namespace flotilla::runtime::vm {
namespace {

constexpr std::string_view kQcow2Magic("QFI\xfb", 4);
constexpr size_t kVersion2HeaderBytes = 72;
constexpr uint64_t kIncompatibleExternalData = 1ULL << 2;

uint64_t be(std::string_view bytes, size_t offset, size_t width) {
  uint64_t value = 0;
  for (size_t i = 0; i < width; ++i) {
    value = (value << 8) | static_cast<unsigned char>(bytes[offset + i]);
  }
  return value;
}

}  // namespace

Expected<std::string> parse_disk_header(std::string_view head) {
  if (head.substr(0, 4) != kQcow2Magic) return std::string("raw");
  if (head.size() < kVersion2HeaderBytes) return Error("qcow2 header is truncated");
  const uint64_t version = be(head, 4, 4);
  if (version != 2 && version != 3) {
    return Error("qcow2 version " + std::to_string(version) + " is not supported");
  }
  if (be(head, 8, 8) != 0 || be(head, 16, 4) != 0) {
    return Error("qcow2 image names a backing file, which QEMU would open on the host");
  }
  if (be(head, 32, 4) != 0) return Error("qcow2 image is encrypted");
  if (version == 3) {
    if (head.size() < kDiskHeaderBytes) return Error("qcow2 version 3 header is truncated");
    if (be(head, 72, 8) & kIncompatibleExternalData) {
      return Error(
          "qcow2 image keeps its data in an external file, which QEMU would open on "
          "the host");
    }
  }
  return std::string("qcow2");
}

Expected<std::string> probe_disk_format(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Error("Failed to open image '" + path + "': " + std::strerror(errno));
  char head[kDiskHeaderBytes] = {};
  in.read(head, sizeof head);
  auto format = parse_disk_header(std::string_view(head, static_cast<size_t>(in.gcount())));
  if (!format) return Error("Refused image '" + path + "': " + format.error().message());
  return format;
}

}  // namespace flotilla::runtime::vm
