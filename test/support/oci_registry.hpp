// Real OCI peers for tests: Debian's docker-registry (registry v2) on 127.0.0.1, and test images
// built from busybox-static with umoci and pushed with skopeo.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "test/support/process.hpp"

namespace flotilla::testing {

// Why these tests cannot run here (a tool is not installed), or "" when they can.
std::string oci_tools_missing();

// One docker-registry process: config and log in `dir`, content in `storage` (default
// <dir>/storage; several registries may serve one storage folder), basic auth when `htpasswd`
// names a bcrypt htpasswd file. stop() and start() again keep port and content.
class Registry {
 public:
  Registry(std::string dir, int port, std::string storage = "", std::string htpasswd = "");
  ~Registry() { stop(); }
  bool start();  // false (with the log readable) if it did not come up
  void stop();
  int port() const { return port_; }
  std::string host() const { return "127.0.0.1:" + std::to_string(port_); }
  const std::string& storage() const { return storage_; }
  // Path of a blob's bytes in the registry's storage folder.
  std::string blob_path(const std::string& digest) const;
  std::string log() const { return proc_.log(); }

 private:
  std::string dir_;
  int port_;
  std::string storage_;
  std::string htpasswd_;
  ChildProcess proc_;
};

// A busybox image: /bin/busybox with sh, echo, sleep, cat, tail, head, ls, id, pwd, env, nc,
// httpd links, plus `files` (path in the image -> content).
struct TestImage {
  std::vector<std::string> entrypoint;
  std::vector<std::string> cmd;
  std::vector<std::string> env;  // KEY=value
  std::string workdir;
  std::map<std::string, std::string> files;
};

// Builds `image` in an OCI layout under `work_dir` and pushes it to `registry` as
// `repository:tag`; returns "" or what failed. `digest` (if given) receives the manifest digest.
std::string push_test_image(const std::string& work_dir, const TestImage& image,
                            const std::string& registry_host, const std::string& repository,
                            const std::string& tag, std::string* digest = nullptr);

}  // namespace flotilla::testing
