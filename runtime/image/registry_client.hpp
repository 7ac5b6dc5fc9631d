// RegistryClient: the OCI distribution API (GET /v2/<repo>/manifests/<ref>, GET blobs) over
// libcurl, with bearer-token and basic auth. Manifests are verified against the digest they were
// asked for; blobs go through fetch_to_file (verified, resumable).
//
// Ownership: holds a RegistryConfig copy and a token cache.
// Thread-safety: every method may be called from any thread (the token cache is locked).
#pragma once

#include <map>
#include <mutex>
#include <set>
#include <string>

#include "common/expected.hpp"
#include "runtime/image/http_fetch.hpp"
#include "runtime/image/reference.hpp"

namespace flotilla::runtime::image {

struct RegistryCredentials {
  std::string username;
  std::string password;
};

struct RegistryConfig {
  // Registries (host[:port], as in references) reached over plain http; all others use https.
  std::set<std::string> insecure;
  // Credentials per registry (host[:port]): used for basic auth and to obtain bearer tokens.
  std::map<std::string, RegistryCredentials> credentials;
  std::string ca_file;  // extra CA bundle for https registries; empty: the system's
};

struct ManifestBytes {
  std::string body;
  std::string media_type;  // Content-Type of the response
  std::string digest;      // sha256:<hex> of body
};

// A failure and whether trying again later may help (network down: yes; 404, bad digest: no).
struct PullError {
  Error error;
  bool retryable = false;
};

class RegistryClient {
 public:
  explicit RegistryClient(RegistryConfig config) : config_(std::move(config)) {}

  // The manifest (or index) `ref` names; `manifest_ref` is a tag or digest. When it is a digest
  // the body must hash to it.
  Expected<ManifestBytes> get_manifest(const Reference& ref, const std::string& manifest_ref,
                                       PullError* failure = nullptr,
                                       const std::atomic<bool>* cancel = nullptr);

  // Downloads blob `digest` of ref's repository into `dest` (resuming `dest`.partial).
  FetchOutcome fetch_blob(const Reference& ref, const std::string& digest, uint64_t size,
                          const std::string& dest, const std::atomic<bool>* cancel = nullptr);

  std::string base_url(const Reference& ref) const;

 private:
  // Handles a 401 challenge: fetches a bearer token (or arms basic auth) for `ref`'s registry.
  // Returns the Authorization header to retry with, or an Error.
  Expected<std::string> answer_challenge(const Reference& ref, const std::string& challenge);
  std::string cached_auth(const Reference& ref);

  RegistryConfig config_;
  std::mutex mu_;
  std::map<std::string, std::string> auth_header_;  // registry/repository -> Authorization
};

}  // namespace flotilla::runtime::image
