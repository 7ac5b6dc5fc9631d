// flotctl's API credentials and the commands about them (docs/hub.md "API authentication and
// audit"):
//
//   flotctl token create NAME --role viewer|operator|admin
//       prints a new token (32 random bytes, base64url) and the line for the hub's --api-tokens
//       file (NAME ROLE SHA256); needs no hub, and the token is shown only this once
//   flotctl [--hub URL] [--token T] [--ca FILE] audit [--limit N] [--since ID] [-o json]
//       the hub's audit log (admin), oldest first: a table, or the records with before/after
//
// Every command takes --token TOKEN (else $FLOTILLA_TOKEN) and --ca FILE (else $FLOTILLA_CA, the
// PEM CA for an https:// hub).
//
// Thread-safety: uses only its arguments and the streams given.
#pragma once

#include <iosfwd>
#include <string>
#include <vector>

#include "cloud-hub/flotctl/client.hpp"
#include "common/expected.hpp"

namespace flotilla::flotctl {

// Removes --token and --ca (as "--x V" or "--x=V") from `args`, wherever they are; `auth` keeps
// the defaults given unless a flag overrides them.
Status take_auth_flags(std::vector<std::string>& args, ClientAuth& auth);

// `args` after "token" / after "audit". Exit codes as run()'s.
int token_command(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);
int audit_command(Client& client, const std::vector<std::string>& args, std::ostream& out,
                  std::ostream& err);

}  // namespace flotilla::flotctl
