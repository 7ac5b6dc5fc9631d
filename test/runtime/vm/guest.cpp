#include "test/runtime/vm/guest.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <filesystem>
#include <vector>

#include "common/fs.hpp"
#include "test/support/peers.hpp"
#include "test/support/process.hpp"

namespace flotilla::runtime::vm::testing {
namespace {

namespace stdfs = std::filesystem;
using flotilla::testing::find_executable;
using flotilla::testing::run_command;

// Load order matters: insmod resolves no dependencies.
const std::vector<std::string> kModules = {"drivers/virtio/virtio_ring",
                                           "drivers/virtio/virtio",
                                           "drivers/virtio/virtio_pci_legacy_dev",
                                           "drivers/virtio/virtio_pci_modern_dev",
                                           "drivers/virtio/virtio_pci",
                                           "net/core/failover",
                                           "drivers/net/net_failover",
                                           "drivers/net/virtio_net",
                                           "drivers/block/virtio_blk",
                                           "drivers/acpi/button",
                                           "drivers/input/evdev"};

std::string init_script() {
  std::string modules;
  for (const std::string& m : kModules) modules += " " + stdfs::path(m).filename().string();
  return std::string(
             "#!/bin/busybox sh\n"
             "/bin/busybox --install -s /bin\n"
             "mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev\n"
             "for m in") +
         modules +
         "; do insmod /lib/modules/$m.ko; done\n"
         "ip link set lo up; ip addr add 10.0.2.15/24 dev eth0; ip link set eth0 up\n"
         "if [ -b /dev/vda ]; then\n"
         "  echo " +
         kDiskMarker +
         " | dd of=/dev/vda bs=512 seek=1 conv=notrunc,fsync 2>/dev/null\n"
         "fi\n"
         "mkdir -p /www; echo " +
         kWebMarker +
         " > /www/index.html\n"
         "httpd -p " +
         std::to_string(kGuestHttpPort) +
         " -h /www\n"
         "for e in /sys/class/input/event*; do\n"
         "  grep -q 'Power Button' $e/device/name 2>/dev/null && PB=/dev/input/${e##*/}\n"
         "done\n"
         "echo \"power button: $PB\"\n"
         "echo " +
         kGuestUpMarker +
         "\n"
         "dd if=$PB of=/dev/null bs=24 count=1 2>/dev/null\n"
         "echo " +
         kPoweringOffMarker +
         "\n"
         "poweroff -f\n";
}

}  // namespace

Guest build_guest(const std::string& dir, std::string* why) {
  Guest guest;
  std::string busybox = find_executable("busybox");
  std::string cpio = find_executable("cpio");
  if (busybox.empty() || cpio.empty()) {
    *why = "busybox (busybox-static) or cpio is not installed";
    return {};
  }
  std::string kernel, version;
  std::error_code ec;
  for (const auto& entry : stdfs::directory_iterator("/boot", ec)) {
    std::string name = entry.path().filename().string();
    if (name.rfind("vmlinuz-", 0) == 0 && name > stdfs::path(kernel).filename().string()) {
      kernel = entry.path().string();
      version = name.substr(8);
    }
  }
  if (kernel.empty()) {
    *why = "no /boot/vmlinuz-* (linux-image-cloud-amd64 is not installed)";
    return {};
  }
  const std::string modules = "/lib/modules/" + version + "/kernel/";
  const std::string root = dir + "/initramfs";
  for (const char* sub : {"/bin", "/proc", "/sys", "/dev", "/lib/modules"}) {
    (void)fs::make_dirs(root + sub);
  }
  stdfs::copy_file(busybox, root + "/bin/busybox", ec);
  if (ec) {
    *why = "cannot copy busybox: " + ec.message();
    return {};
  }
  for (const std::string& m : kModules) {
    std::string ko = modules + m + ".ko";
    stdfs::copy_file(ko, root + "/lib/modules/" + stdfs::path(ko).filename().string(), ec);
    if (ec) {
      *why = "kernel module '" + ko + "' is missing: " + ec.message();
      return {};
    }
  }
  if (!fs::write_atomic(root + "/init", init_script())) {
    *why = "cannot write /init";
    return {};
  }
  stdfs::permissions(root + "/init", stdfs::perms::owner_all, ec);
  guest.initrd = dir + "/initramfs.cpio";
  auto packed = run_command(
      {find_executable("sh"), "-c",
       "cd '" + root + "' && find . | '" + cpio + "' -o -H newc > '" + guest.initrd + "'"});
  if (packed.exit_code != 0) {
    *why = "cpio failed: " + packed.err;
    return {};
  }
  guest.kernel = kernel;
  guest.kernel_args = "console=ttyS0 quiet";
  return guest;
}

std::string read_or_empty(const std::string& path) {
  auto text = fs::read_file(path);
  return text ? *text : "";
}

bool file_contains(const std::string& path, const std::string& needle) {
  auto text = fs::read_file(path);
  return text && text->find(needle) != std::string::npos;
}

std::string sha256_of(const std::string& path) {
  auto r = run_command({find_executable("sha256sum"), path});
  return r.exit_code == 0 ? r.out.substr(0, 64) : "";
}

std::string http_get(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return "";
  timeval tv{2, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::string response;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) {
    std::string request = "GET / HTTP/1.0\r\nHost: guest\r\n\r\n";
    if (::send(fd, request.data(), request.size(), MSG_NOSIGNAL) ==
        static_cast<ssize_t>(request.size())) {
      char buf[4096];
      ssize_t n;
      while ((n = ::recv(fd, buf, sizeof buf, 0)) > 0) response.append(buf, static_cast<size_t>(n));
    }
  }
  ::close(fd);
  return response;
}

}  // namespace flotilla::runtime::vm::testing
