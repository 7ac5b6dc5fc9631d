#include "cloud-hub/manifest_checker.hpp"

#include <algorithm>
#include <cctype>

namespace flotilla::hub {
namespace {

using Kind = DocNode::Kind;

size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t subst = prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1);
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, subst});
    }
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

bool valid_env_name(const std::string& n) {
  if (n.empty() || std::isdigit(static_cast<unsigned char>(n[0]))) return false;
  return std::all_of(n.begin(), n.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_';
  });
}

}  // namespace

std::string join_path(const std::string& path, const std::string& key) {
  return path.empty() ? key : path + "." + key;
}

bool valid_label_key(std::string_view k) {
  if (k.empty() || k.size() > 253) return false;
  return std::all_of(k.begin(), k.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.' ||
           c == '/';
  });
}

bool valid_label_value(std::string_view v) {
  if (v.size() > 63) return false;
  return std::all_of(v.begin(), v.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.';
  });
}

void Checker::fail(const DocNode& at, const std::string& path, const std::string& why) {
  if (error_) return;
  std::string where = at.line > 0 ? source_ + ":" + std::to_string(at.line) : source_;
  error_ = Error(where + ": " + (path.empty() ? "" : path + ": ") + why);
}

void Checker::only_fields(const DocNode& map, const std::string& path,
                          std::initializer_list<std::string_view> known,
                          std::initializer_list<std::string_view> unsupported) {
  for (const auto& [key, value] : map.fields) {
    if (std::find(unsupported.begin(), unsupported.end(), key) != unsupported.end()) {
      fail(value, "", join_path(path, key) + " is not supported yet");
      return;
    }
    if (std::find(known.begin(), known.end(), key) != known.end()) continue;
    std::string hint;
    size_t best = 3;  // suggest only near misses
    for (auto k : known) {
      size_t d = edit_distance(key, k);
      if (d < best) {
        best = d;
        hint = " (did you mean '" + std::string(k) + "'?)";
      }
    }
    fail(value, join_path(path, key), "unknown field" + hint);
    return;
  }
}

bool Checker::want_map(const DocNode& n, const std::string& path) {
  if (n.kind == Kind::kMap) return true;
  fail(n, path, "want a mapping, got " + describe_kind(n.kind));
  return false;
}

const DocNode* Checker::require(const DocNode& map, std::string_view key, const std::string& path,
                                const std::string& hint) {
  const DocNode* n = map.find(key);
  if (n == nullptr || n->kind == Kind::kNull) {
    fail(n != nullptr ? *n : map, join_path(path, std::string(key)),
         "required" + (hint.empty() ? "" : " (" + hint + ")"));
    return nullptr;
  }
  return n;
}

std::string Checker::text(const DocNode& n, const std::string& path) {
  if (n.is_scalar() && n.kind != Kind::kNull) return n.text;
  fail(n, path, "want text, got " + describe_kind(n.kind));
  return "";
}

std::string Checker::nonempty_text(const DocNode& n, const std::string& path) {
  std::string t = text(n, path);
  if (!failed() && t.empty()) fail(n, path, "must not be empty");
  return t;
}

int64_t Checker::whole(const DocNode& n, const std::string& path, int64_t min, int64_t max) {
  std::string range = "≥ " + std::to_string(min);
  if (n.kind != Kind::kInt) {
    std::string got =
        n.is_scalar() && n.kind != Kind::kNull ? "'" + n.text + "'" : describe_kind(n.kind);
    fail(n, path, "want a whole number " + range + ", got " + got);
    return min;
  }
  if (n.i < min || n.i > max) {
    fail(n, path,
         "want a whole number from " + std::to_string(min) + " to " + std::to_string(max) +
             ", got " + n.text);
    return min;
  }
  return n.i;
}

bool Checker::boolean(const DocNode& n, const std::string& path) {
  if (n.kind != Kind::kBool) {
    std::string got =
        n.is_scalar() && n.kind != Kind::kNull ? "'" + n.text + "'" : describe_kind(n.kind);
    fail(n, path, "want true or false, got " + got);
    return false;
  }
  return n.b;
}

std::string Checker::absolute_path(const DocNode& n, const std::string& path) {
  std::string p = nonempty_text(n, path);
  if (failed()) return p;
  bool dotdot = ("/" + p + "/").find("/../") != std::string::npos;
  if (p[0] != '/' || dotdot) {
    fail(n, path, "want an absolute path without '..', got '" + p + "'");
  }
  return p;
}

std::vector<std::string> Checker::text_list(const DocNode& n, const std::string& path) {
  std::vector<std::string> out;
  if (n.kind != Kind::kList) {
    fail(n, path, "want a list, got " + describe_kind(n.kind));
    return out;
  }
  for (size_t i = 0; i < n.items.size(); ++i) {
    out.push_back(text(n.items[i], path + "[" + std::to_string(i) + "]"));
  }
  return out;
}

StringMap Checker::text_map(const DocNode& n, const std::string& path,
                            const std::function<bool(const std::string&)>& key_ok,
                            const std::function<bool(const std::string&)>& value_ok,
                            const std::string& key_rule, const std::string& value_rule) {
  StringMap out;
  if (n.kind == Kind::kNull) return out;
  if (!want_map(n, path)) return out;
  for (const auto& [k, v] : n.fields) {
    std::string value = text(v, join_path(path, k));
    if (!key_ok(k)) fail(v, join_path(path, k), "bad key '" + k + "' (" + key_rule + ")");
    if (!failed() && !value_ok(value)) {
      fail(v, join_path(path, k), "bad value '" + value + "' (" + value_rule + ")");
    }
    out[k] = value;
  }
  return out;
}

StringMap Checker::labels(const DocNode& n, const std::string& path) {
  return text_map(
      n, path, [](const std::string& k) { return valid_label_key(k); },
      [](const std::string& v) { return valid_label_value(v); },
      "letters, digits, '-', '_', '.', '/'; at most 253",
      "letters, digits, '-', '_', '.'; at most 63");
}

StringMap Checker::env(const DocNode& n, const std::string& path) {
  return text_map(
      n, path, valid_env_name, [](const std::string&) { return true; },
      "letters, digits and '_', not starting with a digit", "");
}

}  // namespace flotilla::hub
