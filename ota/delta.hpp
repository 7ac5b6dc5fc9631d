// Binary deltas between two payloads (firmware or root-filesystem images, agent binaries), made
// with zstd's patch-from mode: the new payload compressed with the whole base payload as a
// prefix that matches may point into.
//
// Why zstd patch-from and not content-defined chunks (casync/desync style):
//  - a delta is ONE file, signed and pinned in the manifest like the payload, downloaded and
//    resumed like it; no server-side chunk index or chunk store, no per-chunk requests;
//  - the standard tool applies it by hand: `zstd -d --patch-from=BASE DELTA -o NEW`;
//  - for one base -> one new version it is small: long-distance matching finds moved and
//    shifted data anywhere in the base, and what changed is compressed at level 19.
//  Chunks win where we do not go: dedup across MANY versions and bases (a device at any old
//  version fetches only the chunks it lacks, and the server stores each chunk once), and partial
//  reuse without knowing the exact base. A device whose base does not match a delta here falls
//  back to the full payload (the manifest pins the base's sha256).
//
// Memory and time (bench/run ota-delta, 64 MiB image): make_delta maps the base read-only (page
// cache) and zstd's level-19 match finder peaks at ~220 MiB RSS for ~45-65 s on a loaded 2-core
// box; it runs on the build machine (level 9: ~20x faster, ~3% bigger, a quarter of the memory).
// apply_delta maps the base read-only and keeps a heap window as large as the new payload (zstd
// may reference any earlier output): ~134 MiB peak RSS for a 64 MiB image, half of it the base's
// page cache, which the kernel can drop under pressure; ~0.5 s.
//
// Thread-safety: pure functions over files; two calls must not share an output path.
#pragma once

#include <cstdint>
#include <string>

#include "common/expected.hpp"
#include "common/sha256.hpp"

namespace flotilla::ota {

struct DeltaOptions {
  int level = 19;  // zstd level; 19 is zstd's highest non-ultra level (btultra2 strategy)
};

// Writes the delta that turns `base_path` into `new_path` to `out_path` (temp -> fsync ->
// rename) and returns its digest. The window covers base + new, capped at 2 GiB (windowLog 31):
// data further back than that cannot be matched and is compressed on its own.
Expected<FileDigest> make_delta(const std::string& base_path, const std::string& new_path,
                                const std::string& out_path, const DeltaOptions& options = {});

// Rebuilds the new payload from `base_path` and the delta into `out_path` (temp -> fsync ->
// rename) and returns its digest. Refused: a delta whose frame says another size than
// `expected_size`, asks for a window larger than base + expected_size needs, or produces more
// bytes than `expected_size`; "the base does not match the delta" when zstd's content checksum
// fails (a different base yields different output) or the delta points outside the base.
// Callers still compare the result's sha256 with the manifest: that is the cryptographic check.
Expected<FileDigest> apply_delta(const std::string& base_path, const std::string& delta_path,
                                 const std::string& out_path, uint64_t expected_size);

}  // namespace flotilla::ota
