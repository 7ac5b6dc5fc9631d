#include "cloud-hub/manifest_doc.hpp"

#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/parser.h>
#include <yaml-cpp/yaml.h>

#include <sstream>

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

// [-+]?[0-9]+ and [-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?, by hand: libstdc++'s
// std::regex recurses once per character and overflows the stack on long scalars.
bool is_int_text(std::string_view t) {
  size_t i = !t.empty() && (t[0] == '+' || t[0] == '-') ? 1 : 0;
  return i < t.size() &&
         std::all_of(t.begin() + i, t.end(), [](char c) { return c >= '0' && c <= '9'; });
}

bool is_float_text(std::string_view t) {
  size_t i = 0;
  auto digits = [&] {
    size_t start = i;
    while (i < t.size() && t[i] >= '0' && t[i] <= '9') ++i;
    return i - start;
  };
  if (i < t.size() && (t[i] == '+' || t[i] == '-')) ++i;
  if (i < t.size() && t[i] == '.') {
    ++i;
    if (digits() == 0) return false;
  } else {
    if (digits() == 0) return false;
    if (i < t.size() && t[i] == '.') {
      ++i;
      digits();
    }
  }
  if (i < t.size() && (t[i] == 'e' || t[i] == 'E')) {
    ++i;
    if (i < t.size() && (t[i] == '+' || t[i] == '-')) ++i;
    if (digits() == 0) return false;
  }
  return i == t.size();
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
  if (is_int_text(t)) {
    const char* begin = t.data() + (t[0] == '+' ? 1 : 0);
    int64_t v = 0;
    auto [ptr, ec] = std::from_chars(begin, t.data() + t.size(), v);
    if (ec == std::errc() && ptr == t.data() + t.size()) {
      n.kind = DocNode::Kind::kInt;
      n.i = v;
      return;
    }
  }
  if (is_float_text(t)) {
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

Expected<DocNode> from_json(const nlohmann::json& j, const std::string& source, int depth) {
  DocNode n;
  if (depth > kMaxDepth) return Error(source + ": nested deeper than " + std::to_string(kMaxDepth));
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
      for (const auto& item : j) {
        auto child = from_json(item, source, depth + 1);
        if (!child) return child.error();
        n.items.push_back(std::move(*child));
      }
      break;
    case V::object:
      n.kind = DocNode::Kind::kMap;
      for (const auto& [k, v] : j.items()) {
        auto child = from_json(v, source, depth + 1);
        if (!child) return child.error();
        n.fields.emplace_back(k, std::move(*child));
      }
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
  } catch (const nlohmann::json::exception& e) {
    // out_of_range.406: a number too large for a double ("1e400").
    return Error(source + ": invalid JSON: " + e.what());
  }
  std::vector<DocNode> docs;
  if (j.is_array()) {
    for (const auto& item : j) {
      auto doc = from_json(item, source, 0);
      if (!doc) return doc.error();
      docs.push_back(std::move(*doc));
    }
  } else {
    auto doc = from_json(j, source, 0);
    if (!doc) return doc.error();
    docs.push_back(std::move(*doc));
  }
  return docs;
}

// Counts documents without building them. yaml-cpp 0.7's LoadAll loops forever, allocating, on
// some invalid input such as "," (jbeder/yaml-cpp#1040, fixed upstream by #1319): the parser
// reports an endless series of null documents. Scanning first bounds that.
class DocumentCounter final : public YAML::EventHandler {
 public:
  static constexpr int kMaxDocuments = 1000;
  void OnDocumentStart(const YAML::Mark& mark) override {
    if (++documents_ > kMaxDocuments) throw YAML::ParserException(mark, "more than 1000 documents");
  }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
  void OnAlias(const YAML::Mark&, YAML::anchor_t) override {}
  void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t,
                const std::string&) override {}
  void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                       YAML::EmitterStyle::value) override {}
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                  YAML::EmitterStyle::value) override {}
  void OnMapEnd() override {}

 private:
  int documents_ = 0;
};

// Offset of the first byte that is not valid UTF-8, or npos.
size_t first_invalid_utf8(std::string_view s) {
  static constexpr uint32_t kMin[] = {0, 0, 0x80, 0x800, 0x10000};
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    const size_t n = c < 0x80           ? 1
                     : (c >> 5) == 0x6  ? 2
                     : (c >> 4) == 0xe  ? 3
                     : (c >> 3) == 0x1e ? 4
                                        : 0;
    if (n == 0 || i + n > s.size()) return i;
    uint32_t cp = n == 1 ? c : c & (0x7f >> n);
    for (size_t k = 1; k < n; ++k) {
      const auto cc = static_cast<unsigned char>(s[i + k]);
      if ((cc >> 6) != 0x2) return i;
      cp = (cp << 6) | (cc & 0x3f);
    }
    if (cp < kMin[n] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return i;
    i += n;
  }
  return std::string_view::npos;
}

Expected<std::vector<DocNode>> parse_yaml(std::string_view text, const std::string& source) {
  // yaml-cpp does not check UTF-8; what it passes through would make the canonical JSON throw.
  if (size_t bad = first_invalid_utf8(text); bad != std::string_view::npos) {
    return Error(source + ":" + std::to_string(line_of_byte(text, bad)) + ": not valid UTF-8");
  }
  std::vector<YAML::Node> nodes;
  try {
    std::istringstream in{std::string(text)};
    YAML::Parser parser(in);
    DocumentCounter counter;
    while (parser.HandleNextDocument(counter)) {
    }
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
