// ArtifactStore: the OTA artifacts the hub serves to agents (docs/hub.md "Artifacts").
//
// An artifact is a signed bundle (ota/manifest.hpp) kept under <root>/<name>/<version>/:
// manifest.json (the exact text that was signed), manifest.sig (64 raw bytes), payload and, for
// a delta bundle, delta. Every file is written temp -> fsync -> rename, so a reader (or a hub
// restarted mid-upload) sees a whole verified file or none. Artifacts are immutable: the same
// manifest may be uploaded again (unchanged), a different one under the same name and version is
// a conflict. A payload or delta upload is streamed to a temp file while its size and sha256 are
// checked against the manifest; a mismatch keeps nothing.
//
// When given a public key (the hub's --ota-public-key) the store also verifies each manifest's
// signature on upload; without one it stores the signature as given (agents verify against
// their pinned key in any case).
//
// Thread-safety: every method may be called from any thread; manifest writes and removals are
// serialised, file uploads run in parallel (each into its own temp file).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/expected.hpp"
#include "ota/manifest.hpp"

namespace flotilla::hub {

struct Artifact {
  ota::Manifest manifest;
  std::string manifest_text;  // exactly as signed
  std::string signature;      // 64 raw bytes
  bool payload = false;       // the payload is uploaded: the artifact is ready
  bool delta = false;         // the delta is uploaded (only for a delta bundle)
};

// What a change did. Only kOk and kCreated changed (or confirmed) something.
struct ArtifactOutcome {
  enum class Code { kOk, kCreated, kNotFound, kInvalid, kConflict, kFailed };
  Code code = Code::kOk;
  std::string message;  // why, for the errors
};

// The JSON view: name, version, target, sha256, size, delta {...} or null, ready, deltaReady.
nlohmann::json artifact_json(const Artifact& a);

class ArtifactStore {
 public:
  // Reads one chunk of an upload into `sink`; returns false when the body is cut.
  using Sink = std::function<bool(const char* data, size_t size)>;
  using Body = std::function<bool(const Sink& sink)>;

  // `root` is created when missing; `public_key_pem` empty: signatures are not verified here.
  static Expected<std::unique_ptr<ArtifactStore>> open(const std::string& root,
                                                       std::string public_key_pem = "");

  // Stores a manifest and its signature (base64 of 64 bytes). kCreated, kOk when the same
  // manifest is there already, kInvalid (bad manifest, name or version unlike the path's, bad
  // signature), kConflict (another manifest under this name and version).
  ArtifactOutcome put_manifest(const std::string& name, const std::string& version,
                               const std::string& manifest_text,
                               const std::string& signature_base64);
  // Streams the payload (`delta` false) or the delta file from `body`, checking its size and
  // sha256 against the manifest. kNotFound: no manifest yet; kInvalid: mismatch (both digests
  // in the message) or a delta for a bundle without one.
  ArtifactOutcome put_file(const std::string& name, const std::string& version, bool delta,
                           const Body& body);
  std::optional<Artifact> get(const std::string& name, const std::string& version);
  // Every artifact, by name then version.
  std::vector<Artifact> list();
  // Where the payload or delta of an artifact lives (it may not exist).
  std::string file_path(const std::string& name, const std::string& version, bool delta) const;
  // Removes an artifact and its files. kNotFound when there is none.
  ArtifactOutcome remove(const std::string& name, const std::string& version);

 private:
  ArtifactStore(std::string root, std::string key) : root_(std::move(root)), key_(std::move(key)) {}
  std::string dir(const std::string& name, const std::string& version) const;

  std::string root_;
  std::string key_;
  std::mutex mu_;  // manifest writes and removals
};

}  // namespace flotilla::hub
