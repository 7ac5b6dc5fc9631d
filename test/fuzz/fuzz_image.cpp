// fuzz_image: what a registry (or a manifest author) hands the image puller, on arbitrary bytes:
// image references, manifest documents (OCI and Docker manifests and indexes) with platform
// selection, and image configs.
//
// The first input byte picks the decoder; the rest is its input. Invariants: nothing throws or
// crashes; a rejection has a reason; an accepted reference re-parses from its canonical text to
// the same value; an accepted manifest names only valid sha256 digests; select_platform returns
// an entry of the index that has the asked os and architecture.
#include <cstddef>
#include <cstdint>
#include <string>

#include "runtime/image/manifest.hpp"
#include "runtime/image/reference.hpp"
#include "test/fuzz/fuzz_check.hpp"

namespace flotilla::fuzz {
namespace {

using namespace flotilla::runtime::image;

void check_reference(const std::string& text) {
  auto ref = parse_reference(text);
  if (!ref) {
    FUZZ_CHECK(!ref.error().message().empty(), "parse_reference rejected without a reason");
    return;
  }
  FUZZ_CHECK(!ref->registry.empty() && !ref->repository.empty(), "accepted an empty name");
  FUZZ_CHECK(!ref->tag.empty() || !ref->digest.empty(), "accepted no tag and no digest");
  FUZZ_CHECK(ref->digest.empty() || valid_digest(ref->digest), "accepted a bad digest");
  auto again = parse_reference(ref->str());
  FUZZ_CHECK(again.ok(), "canonical text '" + ref->str() + "' does not parse");
  FUZZ_CHECK(again->str() == ref->str() && again->registry == ref->registry &&
                 again->repository == ref->repository && again->tag == ref->tag &&
                 again->digest == ref->digest,
             "'" + ref->str() + "' re-parses to another reference");
}

void check_manifest(const std::string& body, const std::string& content_type) {
  auto doc = parse_manifest_document(body, content_type);
  if (!doc) {
    FUZZ_CHECK(!doc.error().message().empty(), "manifest rejected without a reason");
    return;
  }
  if (!doc->is_index) {
    FUZZ_CHECK(valid_digest(doc->manifest.config.digest), "config digest not validated");
    for (const auto& layer : doc->manifest.layers) {
      FUZZ_CHECK(valid_digest(layer.digest), "layer digest not validated");
    }
    return;
  }
  for (const auto& m : doc->index.manifests) {
    FUZZ_CHECK(valid_digest(m.digest), "index entry digest not validated");
  }
  for (const Platform& want : {Platform{"linux", "amd64", ""}, Platform{"linux", "arm", "v7"},
                               Platform{"linux", "arm64", "v8"}}) {
    auto picked = select_platform(doc->index, want);
    if (!picked) {
      FUZZ_CHECK(!picked.error().message().empty(), "select_platform failed without a reason");
      continue;
    }
    FUZZ_CHECK(
        picked->platform.os == want.os && picked->platform.architecture == want.architecture,
        "select_platform picked " + picked->platform.architecture + " for " + want.architecture);
  }
}

void check_config(const std::string& body) {
  auto config = parse_image_config(body);
  if (!config) FUZZ_CHECK(!config.error().message().empty(), "config rejected without a reason");
}

}  // namespace
}  // namespace flotilla::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace flotilla::fuzz;
  if (size == 0) return 0;
  const std::string input(reinterpret_cast<const char*>(data) + 1, size - 1);
  static const char* kTypes[] = {flotilla::runtime::image::kOciManifest,
                                 flotilla::runtime::image::kOciIndex,
                                 flotilla::runtime::image::kDockerManifest,
                                 flotilla::runtime::image::kDockerManifestList,
                                 "application/json",
                                 ""};
  switch (data[0] % 8) {
    case 0:
      check_reference(input);
      break;
    case 1:
      check_config(input);
      break;
    default:
      check_manifest(input, kTypes[data[0] % 6]);
      break;
  }
  return 0;
}
