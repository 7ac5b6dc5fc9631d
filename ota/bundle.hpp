// Update bundles: a directory holding
//   manifest.json  the manifest's canonical text (ota/manifest.hpp)
//   manifest.sig   the raw 64-byte Ed25519 signature of manifest.json's exact bytes
//   payload        the full payload (an image, an agent binary, or an archive of the agent and
//                  its helpers: ota/agent_archive.hpp)
//   delta          optional: the payload as a zstd patch against a base version (ota/delta.hpp)
// made by `flotctl artifact build` and `sign`, checked by `verify` and `push`, and read by the
// hub and the agent's updater. Everything written goes temp -> fsync -> rename; a failed build
// leaves no manifest.json that names files which are not there.
//
// Errors name the bundle, the file and the mismatch: "Failed to load bundle 'out/fw-2.0':
// payload: sha256 is 1f..., manifest says 9c...".
//
// Thread-safety: pure functions over files; two calls must not write the same directory.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "common/expected.hpp"
#include "common/sha256.hpp"
#include "ota/delta.hpp"
#include "ota/manifest.hpp"

namespace flotilla::ota {

inline constexpr char kManifestFile[] = "manifest.json";
inline constexpr char kSignatureFile[] = "manifest.sig";
inline constexpr char kPayloadFile[] = "payload";
inline constexpr char kDeltaFile[] = "delta";

struct BuildRequest {
  std::string name;
  std::string version;
  std::string target;  // "image" | "agent"
  // Agent target: a folder is packed as an archive of flotilla-agent and its helpers (all
  // required), and a file that is a tar archive must be a valid agent archive; either way the
  // manifest says payload.format "tar". Else the file itself.
  std::string payload_path;
  std::string base_path;     // with base_version: also make a delta against this payload (a
                             // folder for the agent target is packed the same way)
  std::string base_version;  // the version the base payload is
  std::string out_dir;       // created if missing; an old manifest.sig there is removed
  DeltaOptions delta_options;
};

// Copies the payload into out_dir, makes the delta when a base is given and writes manifest.json
// last. Name, version and target are checked (as parse_manifest does) before any work.
Expected<Manifest> build_bundle(const BuildRequest& request);

// Signs dir/manifest.json's bytes into dir/manifest.sig.
Status sign_bundle(const std::string& dir, std::string_view private_pem);

struct Bundle {
  Manifest manifest;
  std::string manifest_text;  // the exact bytes that were signed
  std::string signature;      // 64 bytes; empty when the bundle has no manifest.sig
  std::string payload_path;
  std::string delta_path;  // empty when the manifest has no delta
};

// Reads dir and checks it: with `public_pem`, manifest.sig must verify over manifest.json's exact
// bytes (before the manifest is parsed); then payload and delta must have the manifest's sizes
// and sha256. A `delta` file the manifest does not name is an error too.
Expected<Bundle> load_bundle(const std::string& dir,
                             std::optional<std::string_view> public_pem = std::nullopt);

// What an agent does with a manifest and signature it received: verifies the signature over the
// exact text with the pinned key first, then parses strictly. Errors say which step failed.
Expected<Manifest> verify_manifest(std::string_view manifest_text, std::string_view signature,
                                   std::string_view public_pem);

// For a device: rebuilds the payload of `manifest` from its local base payload and the delta
// into out_path. "base does not match" (base sha256 differs from delta.baseSha256) is said
// before anything is written -- the caller then falls back to the full payload; the result's
// size and sha256 are checked against the manifest.
Expected<FileDigest> apply_bundle_delta(const Manifest& manifest, const std::string& base_path,
                                        const std::string& delta_path, const std::string& out_path);

}  // namespace flotilla::ota
