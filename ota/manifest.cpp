#include "ota/manifest.hpp"

#include <nlohmann/json.hpp>

#include <set>
#include <vector>

namespace flotilla::ota {
namespace {

using Json = nlohmann::json;

constexpr size_t kMaxNameChars = 63;

Error bad(const std::string& why) { return Error("Failed to parse manifest: " + why); }

bool is_lower_hex64(const std::string& s) {
  if (s.size() != 64) return false;
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

bool is_name(const std::string& s) {
  if (s.empty() || s.size() > kMaxNameChars) return false;
  if (!((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= '0' && s[0] <= '9'))) return false;
  for (char c : s) {
    const bool ok =
        (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '-' || c == '_';
    if (!ok) return false;
  }
  return true;
}

// Versions name URL path segments and files: printable ASCII, no space, no slash, not . or ..
bool is_version(const std::string& s) {
  if (s.empty() || s.size() > kMaxNameChars || s == "." || s == "..") return false;
  for (char c : s) {
    if (c <= ' ' || c > '~' || c == '/' || c == '\\') return false;
  }
  return true;
}

// Rejects keys other than `allowed` and reports the first missing one of `required`.
Status check_keys(const Json& obj, const std::string& where, const std::set<std::string>& allowed,
                  const std::vector<std::string>& required) {
  if (!obj.is_object()) return bad("'" + where + "' must be an object");
  for (const auto& item : obj.items()) {
    if (!allowed.count(item.key())) {
      const std::string path = where == "manifest" ? item.key() : where + "." + item.key();
      return bad("unknown key '" + path + "'");
    }
  }
  for (const auto& key : required) {
    if (!obj.contains(key)) {
      return bad("missing '" + (where == "manifest" ? key : where + "." + key) + "'");
    }
  }
  return Ok();
}

Expected<std::string> get_string(const Json& obj, const std::string& key, const std::string& path) {
  const Json& v = obj.at(key);
  if (!v.is_string()) return bad("'" + path + "' must be a string");
  return v.get<std::string>();
}

Expected<std::string> get_hex(const Json& obj, const std::string& key, const std::string& path) {
  auto s = get_string(obj, key, path);
  if (!s) return s;
  if (!is_lower_hex64(*s)) return bad("'" + path + "' must be 64 lowercase hex digits");
  return s;
}

Expected<uint64_t> get_size(const Json& obj, const std::string& key, const std::string& path) {
  const Json& v = obj.at(key);
  if (!v.is_number_unsigned()) return bad("'" + path + "' must be a whole number of bytes");
  return v.get<uint64_t>();
}

Expected<std::string> get_version(const Json& obj, const std::string& key,
                                  const std::string& path) {
  auto s = get_string(obj, key, path);
  if (!s) return s;
  if (!is_version(*s)) {
    return bad("'" + path + "' must be 1.." + std::to_string(kMaxNameChars) +
               " printable characters without spaces or slashes");
  }
  return s;
}

Expected<DeltaInfo> parse_delta(const Json& obj) {
  auto keys = check_keys(obj, "delta", {"algorithm", "baseVersion", "baseSha256", "sha256", "size"},
                         {"algorithm", "baseVersion", "baseSha256", "sha256", "size"});
  if (!keys) return keys.error();
  DeltaInfo d;
  auto algorithm = get_string(obj, "algorithm", "delta.algorithm");
  if (!algorithm) return algorithm.error();
  if (*algorithm != "zstd-patch-from") {
    return bad("'delta.algorithm' is '" + *algorithm + "', want 'zstd-patch-from'");
  }
  d.algorithm = *algorithm;
  auto base_version = get_version(obj, "baseVersion", "delta.baseVersion");
  if (!base_version) return base_version.error();
  d.base_version = *base_version;
  auto base_sha = get_hex(obj, "baseSha256", "delta.baseSha256");
  if (!base_sha) return base_sha.error();
  d.base_sha256 = *base_sha;
  auto sha = get_hex(obj, "sha256", "delta.sha256");
  if (!sha) return sha.error();
  d.sha256 = *sha;
  auto size = get_size(obj, "size", "delta.size");
  if (!size) return size.error();
  d.size = *size;
  return d;
}

// Duplicate keys would let two parsers read different manifests from one signed text.
Expected<Json> parse_json_strict(std::string_view text) {
  std::vector<std::set<std::string>> open_objects;
  std::string duplicate;
  auto callback = [&](int, Json::parse_event_t event, Json& parsed) {
    switch (event) {
      case Json::parse_event_t::object_start:
        open_objects.emplace_back();
        break;
      case Json::parse_event_t::object_end:
        if (!open_objects.empty()) open_objects.pop_back();
        break;
      case Json::parse_event_t::key:
        if (!open_objects.empty() &&
            !open_objects.back().insert(parsed.get<std::string>()).second && duplicate.empty()) {
          duplicate = parsed.get<std::string>();
        }
        break;
      default:
        break;
    }
    return true;
  };
  try {
    Json doc = Json::parse(text.begin(), text.end(), callback);
    if (!duplicate.empty()) return bad("duplicate key '" + duplicate + "'");
    return doc;
  } catch (const Json::exception& e) {
    return bad(std::string("not valid JSON: ") + e.what());
  }
}

}  // namespace

Expected<Manifest> parse_manifest(std::string_view text) {
  if (text.size() > kMaxManifestBytes) {
    return bad("it is " + std::to_string(text.size()) + " bytes, more than the limit of " +
               std::to_string(kMaxManifestBytes));
  }
  auto doc = parse_json_strict(text);
  if (!doc) return doc.error();
  auto keys = check_keys(*doc, "manifest", {"name", "version", "target", "payload", "delta"},
                         {"name", "version", "target", "payload"});
  if (!keys) return keys.error();

  Manifest m;
  auto name = get_string(*doc, "name", "name");
  if (!name) return name.error();
  if (!is_name(*name)) {
    return bad("'name' must be 1.." + std::to_string(kMaxNameChars) +
               " of a-z 0-9 . - _ starting with a letter or digit, got '" + *name + "'");
  }
  m.name = *name;
  auto version = get_version(*doc, "version", "version");
  if (!version) return version.error();
  m.version = *version;
  auto target = get_string(*doc, "target", "target");
  if (!target) return target.error();
  if (*target != "agent" && *target != "image") {
    return bad("'target' is '" + *target + "', want 'agent' or 'image'");
  }
  m.target = *target;

  const Json& payload = doc->at("payload");
  auto payload_keys =
      check_keys(payload, "payload", {"format", "sha256", "size"}, {"sha256", "size"});
  if (!payload_keys) return payload_keys.error();
  if (payload.contains("format")) {
    auto format = get_string(payload, "format", "payload.format");
    if (!format) return format.error();
    if (*format != kPayloadTar) {
      return bad("'payload.format' is '" + *format + "', want '" + kPayloadTar + "'");
    }
    if (m.target != "agent") return bad("'payload.format' 'tar' is only for target 'agent'");
    m.format = *format;
  }
  auto sha = get_hex(payload, "sha256", "payload.sha256");
  if (!sha) return sha.error();
  m.sha256 = *sha;
  auto size = get_size(payload, "size", "payload.size");
  if (!size) return size.error();
  m.size = *size;

  if (doc->contains("delta")) {
    auto delta = parse_delta(doc->at("delta"));
    if (!delta) return delta.error();
    m.delta = std::move(*delta);
  }
  return m;
}

std::string manifest_json(const Manifest& manifest) {
  // nlohmann's object keeps its keys sorted and dump() without indent writes no spaces.
  Json doc = {{"name", manifest.name},
              {"version", manifest.version},
              {"target", manifest.target},
              {"payload", {{"sha256", manifest.sha256}, {"size", manifest.size}}}};
  if (!manifest.format.empty()) doc["payload"]["format"] = manifest.format;
  if (manifest.delta) {
    const DeltaInfo& d = *manifest.delta;
    doc["delta"] = {{"algorithm", d.algorithm},
                    {"baseVersion", d.base_version},
                    {"baseSha256", d.base_sha256},
                    {"sha256", d.sha256},
                    {"size", d.size}};
  }
  return doc.dump(-1, ' ', false, Json::error_handler_t::replace);
}

}  // namespace flotilla::ota
