// Filesystem helpers with crash-safe writes. No exceptions: errors come back as Expected.
#pragma once

#include <string>
#include <string_view>

#include "common/expected.hpp"

namespace flotilla::fs {

// This machine's host name; `fallback` when it cannot be read or is empty.
std::string host_name(const std::string& fallback);

// `prefix` + ".<host name>.<pid>.<n>": a name no other thread, process or host sharing the folder
// (a network file system) uses at the same time, for temp files that are renamed into place.
std::string unique_temp_name(const std::string& prefix);

// Writes `data` to `path` atomically: temp file in the same folder, fsync, rename, fsync dir.
Status write_atomic(const std::string& path, const std::string& data);

// Reads a whole file.
Expected<std::string> read_file(const std::string& path);

// Creates a directory and its parents (like mkdir -p).
Status make_dirs(const std::string& path);

// Removes a path recursively; a missing path is not an error.
Status remove_all(const std::string& path);

bool exists(const std::string& path);

// Writes all of `data` to `fd`, retrying short writes and EINTR; false on error (errno says why).
bool write_all(int fd, std::string_view data);

// fsyncs a folder, so a rename or new file in it survives a crash; best effort.
void fsync_dir(const std::string& dir);

// Marks every open descriptor from `first_fd` up close-on-exec, before an exec that must not
// inherit them (libraries such as Paho open sockets without O_CLOEXEC). close_range() where the
// kernel has it (5.11+), else each entry of /proc/self/fd.
void set_cloexec_from(int first_fd);

// `path` made absolute (against the working folder) and normalised, without resolving
// symlinks; `path` itself when that fails.
std::string absolute_path(const std::string& path);

}  // namespace flotilla::fs
