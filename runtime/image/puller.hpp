// Puller: one image pull from reference to unpacked rootfs. Resolves the reference to a manifest
// (picking the node's platform from an index), brings the config and layer blobs into the blob
// store, and unpacks the layers into `<root>/rootfs/<manifest hex>/rootfs` (with config.json
// and blobs.json next to it) through a temp folder renamed at the end: a crash never leaves a
// half rootfs under the final name.
//
// Ownership: borrows the client and blob store, which must outlive it.
// Thread-safety: pull() may run concurrently for different or equal references (equal blobs
// are downloaded once by the blob store; the final rename settles equal rootfs races).
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "common/expected.hpp"
#include "runtime/image/blob_store.hpp"
#include "runtime/image/image_source.hpp"
#include "runtime/image/manifest.hpp"
#include "runtime/image/registry_client.hpp"

namespace flotilla::runtime::image {

struct PullOutcome {
  bool ok = false;
  PullError failure;   // when !ok
  std::string digest;  // manifest digest (per-platform manifest)
  std::string rootfs;  // <root>/rootfs/<hex>/rootfs
  ImageConfig config;
  std::vector<std::string> blobs;  // every blob the image holds on to (index, manifest, ...)
  uint64_t bytes_fetched = 0;      // blob bytes this pull downloaded
  uint64_t rootfs_bytes = 0;       // disk use of the unpacked rootfs
};

// Where the unpacked image for manifest `digest` lives under `root`.
std::string image_dir(const std::string& root, const std::string& digest);

// Reads an unpacked image's config.json; an Error if the image is not (completely) there.
Expected<ImageConfig> read_unpacked_config(const std::string& root, const std::string& digest);

class Puller {
 public:
  Puller(std::string root, RegistryClient& client, BlobStore& blobs, Platform platform)
      : root_(std::move(root)), client_(client), blobs_(blobs), platform_(std::move(platform)) {}

  // progress(done, total) after each blob.
  using Progress = std::function<void(int done, int total)>;
  PullOutcome pull(const std::string& reference, const Progress& progress = {},
                   const std::atomic<bool>* cancel = nullptr);

 private:
  std::string root_;
  RegistryClient& client_;
  BlobStore& blobs_;
  Platform platform_;
};

}  // namespace flotilla::runtime::image
