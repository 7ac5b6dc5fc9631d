// apply_layer: unpacks one image layer (tar, tar+gzip or tar+zstd) onto a root filesystem
// folder, applying OCI whiteouts (`.wh.<name>` deletes <name> from lower layers, `.wh..wh..opq`
// empties its folder of lower-layer content), hard links, symlinks, numeric owners, modes and
// times. Layers are untrusted: an entry that is absolute, has a `..` component, would be written
// through a symlink, or hard-links outside the root is rejected with an Error and nothing more is
// extracted (the caller discards the whole rootfs).
//
// Thread-safety: reentrant; never changes the process's working directory. Two calls must not
// share a rootfs.
#pragma once

#include <string>

#include "common/expected.hpp"

namespace flotilla::runtime::image {

// `rootfs` must exist; it is resolved with realpath first (no symlink in the root's own path).
Status apply_layer(const std::string& layer_path, const std::string& rootfs);

}  // namespace flotilla::runtime::image
