// A real docker-registry (Debian's registry v2) on 127.0.0.1, shared by the tests of this
// executable, with test images built by umoci from a busybox rootfs and pushed by skopeo:
//   app:1      OCI manifest (entrypoint /bin/sh, env, workdir, user), amd64
//   app:arm    the same layers, config says arm64
//   app:multi  OCI index listing app:arm first, then app:1
//   app:v2s2   app:1 pushed as a Docker v2 schema 2 manifest
//   other:1    app:1 plus one more layer (for GC)
//   bad:1      app:1 plus a layer whose bytes are then corrupted in the registry's storage
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "test/support/oci_registry.hpp"
#include "test/support/process.hpp"
#include "test/support/temp_dir.hpp"

namespace flotilla::runtime::image::testing {

using Registry = flotilla::testing::Registry;

struct ManifestInfo {
  std::string body;
  std::string digest;  // sha256:...
  std::string media_type;
};

struct SharedRegistry {
  flotilla::testing::TempDir dir;
  std::unique_ptr<Registry> registry;
  std::string storage;  // the registry's storage root
  std::string layout;   // the umoci OCI layout the images were built in
  std::string error;    // why the fixture is unusable (tests skip with it)
  ManifestInfo app1, arm, multi;
  std::vector<std::string> app1_blobs;  // config + layers of app:1
  uint64_t app1_blob_bytes = 0;
  std::string host() const { return registry->host(); }
};

// Built on first use (about a second), stopped at exit.
SharedRegistry& shared_registry();

ManifestInfo get_manifest(int port, const std::string& repo, const std::string& ref);
// Returns "" or why it failed.
std::string run(const std::vector<std::string>& argv);

}  // namespace flotilla::runtime::image::testing
