// fuzz_ota_manifest: ota::parse_manifest (OTA bundle manifests, ota/manifest.hpp) on arbitrary
// bytes -- the text an agent receives and verifies before installing anything.
//
// Invariants: nothing crashes or throws; a rejection has a reason in the "Failed to parse
// manifest: ..." form; accepted text is within kMaxManifestBytes; an accepted manifest's canonical
// text (manifest_json) parses back to an equal manifest and is a fixed point, and stays within
// the size limit, so a hub or builder can always re-serialise what it accepted.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "ota/manifest.hpp"
#include "test/fuzz/fuzz_check.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace flotilla::ota;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto parsed = parse_manifest(text);
  if (!parsed) {
    FUZZ_CHECK(parsed.error().message().rfind("Failed to parse manifest: ", 0) == 0,
               "rejection without the usual form: " + parsed.error().message());
    return 0;
  }
  FUZZ_CHECK(text.size() <= kMaxManifestBytes, "accepted oversized text");
  const std::string canonical = manifest_json(*parsed);
  FUZZ_CHECK(canonical.size() <= kMaxManifestBytes, "canonical text over the limit");
  auto again = parse_manifest(canonical);
  FUZZ_CHECK(again.ok(), "canonical text does not parse: " + canonical + ": " +
                             (again ? "" : again.error().message()));
  FUZZ_CHECK(*again == *parsed, "canonical text parses to another manifest: " + canonical);
  FUZZ_CHECK(manifest_json(*again) == canonical, "canonical text is no fixed point: " + canonical);
  return 0;
}
