// A tiny guest for the vm driver's tests: the host's Debian cloud kernel plus a busybox
// initramfs whose /init loads the virtio, ACPI button and evdev modules the cloud kernel keeps
// as modules, writes a marker to the disk (if one is attached), starts an HTTP server on :8080,
// prints kGuestUpMarker on the console (ttyS0), and powers off when the ACPI power button is
// pressed (QMP system_powerdown).
#pragma once

#include <string>

namespace flotilla::runtime::vm::testing {

inline constexpr const char* kGuestUpMarker = "FLOTILLA-GUEST-UP";
inline constexpr const char* kPoweringOffMarker = "FLOTILLA-GUEST-POWERING-OFF";
inline constexpr const char* kDiskMarker = "FLOTILLA-DISK-WRITE";
inline constexpr const char* kWebMarker = "FLOTILLA-WEB-OK";
inline constexpr int kGuestHttpPort = 8080;

struct Guest {
  std::string kernel;       // /boot/vmlinuz-*
  std::string initrd;       // the built initramfs (cpio newc)
  std::string kernel_args;  // console on ttyS0
};

// Builds the guest under `dir`. On failure returns an empty kernel and says why in `*why`
// (missing busybox, kernel or modules: the tests skip).
Guest build_guest(const std::string& dir, std::string* why);

// A file's content; empty when it cannot be read.
std::string read_or_empty(const std::string& path);

// Whether `path` holds `needle` (binary-safe).
bool file_contains(const std::string& path, const std::string& needle);

// Hex SHA-256 of a file, computed by sha256sum.
std::string sha256_of(const std::string& path);

// GET / on 127.0.0.1:port; the whole response, or empty when the connection failed.
std::string http_get(int port);

}  // namespace flotilla::runtime::vm::testing
