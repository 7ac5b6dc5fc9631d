// The per-instance root filesystem of a container: the image's unpacked rootfs is shared and
// read-only, so each instance gets its own writable view of it in its bundle folder -- an
// overlayfs mount (lower = the image, upper and work in the bundle) where the kernel allows it,
// else a full copy (slower, more disk; e.g. when the bundle folder is itself on overlayfs).
// A read-only instance uses the overlay too, with the runtime remounting it read-only once its
// mount points exist: the runtime never creates anything inside the shared image.
//
// Thread-safety: stateless functions; one caller per bundle folder.
#pragma once

#include <string>

#include "common/expected.hpp"

namespace flotilla::runtime::oci {

enum class RootfsKind { kOverlay, kCopy };

// Makes `<bundle>/rootfs` from `image_rootfs`; `<bundle>` must exist.
Expected<RootfsKind> make_instance_rootfs(const std::string& image_rootfs,
                                          const std::string& bundle);

// Unmounts `<bundle>/rootfs` if it is mounted (nothing to do for a copy).
Status release_instance_rootfs(const std::string& bundle);

// True when `path` is a mount point of this mount namespace.
bool is_mount_point(const std::string& path);

}  // namespace flotilla::runtime::oci
