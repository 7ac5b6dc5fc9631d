// Filesystem helpers with crash-safe writes. No exceptions: errors come back as Expected.
#pragma once

#include <string>

#include "common/expected.hpp"

namespace flotilla::fs {

// Writes `data` to `path` atomically: temp file in the same folder, fsync, rename, fsync dir.
Status write_atomic(const std::string& path, const std::string& data);

// Reads a whole file.
Expected<std::string> read_file(const std::string& path);

// Creates a directory and its parents (like mkdir -p).
Status make_dirs(const std::string& path);

// Removes a path recursively; a missing path is not an error.
Status remove_all(const std::string& path);

bool exists(const std::string& path);

// `path` made absolute (against the working folder) and normalised, without resolving
// symlinks; `path` itself when that fails.
std::string absolute_path(const std::string& path);

}  // namespace flotilla::fs
