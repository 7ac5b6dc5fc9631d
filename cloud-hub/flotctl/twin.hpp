// flotctl's device twin commands and the devices table (docs/hub.md "Devices"):
//
//   flotctl twin get DEVICE [-o json|yaml]
//   flotctl twin set DEVICE KEY=VALUE... [--if-version N]
//   flotctl get devices [NAME]
//
// twin set sends one merge patch of desired: each VALUE is taken as JSON when it parses as JSON
// (5, true, {"a":1}, "quoted"), else as a string; KEY=null deletes KEY; a dotted KEY (a.b=1)
// sets a nested property. With --if-version the hub refuses (409, exit 1) unless the device's
// desired version is still N.
//
// Thread-safety: pure functions over their arguments.
#pragma once

#include <cstdint>
#include <iosfwd>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cloud-hub/flotctl/client.hpp"
#include "common/expected.hpp"

namespace flotilla::flotctl {

// The merge patch that KEY=VALUE arguments describe, or why they do not.
Expected<nlohmann::json> twin_patch(const std::vector<std::string>& assignments);

// `args`: what follows "twin". Returns the exit code (0 ok, 1 failed, 2 bad usage: the caller
// prints usage).
int twin_command(Client& client, const std::vector<std::string>& args,
                 std::optional<uint64_t> if_version, const std::string& output, std::ostream& out,
                 std::ostream& err);

}  // namespace flotilla::flotctl
