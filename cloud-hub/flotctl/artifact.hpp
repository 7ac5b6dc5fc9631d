// flotctl artifact: make signing keys and OTA bundles (ota/bundle.hpp), and upload them to the hub.
//
//   flotctl artifact keygen --out PREFIX        PREFIX.key (0600, PKCS#8 PEM) and PREFIX.pub
//   flotctl artifact build --name N --version V --target image|agent --payload FILE
//                          [--base FILE --base-version V [--level L]] --out DIR
//   flotctl artifact sign --key PREFIX.key DIR
//   flotctl artifact verify --pub PREFIX.pub DIR
//   flotctl [--hub URL] artifact push DIR
//
// push checks the bundle locally first (signed, payload and delta as the manifest says), then
// PUTs /api/v1/artifacts/{name}/{version} ({"manifest": text, "signature": base64}), .../payload
// and .../delta (raw bytes). The hub's {"error": ...} is printed as is. Exit codes as run()'s:
// 0 ok, 1 failed, 2 bad usage.
//
// Thread-safety: uses only its arguments and the streams given.
#pragma once

#include <iosfwd>
#include <string>
#include <vector>

#include "cloud-hub/flotctl/client.hpp"

namespace flotilla::flotctl {

// Whether `args` (flotctl's whole command line) is an artifact command: "artifact" as the first
// word after the global --hub flag. Artifact verbs have flags of their own.
bool is_artifact_command(const std::vector<std::string>& args);
// Whether `word` is the first word of `args` after the global --hub flag (pki.hpp uses it too).
bool first_word_is(const std::vector<std::string>& args, const std::string& word);

int artifact_command(const std::vector<std::string>& args, const std::string& default_hub,
                     std::ostream& out, std::ostream& err, const ClientAuth& auth = {});

std::string artifact_usage();

}  // namespace flotilla::flotctl
