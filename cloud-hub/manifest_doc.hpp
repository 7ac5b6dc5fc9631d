// A parsed YAML or JSON document as a plain tree that remembers source lines, so that manifest
// validation can say where a problem is ("hello.yaml:7: spec.replicas: ...").
//
// YAML scalars keep the text as written and get a type by the YAML 1.2 core schema: plain
// 3 is an int, "3" (quoted) a string, true a bool, ~ or nothing a null. yaml-cpp and
// nlohmann-json throw; parse_documents() catches and returns an Error with file and line.
//
// Thread-safety: plain values.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/expected.hpp"

namespace flotilla::hub {

struct DocNode {
  enum class Kind { kNull, kBool, kInt, kFloat, kString, kList, kMap };

  // User-declared so that clang (C++20, libstdc++'s constexpr vector) does not instantiate
  // pair<string, DocNode> while DocNode is still incomplete.
  DocNode() = default;

  Kind kind = Kind::kNull;
  std::string text;  // scalars: as written ("three", "500m", "1.0")
  bool b = false;
  int64_t i = 0;
  double f = 0;
  std::vector<DocNode> items;                           // kList
  std::vector<std::pair<std::string, DocNode>> fields;  // kMap, in source order
  // 1-based; 0 when unknown (JSON). For a map's value, the line of its key.
  int line = 0;

  bool is_scalar() const { return kind != Kind::kList && kind != Kind::kMap; }
  // The value of `key` in a map, or nullptr.
  const DocNode* find(std::string_view key) const;
  nlohmann::json to_json() const;
};

// "a string", "a number", "a list", ... for messages.
std::string describe_kind(DocNode::Kind kind);

// Largest manifest file accepted.
inline constexpr size_t kMaxManifestBytes = 1024 * 1024;

// Parses every document in `text`: JSON when it starts with '{' or '[' (an object, or an array
// of objects), else YAML (several separated by ---; empty ones skipped). `source` names the input
// in errors ("hello.yaml").
Expected<std::vector<DocNode>> parse_documents(std::string_view text, const std::string& source);

}  // namespace flotilla::hub
