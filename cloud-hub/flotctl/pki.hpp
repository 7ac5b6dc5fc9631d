// flotctl pki: the fleet's CA and the certificates of nodes, hubs and the broker
// (cloud-hub/pki.hpp).
//
//   flotctl pki init --dir DIR [--days N]
//   flotctl pki issue --dir DIR --name NAME --kind node|hub|server [--days N]
//                     [--ip A]... [--dns N]...
//   flotctl pki revoke --dir DIR --name NAME [--crl-days N]
//   flotctl pki crl --dir DIR [--crl-days N]
//
// Works offline on local files only. Exit codes as run()'s: 0 ok, 1 failed, 2 bad usage.
//
// Thread-safety: uses only its arguments and the streams given.
#pragma once

#include <cstdint>
#include <iosfwd>
#include <string>
#include <vector>

namespace flotilla::flotctl {

// Whether `args` is a pki command: "pki" as the first word (after a global --hub flag).
bool is_pki_command(const std::vector<std::string>& args);

int pki_command(const std::vector<std::string>& args, int64_t now_unix, std::ostream& out,
                std::ostream& err);

std::string pki_usage();

}  // namespace flotilla::flotctl
