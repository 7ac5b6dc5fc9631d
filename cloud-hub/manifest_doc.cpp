#include "cloud-hub/manifest_doc.hpp"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <regex>

namespace flotilla::hub {
namespace {

// Deeper nesting than any manifest needs; guards the recursion against hostile input.
constexpr int kMaxDepth = 64;

std::string where(const std::string& source, int line) {
  return line > 0 ? source + ":" + std::to_string(line) : source;
}

// Types a plain (unquoted) YAML scalar by the YAML 1.2 core schema.
void resolve_plain(DocNode& n) {
  const std::string& t = n.text;
  if (t.empty() || t == "~" || t == "null" || t == "Null" || t == "NULL") {
    n.kind = DocNode::Kind::kNull;
    return;
  }
  if (t == "true" || t == "True" || t == "TRUE" || t == "false" || t == "False" || t == "FALSE") {
    n.kind = DocNode::Kind::kBool;
    n.b = t[0] == 't' || t[0] == 'T';
    return;
  }
  static const std::regex kInt(R"([-+]?[0-9]+)");
  static const std::regex kFloat(R"([-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?)");
  if (std::regex_match(t, kInt)) {
    const char* begin = t.data() + (t[0] == '+' ? 1 : 0);
    int64_t v = 0;
    auto [ptr, ec] = std::from_chars(begin, t.data() + t.size(), v);
    if (ec == std::errc() && ptr == t.data() + t.size()) {
      n.kind = DocNode::Kind::kInt;
      n.i = v;
      return;
    }
  }
  if (std::regex_match(t, kFloat)) {
    n.kind = DocNode::Kind::kFloat;
    n.f = std::strtod(t.c_str(), nullptr);
    return;
  }
  n.kind = DocNode::Kind::kString;
}

Expected<DocNode> from_yaml(const YAML::Node& y, const std::string& source, int depth) {
  DocNode n;
  n.line = y.Mark().line >= 0 ? y.Mark().line + 1 : 0;
  if (depth > kMaxDepth) {
    return Error(where(source, n.line) + ": nested deeper than " + std::to_string(kMaxDepth));
  }
  switch (y.Type()) {
    case YAML::NodeType::Undefined:
    case YAML::NodeType::Null:
      n.kind = DocNode::Kind::kNull;
      return n;
    case YAML::NodeType::Scalar: {
      n.text = y.Scalar();
      const std::string& tag = y.Tag();
      bool quoted = tag == "!" || (tag.size() >= 4 && tag.substr(tag.size() - 4) == ":str");
      if (quoted) {
        n.kind = DocNode::Kind::kString;
      } else {
        resolve_plain(n);
      }
      return n;
    }
    case YAML::NodeType::Sequence:
      n.kind = DocNode::Kind::kList;
      for (const auto& item : y) {
        auto child = from_yaml(item, source, depth + 1);
        if (!child) return child.error();
        n.items.push_back(std::move(*child));
      }
      return n;
    case YAML::NodeType::Map:
      n.kind = DocNode::Kind::kMap;
      for (const auto& kv : y) {
        int key_line = kv.first.Mark().line + 1;
        if (!kv.first.IsScalar()) {
          return Error(where(source, key_line) + ": map keys must be plain text");
        }
        std::string key = kv.first.Scalar();
        if (n.find(key) != nullptr) {
          return Error(where(source, key_line) + ": duplicate key '" + key + "'");
        }
        auto child = from_yaml(kv.second, source, depth + 1);
        if (!child) return child.error();
        // Messages about a field point at its key: the line a user looks for.
        child->line = key_line;
        n.fields.emplace_back(std::move(key), std::move(*child));
      }
      return n;
  }
  return n;
}

DocNode from_json(const nlohmann::json& j) {
  DocNode n;
  using V = nlohmann::json::value_t;
  switch (j.type()) {
    case V::null:
    case V::discarded:
      n.kind = DocNode::Kind::kNull;
      break;
    case V::boolean:
      n.kind = DocNode::Kind::kBool;
      n.b = j.get<bool>();
      n.text = n.b ? "true" : "false";
      break;
    case V::number_integer:
      n.kind = DocNode::Kind::kInt;
      n.i = j.get<int64_t>();
      n.text = j.dump();
      break;
    case V::number_unsigned:
      if (j.get<uint64_t>() <= static_cast<uint64_t>(INT64_MAX)) {
        n.kind = DocNode::Kind::kInt;
        n.i = static_cast<int64_t>(j.get<uint64_t>());
      } else {
        n.kind = DocNode::Kind::kFloat;
        n.f = static_cast<double>(j.get<uint64_t>());
      }
      n.text = j.dump();
      break;
    case V::number_float:
      n.kind = DocNode::Kind::kFloat;
      n.f = j.get<double>();
      n.text = j.dump();
      break;
    case V::string:
      n.kind = DocNode::Kind::kString;
      n.text = j.get<std::string>();
      break;
    case V::array:
      n.kind = DocNode::Kind::kList;
      for (const auto& item : j) n.items.push_back(from_json(item));
      break;
    case V::object:
      n.kind = DocNode::Kind::kMap;
      for (const auto& [k, v] : j.items()) n.fields.emplace_back(k, from_json(v));
      break;
    case V::binary:
      n.kind = DocNode::Kind::kNull;
      break;
  }
  return n;
}

int line_of_byte(std::string_view text, size_t byte) {
  byte = std::min(byte, text.size());
  return 1 + static_cast<int>(std::count(text.begin(), text.begin() + byte, '\n'));
}

Expected<std::vector<DocNode>> parse_json(std::string_view text, const std::string& source) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text.begin(), text.end());
  } catch (const nlohmann::json::parse_error& e) {
    // e.what() is "[json.exception.parse_error.101] parse error at line 1, column 2: ...".
    std::string what = e.what();
    auto colon = what.find(": ");
    std::string cause = colon == std::string::npos ? what : what.substr(colon + 2);
    return Error(source + ":" + std::to_string(line_of_byte(text, e.byte > 0 ? e.byte - 1 : 0)) +
                 ": invalid JSON: " + cause);
  }
  std::vector<DocNode> docs;
  if (j.is_array()) {
    for (const auto& item : j) docs.push_back(from_json(item));
  } else {
    docs.push_back(from_json(j));
  }
  return docs;
}

Expected<std::vector<DocNode>> parse_yaml(std::string_view text, const std::string& source) {
  std::vector<YAML::Node> nodes;
  try {
    nodes = YAML::LoadAll(std::string(text));
  } catch (const YAML::Exception& e) {
    int line = e.mark.line >= 0 ? e.mark.line + 1 : 0;
    return Error(where(source, line) + ": invalid YAML: " + e.msg);
  }
  std::vector<DocNode> docs;
  try {
    for (const auto& y : nodes) {
      if (y.IsNull()) continue;  // "---" at the end, or a document holding only comments
      auto doc = from_yaml(y, source, 0);
      if (!doc) return doc.error();
      docs.push_back(std::move(*doc));
    }
  } catch (const YAML::Exception& e) {
    return Error(source + ": invalid YAML: " + e.msg);
  }
  return docs;
}

}  // namespace

const DocNode* DocNode::find(std::string_view key) const {
  for (const auto& [k, v] : fields) {
    if (k == key) return &v;
  }
  return nullptr;
}

nlohmann::json DocNode::to_json() const {
  switch (kind) {
    case Kind::kNull:
      return nullptr;
    case Kind::kBool:
      return b;
    case Kind::kInt:
      return i;
    case Kind::kFloat:
      return std::isfinite(f) ? nlohmann::json(f) : nlohmann::json(text);
    case Kind::kString:
      return text;
    case Kind::kList: {
      auto out = nlohmann::json::array();
      for (const auto& item : items) out.push_back(item.to_json());
      return out;
    }
    case Kind::kMap: {
      auto out = nlohmann::json::object();
      for (const auto& [k, v] : fields) out[k] = v.to_json();
      return out;
    }
  }
  return nullptr;
}

std::string describe_kind(DocNode::Kind kind) {
  switch (kind) {
    case DocNode::Kind::kNull:
      return "nothing";
    case DocNode::Kind::kBool:
      return "true/false";
    case DocNode::Kind::kInt:
    case DocNode::Kind::kFloat:
      return "a number";
    case DocNode::Kind::kString:
      return "text";
    case DocNode::Kind::kList:
      return "a list";
    case DocNode::Kind::kMap:
      return "a mapping";
  }
  return "something else";
}

Expected<std::vector<DocNode>> parse_documents(std::string_view text, const std::string& source) {
  if (text.size() > kMaxManifestBytes) {
    return Error(source + ": " + std::to_string(text.size()) + " bytes is over the " +
                 std::to_string(kMaxManifestBytes) + "-byte manifest limit");
  }
  auto first = text.find_first_not_of(" \t\r\n");
  // JSON when it looks like JSON, so its errors are JSON errors. (A YAML document written
  // entirely in flow style is read as JSON too; manifests in YAML use block style.)
  if (first != std::string_view::npos && (text[first] == '{' || text[first] == '[')) {
    return parse_json(text, source);
  }
  return parse_yaml(text, source);
}

}  // namespace flotilla::hub
