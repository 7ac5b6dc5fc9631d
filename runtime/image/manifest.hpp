// OCI / Docker v2 manifests, indexes and image configs: parsed from untrusted registry bytes
// with a clear Error on anything malformed, and the node's platform picked from an index.
//
// Thread-safety: value types and pure functions.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/expected.hpp"
#include "runtime/image/image_source.hpp"

namespace flotilla::runtime::image {

inline constexpr const char* kOciManifest = "application/vnd.oci.image.manifest.v1+json";
inline constexpr const char* kOciIndex = "application/vnd.oci.image.index.v1+json";
inline constexpr const char* kDockerManifest =
    "application/vnd.docker.distribution.manifest.v2+json";
inline constexpr const char* kDockerManifestList =
    "application/vnd.docker.distribution.manifest.list.v2+json";
// The Accept header value for manifest requests: every kind above.
std::string manifest_accept_header();

struct Platform {
  std::string os;            // "linux"
  std::string architecture;  // "amd64", "arm64", "arm"
  std::string variant;       // "v7"; may be empty
};

// The platform this binary runs on (GOARCH names: x86_64 -> amd64, aarch64 -> arm64).
Platform host_platform();

struct Descriptor {
  std::string media_type;
  std::string digest;  // valid sha256:<hex>
  uint64_t size = 0;
  Platform platform;  // index entries only
};

struct ImageManifest {
  std::string media_type;
  Descriptor config;
  std::vector<Descriptor> layers;
};

struct ImageIndex {
  std::string media_type;
  std::vector<Descriptor> manifests;
};

// A manifest document is either an image manifest or an index (Docker: manifest list).
struct ManifestDocument {
  bool is_index = false;
  ImageManifest manifest;
  ImageIndex index;
};

// `content_type` is the response's Content-Type; the document's own mediaType wins when present.
Expected<ManifestDocument> parse_manifest_document(const std::string& body,
                                                   const std::string& content_type);

// The entry for `want` (os and architecture equal; variant equal when both name one, and for
// arm a missing variant in the index is taken as matching). An Error lists what the index has.
Expected<Descriptor> select_platform(const ImageIndex& index, const Platform& want);

// The parts of an image config JSON a launch needs.
Expected<ImageConfig> parse_image_config(const std::string& body);

// Which layer compression a media type names (tar, gzip, zstd); unknown media types are errors.
Status check_layer_media_type(const std::string& media_type);

}  // namespace flotilla::runtime::image
