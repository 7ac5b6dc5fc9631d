#include "runtime/image/image_index.hpp"

#include <nlohmann/json.hpp>

#include "common/fs.hpp"
#include "runtime/image/reference.hpp"

namespace flotilla::runtime::image {

Expected<IndexEntries> load_index(const std::string& path) {
  IndexEntries out;
  if (!fs::exists(path)) return out;
  auto text = fs::read_file(path);
  if (!text) return text.error();
  auto j = nlohmann::json::parse(*text, nullptr, false);
  auto bad = [&] { return Error("Failed to load image index '" + path + "': malformed"); };
  if (!j.is_object()) return bad();
  auto refs = j.find("references");
  auto used = j.find("last_used_ms");
  if (refs != j.end()) {
    if (!refs->is_object()) return bad();
    for (const auto& [ref, digest] : refs->items()) {
      if (!digest.is_string() || !valid_digest(digest.get<std::string>())) return bad();
      out.digest_of[ref] = digest.get<std::string>();
    }
  }
  if (used != j.end()) {
    if (!used->is_object()) return bad();
    for (const auto& [digest, ms] : used->items()) {
      if (!ms.is_number_integer() || !valid_digest(digest)) return bad();
      out.last_used_ms[digest] = ms.get<int64_t>();
    }
  }
  return out;
}

Status save_index(const std::string& path, const IndexEntries& entries) {
  nlohmann::json j = {{"references", entries.digest_of}, {"last_used_ms", entries.last_used_ms}};
  return fs::write_atomic(path, j.dump(2));
}

}  // namespace flotilla::runtime::image
