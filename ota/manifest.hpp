// OTA bundle manifests: what an update is, in JSON, signed with Ed25519 (ota/signing.hpp).
//
// A bundle is a directory (ota/bundle.hpp): manifest.json, manifest.sig, payload and, for a
// delta bundle, delta. The manifest names the update and pins every byte it brings:
//
//   {"name":"fw","version":"2.0","target":"image",
//    "payload":{"sha256":"<64 hex>","size":67108864},     (agent target: optional "format":"tar")
//    "delta":{"algorithm":"zstd-patch-from","baseVersion":"1.0","baseSha256":"<64 hex>",
//             "sha256":"<64 hex>","size":712345}}
//
// The signature covers the manifest's exact bytes, so a receiver verifies the text it got before
// parsing it further; manifest_json() writes the canonical form (sorted keys, no spaces).
//
// Thread-safety: pure functions.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/expected.hpp"

namespace flotilla::ota {

inline constexpr size_t kMaxManifestBytes = 16 * 1024;
// payload.format of an agent update carrying the agent and its helpers (ota/agent_archive.hpp).
inline constexpr char kPayloadTar[] = "tar";

struct DeltaInfo {
  std::string algorithm = "zstd-patch-from";
  std::string base_version;
  std::string base_sha256;  // of the base payload the delta applies to
  std::string sha256;       // of the delta file
  uint64_t size = 0;

  bool operator==(const DeltaInfo&) const = default;
};

struct Manifest {
  std::string name;     // 1..63 of [a-z0-9.-_], starting with [a-z0-9]
  std::string version;  // 1..63 printable ASCII, no spaces or slashes, not "." or ".."
  std::string target;   // "agent" (the agent's own binary) | "image" (an A/B image slot pair)
  std::string format;   // "": the payload is the file itself; "tar" (agent target only): an
                        // archive of flotilla-agent and its helpers (ota/agent_archive.hpp)
  std::string sha256;   // of the full payload
  uint64_t size = 0;    // of the full payload
  std::optional<DeltaInfo> delta;

  bool operator==(const Manifest&) const = default;
};

// Strict: unknown, missing or duplicate keys, wrong types, bad or uppercase hex, an unknown
// delta algorithm, oversized text (> kMaxManifestBytes) are errors that say which field is wrong
// ("Failed to parse manifest: 'payload.sha256' must be 64 lowercase hex digits").
Expected<Manifest> parse_manifest(std::string_view json);
// Canonical JSON text of a valid manifest.
std::string manifest_json(const Manifest& manifest);

}  // namespace flotilla::ota
