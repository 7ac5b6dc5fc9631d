// API authentication: bearer tokens with roles, and the one table of which role each route needs
// (docs/hub.md "API authentication and audit").
//
// A tokens file (flotilla-hub --api-tokens FILE) holds one token a line, as
//
//   NAME ROLE SHA256
//
// NAME: 1-64 of [A-Za-z0-9._@-], unique; ROLE: viewer | operator | admin; SHA256: the 64 hex
// digits of the token's SHA-256 (the token itself is never on disk). Blank lines and lines
// starting with '#' are ignored. `flotctl token create NAME --role ROLE` makes a token and prints
// its line.
//
// Roles are ordered viewer < operator < admin; a token may do what its role and every lower one
// may. required_role() is the route table: /healthz, /readyz and artifact file downloads (agents
// fetch those, and check their signature) and the web console's static files (/, /console/NAME)
// are open; every other GET is viewer's; changes to
// workloads, devices, twins, rollouts and artifacts are operator's; deleting a node, reading the
// audit log and any method or path not in the table are admin's.
//
// Thread-safety: a TokenTable is immutable after parse(); the functions are pure.
#pragma once

#include <string>
#include <vector>

#include "common/expected.hpp"

namespace flotilla::hub {

enum class Role { kOpen = 0, kViewer = 1, kOperator = 2, kAdmin = 3 };

const char* role_name(Role role);
Expected<Role> parse_role(const std::string& text);

struct ApiToken {
  std::string name;
  Role role = Role::kViewer;
  std::string sha256;  // lowercase hex
};

class TokenTable {
 public:
  // `text` is the file's content; errors name `source` and the line ("FILE: line 3: ...").
  static Expected<TokenTable> parse(const std::string& text, const std::string& source);
  static Expected<TokenTable> load(const std::string& path);

  // The entry whose hash is the SHA-256 of `token`, or nullptr. Compares with every entry in
  // constant time (CRYPTO_memcmp), so timing tells nothing about which hash nearly matched.
  const ApiToken* find(const std::string& token) const;
  size_t size() const { return tokens_.size(); }

 private:
  std::vector<ApiToken> tokens_;
};

// What a request is about, for the audit log: kind (Node, Workload, Device, Rollout, Artifact)
// and name (NAME/VERSION for artifacts); both empty when the path does not say (an apply of
// several documents names them in its body).
struct RouteTarget {
  std::string kind;
  std::string name;
};

struct RouteRule {
  Role role = Role::kAdmin;
  RouteTarget target;
};

// The role `method` on `path` needs (HEAD as GET), and its target.
RouteRule route_rule(const std::string& method, const std::string& path);

// True for the methods that change something (everything but GET, HEAD and OPTIONS).
bool is_change(const std::string& method);

// A new token: 32 bytes from /dev/urandom as unpadded base64url (43 characters).
Expected<std::string> new_token();
// The tokens-file line for a token.
std::string token_line(const std::string& name, Role role, const std::string& token);
// Checks a token name against the file's rules.
Status check_token_name(const std::string& name);

}  // namespace flotilla::hub
