// ImageIndex file: which manifest digest each reference resolved to, and when each unpacked
// image was last used, kept in `<root>/index.json` (written atomically) so a tag pulled once is
// not resolved again after an agent restart, and GC can remove the oldest images first.
//
// Thread-safety: none; ImageStore serializes access.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "common/expected.hpp"

namespace flotilla::runtime::image {

struct IndexEntries {
  std::map<std::string, std::string> digest_of;  // reference -> sha256:...
  std::map<std::string, int64_t> last_used_ms;   // digest -> wall time
};

// A missing file is an empty index; a corrupt one is an Error (the caller starts empty).
Expected<IndexEntries> load_index(const std::string& path);
Status save_index(const std::string& path, const IndexEntries& entries);

}  // namespace flotilla::runtime::image
