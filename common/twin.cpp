#include "common/twin.hpp"

#include <cmath>
#include <string>
#include <utility>

namespace flotilla::twin {
namespace {

// Text deeper than this is refused before nlohmann parses it (its parser and destructor do not
// recurse, but building and then walking a deep document only to reject it is wasted work).
// Between kMaxDepth and this, validate() reports the exact path.
constexpr size_t kMaxScanDepth = 64;

bool valid_utf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    size_t n = 0;
    uint32_t cp = 0;
    if (c < 0x80) {
      ++i;
      continue;
    } else if (c >= 0xc2 && c <= 0xdf) {
      n = 1, cp = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
      n = 2, cp = c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
      n = 3, cp = c & 0x07;
    } else {
      return false;
    }
    if (i + n >= s.size()) return false;
    for (size_t k = 1; k <= n; ++k) {
      const auto cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xc0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3f);
    }
    if ((n == 2 && cp < 0x800) || (n == 3 && (cp < 0x10000 || cp > 0x10ffff)) ||
        (cp >= 0xd800 && cp <= 0xdfff))
      return false;
    i += n + 1;
  }
  return true;
}

// A key as it appears in an error path: control bytes escaped, long keys cut.
std::string display_key(std::string_view key) {
  if (key.empty()) return "\"\"";
  constexpr size_t kShown = 40;
  std::string out;
  for (size_t i = 0; i < key.size() && i < kShown; ++i) {
    const auto c = static_cast<unsigned char>(key[i]);
    if (c < 0x20 || c == 0x7f) {
      static constexpr char kHex[] = "0123456789abcdef";
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 0xf];
    } else {
      out += static_cast<char>(c);
    }
  }
  if (key.size() > kShown) out += "...";
  return out;
}

Status key_error(const std::string& path, std::string_view key) {
  const std::string where = path + "." + display_key(key);
  if (key.empty()) return Error(where + ": empty key");
  if (key.size() > kMaxKeyBytes)
    return Error(where + ": key of " + std::to_string(key.size()) + " bytes is longer than " +
                 std::to_string(kMaxKeyBytes));
  for (char ch : key) {
    const auto c = static_cast<unsigned char>(ch);
    if (c < 0x20 || c == 0x7f) return Error(where + ": control character in key");
  }
  if (!valid_utf8(key)) return Error(where + ": key is not valid UTF-8");
  return Ok();
}

// `level`: how many objects and arrays hold `v`, plus one if `v` is one itself.
Status validate_value(const Json& v, std::string& path, size_t level) {
  switch (v.type()) {
    case Json::value_t::object:
    case Json::value_t::array: {
      if (level > kMaxDepth)
        return Error(path + ": nesting deeper than " + std::to_string(kMaxDepth));
      const size_t mark = path.size();
      if (v.is_object()) {
        for (const auto& [key, child] : v.items()) {
          if (auto st = key_error(path, key); !st) return st;
          path += '.';
          path += key;
          auto st = validate_value(child, path, level + 1);
          path.resize(mark);
          if (!st) return st;
        }
      } else {
        for (size_t i = 0; i < v.size(); ++i) {
          path += '[' + std::to_string(i) + ']';
          auto st = validate_value(v[i], path, level + 1);
          path.resize(mark);
          if (!st) return st;
        }
      }
      return Ok();
    }
    case Json::value_t::string:
      if (!valid_utf8(v.get_ref<const std::string&>()))
        return Error(path + ": string is not valid UTF-8");
      return Ok();
    case Json::value_t::number_float:
      if (!std::isfinite(v.get<double>())) return Error(path + ": number is not finite");
      return Ok();
    case Json::value_t::binary:
    case Json::value_t::discarded:
      return Error(path + ": not a JSON value");
    default:
      return Ok();
  }
}

// Deepest nesting of brackets outside strings, stopping early past `limit`.
size_t scan_depth(std::string_view text, size_t limit) {
  size_t depth = 0, deepest = 0;
  bool in_string = false, escaped = false;
  for (char c : text) {
    if (in_string) {
      if (escaped)
        escaped = false;
      else if (c == '\\')
        escaped = true;
      else if (c == '"')
        in_string = false;
      continue;
    }
    if (c == '"') {
      in_string = true;
    } else if (c == '{' || c == '[') {
      if (++depth > deepest && (deepest = depth) > limit) return deepest;
    } else if ((c == '}' || c == ']') && depth > 0) {
      --depth;
    }
  }
  return deepest;
}

Status check_version(uint64_t version, std::string_view side) {
  if (version > kMaxVersion)
    return Error(std::string(side) + ": version " + std::to_string(version) +
                 " is above the limit " + std::to_string(kMaxVersion));
  return Ok();
}

Update stale(std::string_view side, uint64_t got, uint64_t have) {
  return {Outcome::kStale, have,
          std::string(side) + " version " + std::to_string(got) + " is not above " +
              std::to_string(have)};
}

// `doc` without null properties (merge patch onto an empty document).
Json without_nulls(const Json& doc) { return merge_patch(Json::object(), doc); }

// Takes the peer's whole document of one side when its version is newer.
Expected<Update> adopt(Json& doc, uint64_t& version, const Json& peer_doc, uint64_t peer_version,
                       std::string_view side) {
  if (auto st = validate(peer_doc, side); !st) return st.error();
  if (auto st = check_version(peer_version, side); !st) return st.error();
  Json next = without_nulls(peer_doc);
  if (auto st = check_size(next, side); !st) return st.error();
  if (peer_version <= version) return stale(side, peer_version, version);
  doc = std::move(next);
  version = peer_version;
  return Update{Outcome::kChanged, version, ""};
}

// The owner of a side moves its version past a peer that holds a newer one.
Expected<Update> supersede(uint64_t& version, uint64_t peer_version, std::string_view side) {
  if (peer_version >= kMaxVersion)
    return Error(std::string(side) + ": peer version " + std::to_string(peer_version) +
                 " is above the limit " + std::to_string(kMaxVersion - 1));
  if (peer_version < version) return Update{Outcome::kUnchanged, version, ""};
  version = peer_version + 1;
  return Update{Outcome::kChanged, version, ""};
}

}  // namespace

Status validate(const Json& value, std::string_view path) {
  std::string p(path);
  if (!value.is_object()) return Error(p + ": not a JSON object (got " + value.type_name() + ")");
  return validate_value(value, p, 1);
}

Status check_size(const Json& doc, std::string_view path) {
  const size_t size = canonical(doc).size();
  if (size > kMaxDocumentBytes)
    return Error(std::string(path) + ": " + std::to_string(size) +
                 " bytes, more than the limit of " + std::to_string(kMaxDocumentBytes));
  return Ok();
}

Expected<Json> parse(std::string_view text, std::string_view path) {
  const std::string p(path);
  if (text.size() > kMaxTextBytes)
    return Error(p + ": " + std::to_string(text.size()) +
                 " bytes of JSON, more than the limit of " + std::to_string(kMaxTextBytes));
  if (scan_depth(text, kMaxScanDepth) > kMaxScanDepth)
    return Error(p + ": nesting deeper than " + std::to_string(kMaxDepth));
  Json doc;
  try {
    doc = Json::parse(text);
  } catch (const std::exception& e) {
    std::string why = e.what();
    // "[json.exception.parse_error.101] parse error at ...": the bracket is noise to a user.
    if (!why.empty() && why[0] == '[') {
      if (auto end = why.find("] "); end != std::string::npos) why.erase(0, end + 2);
    }
    return Error(p + ": invalid JSON: " + why);
  }
  if (auto st = validate(doc, p); !st) return st.error();
  return doc;
}

Json merge_patch(Json target, const Json& patch) {
  target.merge_patch(patch);
  return target;
}

Json delta(const Json& desired, const Json& reported) {
  Json out = Json::object();
  if (!desired.is_object()) return out;
  for (const auto& [key, want] : desired.items()) {
    if (want.is_null()) continue;
    const auto have = reported.is_object() ? reported.find(key) : reported.end();
    if (reported.is_object() && have != reported.end()) {
      if (want.is_object() && have->is_object()) {
        Json sub = delta(want, *have);
        if (!sub.empty()) out[key] = std::move(sub);
        continue;
      }
      if (want == *have) continue;
    }
    out[key] = want;
  }
  return out;
}

std::string canonical(const Json& doc) {
  // nlohmann's objects are std::maps: keys come out sorted by bytes. `replace` only matters for
  // invalid UTF-8, which validate() keeps out; it makes this total.
  return doc.dump(-1, ' ', false, Json::error_handler_t::replace);
}

std::string_view to_string(Outcome o) {
  switch (o) {
    case Outcome::kChanged:
      return "changed";
    case Outcome::kUnchanged:
      return "unchanged";
    case Outcome::kStale:
      return "stale";
    case Outcome::kConflict:
      return "conflict";
  }
  return "unknown";
}

Expected<Twin> Twin::restore(std::string_view desired, uint64_t desired_version,
                             std::string_view reported, uint64_t reported_version,
                             uint64_t observed_desired) {
  Twin t;
  auto d = parse(desired, "desired");
  if (!d) return d.error();
  auto r = parse(reported, "reported");
  if (!r) return r.error();
  t.desired_ = without_nulls(*d);
  t.reported_ = without_nulls(*r);
  for (const auto& [doc, side] : {std::pair{&t.desired_, "desired"}, {&t.reported_, "reported"}})
    if (auto st = check_size(*doc, side); !st) return st.error();
  if (auto st = check_version(desired_version, "desired"); !st) return st.error();
  if (auto st = check_version(reported_version, "reported"); !st) return st.error();
  if (auto st = check_version(observed_desired, "observedDesired"); !st) return st.error();
  t.desired_version_ = desired_version;
  t.reported_version_ = reported_version;
  t.observed_desired_ = observed_desired;
  return t;
}

Expected<Update> Twin::put_desired(Json next, std::optional<uint64_t> if_version) {
  if (if_version && *if_version != desired_version_)
    return Update{Outcome::kConflict, desired_version_,
                  "desired version is " + std::to_string(desired_version_) + ", not " +
                      std::to_string(*if_version)};
  if (auto st = check_size(next, "desired"); !st) return st.error();
  if (next == desired_) return Update{Outcome::kUnchanged, desired_version_, ""};
  if (auto st = check_version(desired_version_ + 1, "desired"); !st) return st.error();
  desired_ = std::move(next);
  return Update{Outcome::kChanged, ++desired_version_, ""};
}

Expected<Update> Twin::set_desired(const Json& patch, std::optional<uint64_t> if_version) {
  if (auto st = validate(patch, "desired"); !st) return st.error();
  return put_desired(merge_patch(desired_, patch), if_version);
}

Expected<Update> Twin::replace_desired(const Json& doc, std::optional<uint64_t> if_version) {
  if (auto st = validate(doc, "desired"); !st) return st.error();
  return put_desired(without_nulls(doc), if_version);
}

Expected<Update> Twin::adopt_desired(const Json& doc, uint64_t version) {
  return adopt(desired_, desired_version_, doc, version, "desired");
}

Expected<Update> Twin::supersede_desired(uint64_t peer_version) {
  return supersede(desired_version_, peer_version, "desired");
}

Expected<Update> Twin::report(const Json& patch, std::optional<uint64_t> observed_desired) {
  if (auto st = validate(patch, "reported"); !st) return st.error();
  if (observed_desired) {
    if (auto st = check_version(*observed_desired, "observedDesired"); !st) return st.error();
  }
  Json next = merge_patch(reported_, patch);
  if (auto st = check_size(next, "reported"); !st) return st.error();
  const uint64_t observed = observed_desired.value_or(observed_desired_);
  if (next == reported_ && observed == observed_desired_)
    return Update{Outcome::kUnchanged, reported_version_, ""};
  if (auto st = check_version(reported_version_ + 1, "reported"); !st) return st.error();
  reported_ = std::move(next);
  observed_desired_ = observed;
  return Update{Outcome::kChanged, ++reported_version_, ""};
}

Expected<Update> Twin::adopt_reported(const Json& doc, uint64_t version,
                                      uint64_t observed_desired) {
  if (auto st = check_version(observed_desired, "observedDesired"); !st) return st.error();
  auto u = adopt(reported_, reported_version_, doc, version, "reported");
  if (u && u->changed()) observed_desired_ = observed_desired;
  return u;
}

Expected<Update> Twin::supersede_reported(uint64_t peer_version) {
  return supersede(reported_version_, peer_version, "reported");
}

}  // namespace flotilla::twin
