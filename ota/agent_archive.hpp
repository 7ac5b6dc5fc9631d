// The agent and its helpers as one update payload: a plain ustar archive holding flotilla-agent
// and, usually, flotilla-shim and flotilla-oci-monitor (manifest payload.format "tar").
//
// The agent runs its helpers from the folder of the binary it runs, i.e. its A/B slot folder, so
// the helpers are versioned with the agent: an update brings them or, when it brings only the
// agent, the updater copies the running slot's (ota/slots.hpp). flotctl writes the archive
// deterministically (sorted names, uid/gid 0, mtime 0, no user names), so the same three files
// always give the same bytes and a delta between two versions' archives stays small.
//
// The reader is strict, since its output becomes executables: regular files only, named exactly
// as one of kAgentFiles (optionally "./name"), each at most once, flotilla-agent present, valid
// header checksums, no pax/GNU extension headers, no bytes missing. A bad archive is rejected
// before anything is written.
//
// Thread-safety: pure functions over files.
#pragma once

#include <sys/types.h>

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/expected.hpp"

namespace flotilla::ota {

inline constexpr const char* kAgentBinary = "flotilla-agent";
// The executables the agent runs from its own folder (runtime::default_shim_path(), the container
// driver's monitor next to the shim).
inline constexpr std::array<const char*, 2> kAgentHelpers = {"flotilla-shim",
                                                             "flotilla-oci-monitor"};

struct ArchiveEntry {
  std::string name;  // one of flotilla-agent and kAgentHelpers
  mode_t mode = 0;   // permission bits (0777) from the header
  uint64_t offset = 0;
  uint64_t size = 0;
};

// True when `data` starts with a ustar header (magic "ustar" at offset 257).
bool looks_like_tar(std::string_view data);

// Reads the entries of an agent archive held in `data` (see the rules above).
Expected<std::vector<ArchiveEntry>> read_agent_archive(std::string_view data);

// Writes `out` (temp -> fsync -> rename) as the archive of `dir`'s flotilla-agent and every
// helper; each must be a regular file (symlinks followed). Missing files are an error that says
// which.
Status write_agent_archive(const std::string& dir, const std::string& out);

// Extracts the agent archive at `archive` into `dest_dir`: each file temp -> fsync -> rename with
// its mode. Returns the names written.
Expected<std::vector<std::string>> extract_agent_archive(const std::string& archive,
                                                         const std::string& dest_dir);

}  // namespace flotilla::ota
