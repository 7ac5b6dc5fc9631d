// ImageSource: where the container driver gets root filesystems from. The OCI image store
// (image_store.hpp) implements it over a registry; tests implement it over a folder.
//
// prepare() never blocks: it starts a pull in the background and reports on it; failures are
// retried with backoff by the source. rootfs() answers only for a prepared image.
//
// Thread-safety: every method may be called from any thread.
#pragma once

#include <map>
#include <set>
#include <string>
#include <vector>

#include "common/expected.hpp"
#include "runtime/driver.hpp"

namespace flotilla::runtime::image {

// The parts of an OCI image config (config.Config) a container launch uses.
struct ImageConfig {
  std::vector<std::string> entrypoint;
  std::vector<std::string> cmd;
  std::vector<std::string> env;  // "KEY=value"
  std::string workdir;
  std::string user;
};

struct UnpackedImage {
  std::string reference;  // as asked for
  std::string digest;     // sha256:... of the manifest it was resolved to
  std::string rootfs;     // absolute path of the unpacked root filesystem: read-only, shared
  ImageConfig config;
};

class ImageSource {
 public:
  virtual ~ImageSource() = default;
  // kReady once the image is pulled and unpacked.
  virtual Preparation prepare(const std::string& reference) = 0;
  // The unpacked image of a prepared reference; an Error if it is not (or no longer) there.
  virtual Expected<UnpackedImage> unpacked(const std::string& reference) = 0;
  // The references instances use now: garbage collection never removes these.
  virtual void set_in_use(const std::set<std::string>& references) = 0;
};

}  // namespace flotilla::runtime::image
