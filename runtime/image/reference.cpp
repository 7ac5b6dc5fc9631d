#include "runtime/image/reference.hpp"

#include <cctype>

namespace flotilla::runtime::image {
namespace {

bool lower_alnum(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }

// One path component: lowercase alphanumerics joined by '.', '_', '__' or runs of '-'.
bool valid_component(const std::string& s) {
  if (s.empty() || s.size() > 255 || !lower_alnum(s.front()) || !lower_alnum(s.back())) {
    return false;
  }
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (lower_alnum(c) || c == '-') continue;
    if (c == '.' || c == '_') {
      if (!lower_alnum(s[i - 1]) &&
          !(c == '_' && s[i - 1] == '_' && i >= 2 && lower_alnum(s[i - 2]))) {
        return false;
      }
      continue;
    }
    return false;
  }
  return true;
}

bool valid_tag(const std::string& s) {
  if (s.empty() || s.size() > 128) return false;
  auto word = [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; };
  if (!word(s[0])) return false;
  for (char c : s) {
    if (!word(c) && c != '.' && c != '-') return false;
  }
  return true;
}

// host[:port]: letters, digits, '-', '.', or a bracketed IPv6 literal; port all digits.
bool valid_registry(const std::string& s) {
  if (s.empty() || s.size() > 255) return false;
  std::string host = s, port;
  if (s[0] == '[') {
    auto close = s.find(']');
    if (close == std::string::npos) return false;
    host = s.substr(1, close - 1);
    if (close + 1 < s.size()) {
      if (s[close + 1] != ':') return false;
      port = s.substr(close + 2);
      if (port.empty()) return false;
    }
    for (char c : host) {
      if (!std::isxdigit(static_cast<unsigned char>(c)) && c != ':') return false;
    }
  } else {
    auto colon = s.find(':');
    if (colon != std::string::npos) {
      host = s.substr(0, colon);
      port = s.substr(colon + 1);
      if (port.empty()) return false;
    }
    if (host.empty() || host.front() == '-' || host.front() == '.' || host.back() == '-') {
      return false;
    }
    for (char c : host) {
      if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '.') return false;
    }
  }
  if (port.size() > 5) return false;
  for (char c : port) {
    if (!std::isdigit(static_cast<unsigned char>(c))) return false;
  }
  return port.empty() || std::stoi(port) <= 65535;
}

Error bad(const std::string& text, const std::string& why) {
  return Error("Failed to parse image reference '" + text + "': " + why);
}

}  // namespace

bool valid_digest(const std::string& d) {
  if (d.size() != 71 || d.compare(0, 7, "sha256:") != 0) return false;
  for (size_t i = 7; i < d.size(); ++i) {
    char c = d[i];
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

std::string Reference::str() const {
  std::string s = registry + "/" + repository;
  if (!tag.empty()) s += ":" + tag;
  if (!digest.empty()) s += "@" + digest;
  return s;
}

Expected<Reference> parse_reference(const std::string& text) {
  if (text.empty()) return bad(text, "empty");
  if (text.size() > 1024) return bad(text, "longer than 1024 characters");
  for (char c : text) {
    if (static_cast<unsigned char>(c) <= ' ' || static_cast<unsigned char>(c) >= 0x7f) {
      return bad(text, "contains whitespace or a non-ASCII character");
    }
  }
  Reference ref;
  std::string rest = text;
  auto at = rest.find('@');
  if (at != std::string::npos) {
    ref.digest = rest.substr(at + 1);
    rest = rest.substr(0, at);
    if (!valid_digest(ref.digest)) {
      return bad(text, "digest '" + ref.digest + "' is not sha256:<64 lowercase hex digits>");
    }
  }
  // The registry is the first component when it looks like a host (has '.' or ':', or is
  // localhost); otherwise the reference names a Docker Hub repository.
  auto slash = rest.find('/');
  std::string first = slash == std::string::npos ? "" : rest.substr(0, slash);
  if (!first.empty() &&
      (first.find('.') != std::string::npos || first.find(':') != std::string::npos ||
       first == "localhost" || first.front() == '[')) {
    ref.registry = first;
    rest = rest.substr(slash + 1);
    if (!valid_registry(ref.registry)) return bad(text, "invalid registry '" + ref.registry + "'");
  } else {
    ref.registry = "docker.io";
  }
  auto last_slash = rest.rfind('/');
  auto colon = rest.rfind(':');
  if (colon != std::string::npos && (last_slash == std::string::npos || colon > last_slash)) {
    ref.tag = rest.substr(colon + 1);
    rest = rest.substr(0, colon);
    if (!valid_tag(ref.tag)) {
      return bad(text,
                 "invalid tag '" + ref.tag + "' (letters, digits, '_', '.', '-'; at most 128)");
    }
  }
  if (rest.empty()) return bad(text, "no repository");
  size_t begin = 0;
  while (true) {
    auto end = rest.find('/', begin);
    std::string comp =
        rest.substr(begin, end == std::string::npos ? std::string::npos : end - begin);
    if (!valid_component(comp)) {
      return bad(text, "invalid repository component '" + comp +
                           "' (lowercase letters and digits, separated by '.', '_', '__' or '-')");
    }
    if (end == std::string::npos) break;
    begin = end + 1;
  }
  ref.repository = rest;
  if (ref.registry == "docker.io" && ref.repository.find('/') == std::string::npos) {
    ref.repository = "library/" + ref.repository;
  }
  // Checked on the full name, so a reference and its canonical text are valid alike.
  if (ref.repository.size() > 255) return bad(text, "repository longer than 255 characters");
  if (ref.tag.empty() && ref.digest.empty()) ref.tag = "latest";
  return ref;
}

}  // namespace flotilla::runtime::image
