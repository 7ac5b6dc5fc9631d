#include "test/support/oci_registry.hpp"

#include <sys/stat.h>

#include <atomic>

#include "common/fs.hpp"
#include "test/support/peers.hpp"

namespace flotilla::testing {
namespace {

// "" or what failed.
std::string run_tool(std::vector<std::string> argv) {
  std::string path = find_executable(argv[0]);
  if (path.empty()) return argv[0] + " is not installed";
  argv[0] = path;
  RunResult r = run_command(argv, std::chrono::seconds(60));
  if (r.exit_code == 0) return "";
  std::string cmd;
  for (const auto& a : argv) cmd += a + " ";
  return cmd + "exited " + std::to_string(r.exit_code) + ": " + r.err + r.out;
}

}  // namespace

std::string oci_tools_missing() {
  struct stat st {};
  if (::stat("/usr/bin/docker-registry", &st) != 0) return "docker-registry is not installed";
  if (::stat("/bin/busybox", &st) != 0) return "busybox-static is not installed";
  for (const char* tool : {"umoci", "skopeo"}) {
    if (find_executable(tool).empty()) return std::string(tool) + " is not installed";
  }
  return "";
}

Registry::Registry(std::string dir, int port, std::string storage, std::string htpasswd)
    : dir_(std::move(dir)),
      port_(port),
      storage_(storage.empty() ? dir_ + "/storage" : std::move(storage)),
      htpasswd_(std::move(htpasswd)) {}

bool Registry::start() {
  const std::string name = "registry-" + std::to_string(port_);
  std::string config = dir_ + "/" + name + ".yml";
  (void)fs::make_dirs(storage());
  std::string yaml =
      "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n"
      "    rootdirectory: " +
      storage() +
      "\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:" + std::to_string(port_) + "\n";
  if (!htpasswd_.empty()) {
    yaml += "auth:\n  htpasswd:\n    realm: test\n    path: " + htpasswd_ + "\n";
  }
  if (!fs::write_atomic(config, yaml)) return false;
  proc_.start({"/usr/bin/docker-registry", "serve", config}, dir_ + "/" + name + ".log");
  return wait_for_port(port_, std::chrono::seconds(10));
}

void Registry::stop() {
  if (proc_.pid() > 0) proc_.stop(std::chrono::seconds(3));
}

std::string Registry::blob_path(const std::string& digest) const {
  std::string hex = digest.substr(digest.find(':') + 1);
  return storage() + "/docker/registry/v2/blobs/sha256/" + hex.substr(0, 2) + "/" + hex + "/data";
}

std::string push_test_image(const std::string& work_dir, const TestImage& image,
                            const std::string& registry_host, const std::string& repository,
                            const std::string& tag, std::string* digest) {
  static std::atomic<int> counter{0};
  const std::string base = work_dir + "/image-" + std::to_string(++counter);
  const std::string rootfs = base + "/rootfs";
  const std::string layout = base + "/layout";
  for (const char* dir : {"/bin", "/tmp", "/etc"}) {
    if (auto st = fs::make_dirs(rootfs + dir); !st) return st.error().message();
  }
  ::chmod((rootfs + "/tmp").c_str(), 01777);
  if (auto err = run_tool({"cp", "/bin/busybox", rootfs + "/bin/busybox"}); !err.empty()) {
    return err;
  }
  for (const char* link : {"sh", "echo", "sleep", "cat", "tail", "head", "ls", "id", "pwd", "env",
                           "nc", "httpd", "touch", "test", "true", "false", "dd", "tr"}) {
    if (::symlink("busybox", (rootfs + "/bin/" + link).c_str()) != 0) return "symlink failed";
  }
  std::string passwd = "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534::/:/bin/sh\n";
  if (!fs::write_atomic(rootfs + "/etc/passwd", passwd)) return "write /etc/passwd failed";
  for (const auto& [path, content] : image.files) {
    std::string full = rootfs + path;
    (void)fs::make_dirs(full.substr(0, full.rfind('/')));
    if (!fs::write_atomic(full, content)) return "write " + path + " failed";
    ::chmod(full.c_str(), 0755);
  }
  std::vector<std::vector<std::string>> cmds = {
      {"umoci", "init", "--layout", layout},
      {"umoci", "new", "--image", layout + ":base"},
      {"umoci", "insert", "--image", layout + ":base", "--tag", "fs", rootfs, "/"},
  };
  std::vector<std::string> config = {"umoci", "config", "--image", layout + ":fs", "--tag", "img"};
  for (const auto& e : image.entrypoint) config.insert(config.end(), {"--config.entrypoint", e});
  for (const auto& c : image.cmd) config.insert(config.end(), {"--config.cmd", c});
  for (const auto& e : image.env) config.insert(config.end(), {"--config.env", e});
  if (!image.workdir.empty()) config.insert(config.end(), {"--config.workingdir", image.workdir});
  cmds.push_back(config);
  cmds.push_back({"skopeo", "copy", "--quiet", "--dest-tls-verify=false", "oci:" + layout + ":img",
                  "docker://" + registry_host + "/" + repository + ":" + tag});
  if (digest != nullptr) {
    cmds.push_back({"skopeo", "inspect", "--tls-verify=false", "--format", "{{.Digest}}",
                    "docker://" + registry_host + "/" + repository + ":" + tag});
  }
  for (const auto& c : cmds) {
    if (&c == &cmds.back() && digest != nullptr) {
      std::vector<std::string> argv = c;
      argv[0] = find_executable("skopeo");
      RunResult r = run_command(argv, std::chrono::seconds(60));
      if (r.exit_code != 0) return "skopeo inspect failed: " + r.err;
      *digest = r.out.substr(0, r.out.find('\n'));
      continue;
    }
    if (auto err = run_tool(c); !err.empty()) return err;
  }
  return "";
}

}  // namespace flotilla::testing
