#include "cloud-hub/api_auth.hpp"

#include <fcntl.h>
#include <openssl/crypto.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <set>
#include <sstream>

#include "common/base64.hpp"
#include "common/fs.hpp"
#include "common/sha256.hpp"

namespace flotilla::hub {
namespace {

std::vector<std::string> split_path(const std::string& path) {
  std::vector<std::string> out;
  size_t at = path.empty() || path[0] != '/' ? 0 : 1;
  while (at <= path.size()) {
    size_t end = std::min(path.find('/', at), path.size());
    out.push_back(path.substr(at, end - at));
    at = end + 1;
  }
  return out;
}

struct Route {
  const char* methods;  // space-separated
  const char* pattern;  // "*" matches one non-empty segment; "**" the whole path
  Role role;
  const char* kind;  // the audit target's kind; "" when the path names none
};

// The route table: the first row whose method and pattern match decides.
constexpr Route kRoutes[] = {
    {"GET", "/healthz", Role::kOpen, ""},
    {"GET", "/readyz", Role::kOpen, ""},
    // The web console's static files (no fleet data): a browser cannot send a token when it
    // opens a page; the console's API calls carry one.
    {"GET", "/", Role::kOpen, ""},
    {"GET", "/console/*", Role::kOpen, ""},
    {"GET", "/api/v1/artifacts/*/*/payload", Role::kOpen, ""},
    {"GET", "/api/v1/artifacts/*/*/delta", Role::kOpen, ""},
    {"GET", "/api/v1/audit", Role::kAdmin, ""},
    {"GET", "**", Role::kViewer, ""},
    {"DELETE", "/api/v1/nodes/*", Role::kAdmin, "Node"},
    {"PUT POST", "/api/v1/workloads", Role::kOperator, ""},
    {"PUT POST DELETE", "/api/v1/workloads/*", Role::kOperator, "Workload"},
    {"PUT DELETE", "/api/v1/devices/*", Role::kOperator, "Device"},
    {"PATCH POST", "/api/v1/devices/*/desired", Role::kOperator, "Device"},
    {"PUT POST DELETE", "/api/v1/rollouts/*", Role::kOperator, "Rollout"},
    {"POST", "/api/v1/rollouts/*/*", Role::kOperator, "Rollout"},
    {"PUT DELETE", "/api/v1/artifacts/*/*", Role::kOperator, "Artifact"},
    {"PUT", "/api/v1/artifacts/*/*/payload", Role::kOperator, "Artifact"},
    {"PUT", "/api/v1/artifacts/*/*/delta", Role::kOperator, "Artifact"},
};

bool method_matches(const char* methods, const std::string& method) {
  std::istringstream in(methods);
  std::string m;
  while (in >> m) {
    if (m == method) return true;
  }
  return false;
}

bool path_matches(const std::vector<std::string>& pattern, const std::vector<std::string>& path) {
  if (pattern.size() == 1 && pattern[0] == "**") return true;
  if (pattern.size() != path.size()) return false;
  for (size_t i = 0; i < pattern.size(); ++i) {
    if (pattern[i] == "*" ? path[i].empty() : pattern[i] != path[i]) return false;
  }
  return true;
}

bool valid_name(const std::string& name) {
  if (name.empty() || name.size() > 64) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '@' ||
           c == '-';
  });
}

bool is_hex64(const std::string& s) {
  return s.size() == 64 && std::all_of(s.begin(), s.end(), [](char c) {
           return std::isxdigit(static_cast<unsigned char>(c));
         });
}

}  // namespace

const char* role_name(Role role) {
  switch (role) {
    case Role::kOpen:
      return "open";
    case Role::kViewer:
      return "viewer";
    case Role::kOperator:
      return "operator";
    case Role::kAdmin:
      return "admin";
  }
  return "admin";
}

Expected<Role> parse_role(const std::string& text) {
  for (Role r : {Role::kViewer, Role::kOperator, Role::kAdmin}) {
    if (text == role_name(r)) return r;
  }
  return Error("unknown role '" + text + "' (want viewer, operator or admin)");
}

Status check_token_name(const std::string& name) {
  if (!valid_name(name)) {
    return Error("token name '" + name + "' is not 1-64 of the characters A-Z a-z 0-9 . _ @ -");
  }
  return Ok();
}

Expected<TokenTable> TokenTable::parse(const std::string& text, const std::string& source) {
  TokenTable table;
  std::set<std::string> names;
  std::set<std::string> hashes;
  std::istringstream in(text);
  std::string line;
  for (int number = 1; std::getline(in, line); ++number) {
    auto fail = [&](const std::string& why) {
      return Error(source + ": line " + std::to_string(number) + ": " + why);
    };
    std::istringstream fields(line);
    std::vector<std::string> f;
    for (std::string w; fields >> w;) f.push_back(w);
    if (f.empty() || f[0][0] == '#') continue;
    if (f.size() != 3) {
      return fail("want NAME ROLE SHA256 (3 fields), got " + std::to_string(f.size()));
    }
    if (auto st = check_token_name(f[0]); !st) return fail(st.error().message());
    auto role = parse_role(f[1]);
    if (!role) return fail(role.error().message());
    std::string hash = f[2];
    if (!is_hex64(hash)) {
      return fail("the token's SHA-256 must be 64 hex digits (flotctl token create prints it)");
    }
    std::transform(hash.begin(), hash.end(), hash.begin(),
                   [](char c) { return static_cast<char>(std::tolower(c)); });
    if (!names.insert(f[0]).second) return fail("token name '" + f[0] + "' appears twice");
    if (!hashes.insert(hash).second) return fail("this token's hash appears twice");
    table.tokens_.push_back(ApiToken{f[0], *role, hash});
  }
  if (table.tokens_.empty()) {
    return Error(source +
                 ": holds no tokens; nobody could use the API (add a line from "
                 "flotctl token create, or leave --api-tokens out)");
  }
  return table;
}

Expected<TokenTable> TokenTable::load(const std::string& path) {
  auto text = fs::read_file(path);
  if (!text) return text.error().WithContext("Failed to load API tokens");
  auto table = parse(*text, path);
  if (!table) return table.error().WithContext("Failed to load API tokens");
  return table;
}

const ApiToken* TokenTable::find(const std::string& token) const {
  const std::string hash = sha256_hex(token);
  const ApiToken* found = nullptr;
  for (const auto& t : tokens_) {
    if (CRYPTO_memcmp(t.sha256.data(), hash.data(), hash.size()) == 0) found = &t;
  }
  return token.empty() ? nullptr : found;
}

RouteRule route_rule(const std::string& method, const std::string& path) {
  const std::string m = method == "HEAD" ? "GET" : method;
  const auto segments = split_path(path);
  for (const auto& r : kRoutes) {
    if (!method_matches(r.methods, m) || !path_matches(split_path(r.pattern), segments)) continue;
    RouteRule rule;
    rule.role = r.role;
    rule.target.kind = r.kind;
    if (*r.kind != '\0') {
      rule.target.name = segments[3];
      if (rule.target.kind == "Artifact") rule.target.name += "/" + segments[4];
    }
    return rule;
  }
  return RouteRule{};
}

bool is_change(const std::string& method) {
  return method != "GET" && method != "HEAD" && method != "OPTIONS";
}

Expected<std::string> new_token() {
  unsigned char bytes[32];
  int fd = ::open("/dev/urandom", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Error(std::string("Failed to open '/dev/urandom': ") + std::strerror(errno));
  size_t got = 0;
  while (got < sizeof(bytes)) {
    ssize_t n = ::read(fd, bytes + got, sizeof(bytes) - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      ::close(fd);
      return Error("Failed to read '/dev/urandom': short read");
    }
    got += static_cast<size_t>(n);
  }
  ::close(fd);
  std::string token = base64_encode(std::string_view(reinterpret_cast<char*>(bytes), got));
  for (char& c : token) {
    if (c == '+') c = '-';
    if (c == '/') c = '_';
  }
  while (!token.empty() && token.back() == '=') token.pop_back();
  return token;
}

std::string token_line(const std::string& name, Role role, const std::string& token) {
  return name + " " + role_name(role) + " " + sha256_hex(token);
}

}  // namespace flotilla::hub
