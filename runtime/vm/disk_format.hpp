// What a disk image is (qcow2 or raw) and whether it is safe to boot from.
//
// QEMU is always told the base image's format (probing a raw image lets a guest write a qcow2
// header into it). A qcow2 image is refused when its header names a backing file or an external
// data file: QEMU would open that host path for the guest, so a downloaded image could read any
// file on the node. Encrypted qcow2 images are refused too (there is no way to pass a key).
//
// parse_disk_header() decodes untrusted bytes (the image's first sector) and says what is wrong
// with them rather than crashing. Thread-safety: stateless.
#pragma once

#include <string>
#include <string_view>

#include "common/expected.hpp"

namespace flotilla::runtime::vm {

// Bytes parse_disk_header() needs to see of a qcow2 header (version 3 with its length field).
inline constexpr size_t kDiskHeaderBytes = 104;

// "qcow2" or "raw" for an image starting with `head`; an Error for a qcow2 header that is
// truncated, of an unknown version, encrypted, or names a backing or external data file.
Expected<std::string> parse_disk_header(std::string_view head);

// parse_disk_header() on the start of the file at `path`.
Expected<std::string> probe_disk_format(const std::string& path);

}  // namespace flotilla::runtime::vm
