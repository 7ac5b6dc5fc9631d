#include "test/runtime/image/registry_fixture.hpp"

#include <httplib.h>
#include <sys/stat.h>

#include <array>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>

#include "test/runtime/image/tar_builder.hpp"
#include "test/support/peers.hpp"

namespace flotilla::runtime::image::testing {

std::string run(const std::vector<std::string>& argv_in) {
  auto argv = argv_in;
  if (argv[0][0] != '/') {
    std::string path = flotilla::testing::find_executable(argv[0]);
    if (path.empty()) return argv[0] + " is not installed";
    argv[0] = path;
  }
  auto r = flotilla::testing::run_command(argv, std::chrono::seconds(60));
  if (r.exit_code == 0) return "";
  std::string cmd;
  for (const auto& a : argv) cmd += a + " ";
  return cmd + "exited " + std::to_string(r.exit_code) + ": " + r.err + r.out;
}

ManifestInfo get_manifest(int port, const std::string& repo, const std::string& ref) {
  httplib::Client cli("127.0.0.1", port);
  httplib::Headers h = {{"Accept",
                         "application/vnd.oci.image.manifest.v1+json, "
                         "application/vnd.oci.image.index.v1+json, "
                         "application/vnd.docker.distribution.manifest.v2+json"}};
  auto res = cli.Get(("/v2/" + repo + "/manifests/" + ref).c_str(), h);
  ManifestInfo m;
  if (!res || res->status != 200) return m;
  m.body = res->body;
  m.digest = "sha256:" + sha256_hex(m.body);
  m.media_type = res->get_header_value("Content-Type");
  return m;
}

namespace {

std::string build(SharedRegistry& s) {
  for (const char* tool : {"umoci", "skopeo"}) {
    if (flotilla::testing::find_executable(tool).empty()) {
      return std::string(tool) + " is not installed";
    }
  }
  struct stat st {};
  if (::stat("/usr/bin/docker-registry", &st) != 0) return "docker-registry is not installed";
  if (::stat("/bin/busybox", &st) != 0) return "/bin/busybox (busybox-static) is not installed";
  s.storage = s.dir / "storage";
  s.layout = s.dir / "layout";
  s.registry = std::make_unique<Registry>(s.dir.path(), flotilla::testing::free_port(), s.storage);
  if (!s.registry->start()) return "docker-registry did not start: " + s.registry->log();

  std::string rfs = s.dir / "rfs";
  std::string extra = s.dir / "extra";
  std::string extra2 = s.dir / "extra2";
  ::mkdir(rfs.c_str(), 0755);
  ::mkdir((rfs + "/bin").c_str(), 0755);
  ::mkdir((rfs + "/tmp").c_str(), 01777);
  ::mkdir(extra.c_str(), 0755);
  ::mkdir(extra2.c_str(), 0755);
  // Incompressible payloads: umoci 0.4.7 writes a short tar inside a valid gzip stream for very
  // compressible files (seen with 300 kB of one letter), which the unpacker rightly rejects.
  std::mt19937 rng(42);
  auto noise = [&](size_t n) {
    std::string out(n, '\0');
    for (auto& c : out) c = static_cast<char>(rng());
    return out;
  };
  write_all(extra + "/payload", noise(200000));
  write_all(extra2 + "/payload", noise(300000));
  const std::string L = s.layout;
  std::vector<std::vector<std::string>> cmds = {
      {"cp", "/bin/busybox", rfs + "/bin/busybox"},
      {"ln", "-s", "busybox", rfs + "/bin/sh"},
      {"ln", "-s", "busybox", rfs + "/bin/echo"},
      {"ln", "-s", "busybox", rfs + "/bin/sleep"},
      {"ln", "-s", "busybox", rfs + "/bin/cat"},
      {"umoci", "init", "--layout", L},
      {"umoci", "new", "--image", L + ":base"},
      {"umoci", "insert", "--image", L + ":base", "--tag", "bb", rfs, "/"},
      {"umoci", "config", "--image", L + ":bb", "--tag", "app1", "--config.entrypoint", "/bin/sh",
       "--config.cmd", "-c", "--config.cmd", "echo hello", "--config.env", "GREETING=hi",
       "--config.workingdir", "/tmp", "--config.user", "1000:1000"},
      {"umoci", "config", "--image", L + ":app1", "--tag", "arm", "--architecture", "arm64"},
      {"umoci", "insert", "--image", L + ":app1", "--tag", "bad", extra, "/extra"},
      {"umoci", "insert", "--image", L + ":app1", "--tag", "other", extra2, "/extra2"},
  };
  const std::string reg = "docker://" + s.host() + "/";
  for (const auto& [tag, dest, fmt] :
       std::vector<std::array<std::string, 3>>{{"app1", "app:1", ""},
                                               {"arm", "app:arm", ""},
                                               {"app1", "app:v2s2", "v2s2"},
                                               {"bad", "bad:1", ""},
                                               {"other", "other:1", ""}}) {
    std::vector<std::string> c = {"skopeo", "copy", "--quiet", "--dest-tls-verify=false"};
    if (!fmt.empty()) c.insert(c.end(), {"--format", fmt});
    c.push_back("oci:" + L + ":" + tag);
    c.push_back(reg + dest);
    cmds.push_back(c);
  }
  for (const auto& c : cmds) {
    if (auto err = run(c); !err.empty()) return err;
  }
  int port = s.registry->port();
  s.app1 = get_manifest(port, "app", "1");
  s.arm = get_manifest(port, "app", "arm");
  if (s.app1.body.empty() || s.arm.body.empty()) return "pushed manifests are not in the registry";
  auto m = nlohmann::json::parse(s.app1.body);
  s.app1_blobs.push_back(m["config"]["digest"]);
  s.app1_blob_bytes += m["config"]["size"].get<uint64_t>();
  for (const auto& l : m["layers"]) {
    s.app1_blobs.push_back(l["digest"]);
    s.app1_blob_bytes += l["size"].get<uint64_t>();
  }
  // An index with the arm64 entry first: picking amd64 must be a choice, not luck.
  nlohmann::json index = {
      {"schemaVersion", 2},
      {"mediaType", "application/vnd.oci.image.index.v1+json"},
      {"manifests",
       {{{"mediaType", "application/vnd.oci.image.manifest.v1+json"},
         {"digest", s.arm.digest},
         {"size", s.arm.body.size()},
         {"platform", {{"os", "linux"}, {"architecture", "arm64"}, {"variant", "v8"}}}},
        {{"mediaType", "application/vnd.oci.image.manifest.v1+json"},
         {"digest", s.app1.digest},
         {"size", s.app1.body.size()},
         {"platform", {{"os", "linux"}, {"architecture", "amd64"}}}}}}};
  httplib::Client cli("127.0.0.1", port);
  auto res =
      cli.Put("/v2/app/manifests/multi", index.dump(), "application/vnd.oci.image.index.v1+json");
  if (!res || res->status != 201) {
    return "PUT of the index failed: " +
           (res ? std::to_string(res->status) + " " + res->body : std::string("no response"));
  }
  s.multi = get_manifest(port, "app", "multi");
  // Corrupt bad:1's own layer (the last one) in place, same length.
  auto bad = get_manifest(port, "bad", "1");
  auto bj = nlohmann::json::parse(bad.body);
  std::string layer = bj["layers"].back()["digest"];
  std::string path = s.registry->blob_path(layer);
  std::string bytes = read_all(path);
  if (bytes.size() < 100) return "bad:1's layer is not in the registry storage";
  for (size_t i = bytes.size() / 2; i < bytes.size() / 2 + 16; ++i) bytes[i] ^= 0x5a;
  write_all(path, bytes);
  return "";
}

}  // namespace

SharedRegistry& shared_registry() {
  // Destroyed at exit, which stops the registry and removes its folder.
  static SharedRegistry s;
  static const bool built = [] {
    s.error = build(s);
    return true;
  }();
  (void)built;
  return s;
}

}  // namespace flotilla::runtime::image::testing
