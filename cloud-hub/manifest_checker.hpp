// Checker: the field readers manifest validation is built from (internal to flotilla_manifest).
//
// A Checker keeps the first error it meets, formatted "<source>:<line>: <field.path>: <why>".
// After an error every reader returns a harmless default, so validation code reads top to
// bottom without an early return per field; callers check failed() after each section.
//
// Thread-safety: one Checker per validation.
#pragma once

#include <cstdint>
#include <functional>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "cloud-hub/manifest.hpp"
#include "cloud-hub/manifest_doc.hpp"

namespace flotilla::hub {

// "spec" + "process" -> "spec.process"; "" + "kind" -> "kind".
std::string join_path(const std::string& path, const std::string& key);
bool valid_label_key(std::string_view key);
bool valid_label_value(std::string_view value);

class Checker {
 public:
  explicit Checker(std::string source) : source_(std::move(source)) {}

  bool failed() const { return error_.has_value(); }
  const Error& error() const { return *error_; }
  void fail(const DocNode& at, const std::string& path, const std::string& why);

  // Fails on the first key of `map` not in `known`, suggesting a near match. `unsupported`
  // keys belong to the manifest format but are not implemented yet: they fail with "... is not
  // supported yet" rather than being silently ignored.
  void only_fields(const DocNode& map, const std::string& path,
                   std::initializer_list<std::string_view> known,
                   std::initializer_list<std::string_view> unsupported = {});
  // Fails unless `n` is a mapping; returns whether it is.
  bool want_map(const DocNode& n, const std::string& path);
  // A required child of `map`; nullptr (and an error) if absent or null.
  const DocNode* require(const DocNode& map, std::string_view key, const std::string& path,
                         const std::string& hint = "");
  // Any scalar as the text the user wrote (so `command: [sleep, 10]` reads "10").
  std::string text(const DocNode& n, const std::string& path);
  std::string nonempty_text(const DocNode& n, const std::string& path);
  int64_t whole(const DocNode& n, const std::string& path, int64_t min, int64_t max);
  bool boolean(const DocNode& n, const std::string& path);
  // An absolute path: starts with '/', no NUL, no ".." component.
  std::string absolute_path(const DocNode& n, const std::string& path);
  std::vector<std::string> text_list(const DocNode& n, const std::string& path);
  // A mapping of text to text (null reads as empty); the predicates say what is allowed, the
  // rules say it in words.
  StringMap text_map(const DocNode& n, const std::string& path,
                     const std::function<bool(const std::string&)>& key_ok,
                     const std::function<bool(const std::string&)>& value_ok,
                     const std::string& key_rule, const std::string& value_rule);
  StringMap labels(const DocNode& n, const std::string& path);
  StringMap env(const DocNode& n, const std::string& path);

 private:
  std::string source_;
  std::optional<Error> error_;
};

}  // namespace flotilla::hub
