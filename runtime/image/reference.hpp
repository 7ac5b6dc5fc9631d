// Image references: `[registry[:port]/]repository[:tag][@sha256:<hex>]`, parsed and validated
// strictly (references come from manifests users write). Docker Hub defaults apply when no
// registry is named: `busybox` is `docker.io/library/busybox:latest`.
//
// Thread-safety: value types and pure functions.
#pragma once

#include <string>

#include "common/expected.hpp"

namespace flotilla::runtime::image {

struct Reference {
  std::string registry;    // "127.0.0.1:5000", "docker.io"
  std::string repository;  // "team/app", "library/busybox"
  std::string tag;         // "1.0"; empty when pulled by digest only
  std::string digest;      // "sha256:<64 hex>" or empty

  // What the manifest endpoint is asked for: the digest when there is one, else the tag.
  std::string manifest_ref() const { return digest.empty() ? tag : digest; }
  std::string str() const;  // canonical text
};

Expected<Reference> parse_reference(const std::string& text);

// "sha256:<64 lowercase hex>": the only digest form accepted.
bool valid_digest(const std::string& digest);
// The hex part of a valid digest.
inline std::string digest_hex(const std::string& digest) { return digest.substr(7); }

}  // namespace flotilla::runtime::image
