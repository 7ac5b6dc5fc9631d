// Registry behaviour a stock docker-registry cannot be made to show, from a small cpp-httplib
// registry: bearer-token auth, a blob served truncated, a transfer cut mid-blob and resumed.
// Plus basic auth against the real registry with an htpasswd file.
#include <gtest/gtest.h>
#include <httplib.h>
#include <sys/stat.h>

#include <dirent.h>
#include <atomic>
#include <mutex>
#include <random>
#include <thread>

#include <nlohmann/json.hpp>

#include "runtime/image/puller.hpp"
#include "test/runtime/image/registry_fixture.hpp"
#include "test/runtime/image/tar_builder.hpp"
#include "test/support/peers.hpp"

namespace flotilla::runtime::image {
namespace {

using testing::read_all;
using testing::sha256_hex;

bool exists(const std::string& p) {
  struct stat st {};
  return ::lstat(p.c_str(), &st) == 0;
}

class FakeRegistry {
 public:
  explicit FakeRegistry(const std::string& dir) {
    std::mt19937 rng(7);
    std::string noise(2 << 20, '\0');
    for (auto& c : noise) c = static_cast<char>(rng());
    testing::TarBuilder()
        .dir("bin")
        .file("bin/hello", "#!/bin/sh\necho hello\n", 0755)
        .file("data/noise", noise)
        .write(dir + "/layer.tar.gz");
    set_layer(read_all(dir + "/layer.tar.gz"));
    server_.Get("/token", [this](const httplib::Request& req, httplib::Response& res) {
      token_requests++;
      if (req.get_header_value("Authorization") != "Basic dXNlcjpzZWNyZXQ=") {  // user:secret
        res.status = 401;
        return;
      }
      last_scope = req.get_param_value("scope");
      res.set_content(R"({"token":"tok-123"})", "application/json");
    });
    server_.Get(R"(/v2/app/manifests/(.+))",
                [this](const httplib::Request& req, httplib::Response& res) {
                  if (!authorized(req, res)) return;
                  res.set_content(manifest, "application/vnd.oci.image.manifest.v1+json");
                });
    server_.Get(
        R"(/v2/app/blobs/(.+))", [this](const httplib::Request& req, httplib::Response& res) {
          if (!authorized(req, res)) return;
          std::string digest = req.matches[1];
          std::lock_guard<std::mutex> lock(mu);
          if (digest == config_digest) {
            res.set_content(config, "application/octet-stream");
            return;
          }
          if (digest != layer_digest) {
            res.status = 404;
            return;
          }
          if (!req.ranges.empty()) range_requests++;
          if (truncate) {  // a short body that is complete by its own Content-Length
            res.set_content(layer.substr(0, layer.size() / 2), "application/octet-stream");
            return;
          }
          size_t cut = cut_after.exchange(0);
          if (cut > 0) {
            res.set_content_provider(layer.size(), "application/octet-stream",
                                     [this, cut](size_t offset, size_t, httplib::DataSink& sink) {
                                       if (offset >= cut) return false;
                                       sink.write(layer.data() + offset, cut - offset);
                                       return true;
                                     });
            return;
          }
          res.set_content(layer, "application/octet-stream");
        });
    port = server_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    while (!server_.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  // Serves `bytes` as the image's only layer (manifest and digests follow).
  void set_layer(const std::string& bytes) {
    std::lock_guard<std::mutex> lock(mu);
    layer = bytes;
    config = R"({"architecture":"amd64","os":"linux","config":{"Cmd":["/bin/hello"]},)"
             R"("rootfs":{"type":"layers","diff_ids":[]}})";
    layer_digest = "sha256:" + sha256_hex(layer);
    config_digest = "sha256:" + sha256_hex(config);
    manifest = nlohmann::json{{"schemaVersion", 2},
                              {"mediaType", "application/vnd.oci.image.manifest.v1+json"},
                              {"config",
                               {{"mediaType", "application/vnd.oci.image.config.v1+json"},
                                {"digest", config_digest},
                                {"size", config.size()}}},
                              {"layers",
                               {{{"mediaType", "application/vnd.oci.image.layer.v1.tar+gzip"},
                                 {"digest", layer_digest},
                                 {"size", layer.size()}}}}}
                   .dump();
  }
  ~FakeRegistry() {
    server_.stop();
    thread_.join();
  }
  std::string host() const { return "127.0.0.1:" + std::to_string(port); }

  std::mutex mu;
  std::string layer, config, manifest, layer_digest, config_digest, last_scope;
  std::atomic<int> token_requests{0}, range_requests{0}, unauthorized{0};
  std::atomic<bool> truncate{false};
  std::atomic<size_t> cut_after{0};
  int port = 0;

 private:
  bool authorized(const httplib::Request& req, httplib::Response& res) {
    if (req.get_header_value("Authorization") == "Bearer tok-123") return true;
    unauthorized++;
    res.status = 401;
    res.set_header("WWW-Authenticate",
                   "Bearer realm=\"http://" + host() +
                       "/token\",service=\"fake\",scope=\"repository:app:pull\"");
    return false;
  }
  httplib::Server server_;
  std::thread thread_;
};

class FakeRegistryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    RegistryConfig cfg;
    cfg.insecure = {fake_.host()};
    cfg.credentials[fake_.host()] = {"user", "secret"};
    client_ = std::make_unique<RegistryClient>(cfg);
    ASSERT_TRUE(blobs_.init());
    puller_ =
        std::make_unique<Puller>(tmp_.path(), *client_, blobs_, Platform{"linux", "amd64", ""});
  }
  flotilla::testing::TempDir tmp_;
  FakeRegistry fake_{tmp_.path()};
  BlobStore blobs_{tmp_.path()};
  std::unique_ptr<RegistryClient> client_;
  std::unique_ptr<Puller> puller_;
};

TEST_F(FakeRegistryTest, BearerTokenAuthIsObtainedOnceAndUsed) {
  auto out = puller_->pull(fake_.host() + "/app:1");
  ASSERT_TRUE(out.ok) << out.failure.error.message();
  EXPECT_EQ(fake_.token_requests.load(), 1);
  EXPECT_EQ(fake_.last_scope, "repository:app:pull");
  EXPECT_EQ(fake_.unauthorized.load(), 1);  // only the first request went without the token
  EXPECT_EQ(read_all(out.rootfs + "/bin/hello"), "#!/bin/sh\necho hello\n");
  EXPECT_EQ(out.config.cmd, (std::vector<std::string>{"/bin/hello"}));
}

TEST_F(FakeRegistryTest, WrongCredentialsSayWhy) {
  RegistryConfig cfg;
  cfg.insecure = {fake_.host()};
  cfg.credentials[fake_.host()] = {"user", "wrong"};
  RegistryClient client(cfg);
  Puller puller(tmp_.path(), client, blobs_, Platform{"linux", "amd64", ""});
  auto out = puller.pull(fake_.host() + "/app:1");
  ASSERT_FALSE(out.ok);
  EXPECT_NE(out.failure.error.message().find("token server 'http://" + fake_.host() +
                                             "/token' answered HTTP 401"),
            std::string::npos)
      << out.failure.error.message();
}

TEST_F(FakeRegistryTest, ATruncatedBlobIsRejectedAndNoRootfsAppears) {
  fake_.truncate = true;
  auto out = puller_->pull(fake_.host() + "/app:1");
  ASSERT_FALSE(out.ok);
  EXPECT_NE(out.failure.error.message().find("digest mismatch (want " + fake_.layer_digest),
            std::string::npos)
      << out.failure.error.message();
  EXPECT_FALSE(blobs_.has(fake_.layer_digest));
  EXPECT_FALSE(exists(tmp_ / ("rootfs/" + out.digest.substr(7))));
}

TEST_F(FakeRegistryTest, ABlobCutMidTransferResumesAndFetchesOnlyTheRest) {
  const size_t cut = fake_.layer.size() / 3;
  fake_.cut_after = cut;
  auto first = puller_->pull(fake_.host() + "/app:1");
  ASSERT_FALSE(first.ok);
  EXPECT_TRUE(first.failure.retryable) << first.failure.error.message();
  EXPECT_FALSE(exists(tmp_ / ("rootfs/" + first.digest.substr(7))));
  auto second = puller_->pull(fake_.host() + "/app:1");
  ASSERT_TRUE(second.ok) << second.failure.error.message();
  EXPECT_EQ(fake_.range_requests.load(), 1);
  // The config blob came whole in the first pull; the layer's first third is not fetched again.
  EXPECT_EQ(second.bytes_fetched, fake_.layer.size() - cut);
  EXPECT_EQ(read_all(second.rootfs + "/bin/hello"), "#!/bin/sh\necho hello\n");
}

TEST_F(FakeRegistryTest, AManifestThatDoesNotHashToTheDigestAskedForIsRejected) {
  // This registry answers any manifest reference with its one manifest.
  std::string other = "sha256:" + std::string(64, 'a');
  auto out = puller_->pull(fake_.host() + "/app@" + other);
  ASSERT_FALSE(out.ok);
  EXPECT_FALSE(out.failure.retryable);
  EXPECT_NE(out.failure.error.message().find("digest mismatch (want " + other +
                                             ", got sha256:" + sha256_hex(fake_.manifest) + ")"),
            std::string::npos)
      << out.failure.error.message();
}

TEST_F(FakeRegistryTest, AnEscapingLayerFailsThePullAndLeavesNoPartialRootfs) {
  std::string evil = tmp_ / "evil.tar.gz";
  ASSERT_TRUE(testing::TarBuilder().file("bin/ok", "1").file("../../escape", "pwned").write(evil));
  fake_.set_layer(read_all(evil));
  auto out = puller_->pull(fake_.host() + "/app:1");
  ASSERT_FALSE(out.ok);
  EXPECT_NE(out.failure.error.message().find("'../../escape' escapes the root (..)"),
            std::string::npos)
      << out.failure.error.message();
  // Neither the final rootfs nor the temp folder it was being unpacked in remains.
  std::vector<std::string> left;
  if (DIR* d = opendir((tmp_ / "rootfs").c_str())) {
    while (auto* e = readdir(d)) {
      if (e->d_name[0] != '.' || std::string(e->d_name).size() > 2) left.push_back(e->d_name);
    }
    closedir(d);
  }
  EXPECT_TRUE(left.empty()) << left.front();
  EXPECT_FALSE(exists(tmp_ / "escape"));
}

// Basic auth against the real registry, whose htpasswd auth needs a bcrypt hash (python3's
// crypt module makes one).
TEST(RealRegistryAuthTest, BasicAuthFromTheConfig) {
  auto& shared = testing::shared_registry();
  if (!shared.error.empty()) GTEST_SKIP() << "no test registry: " << shared.error;
  flotilla::testing::TempDir tmp;
  auto hash = flotilla::testing::run_command({flotilla::testing::find_executable("python3"), "-W",
                                              "ignore", "-c",
                                              "import crypt; print(crypt.crypt('s3cret', "
                                              "crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=16)))"});
  if (hash.exit_code != 0 || hash.out.rfind("$2", 0) != 0) {
    GTEST_SKIP() << "cannot make a bcrypt htpasswd entry here: " << hash.err;
  }
  testing::write_all(tmp / "htpasswd", "alice:" + hash.out);
  int port = flotilla::testing::free_port();
  testing::Registry registry(tmp.path(), port, shared.storage, tmp / "htpasswd");
  ASSERT_TRUE(registry.start()) << registry.log();
  const std::string host = registry.host();
  BlobStore blobs(tmp / "store");
  ASSERT_TRUE(blobs.init());

  RegistryConfig anonymous;
  anonymous.insecure = {host};
  RegistryClient anon_client(anonymous);
  Puller anon(tmp / "store", anon_client, blobs, Platform{"linux", "amd64", ""});
  auto denied = anon.pull(host + "/app:1");
  ASSERT_FALSE(denied.ok);
  EXPECT_NE(denied.failure.error.message().find("none are configured for '" + host + "'"),
            std::string::npos)
      << denied.failure.error.message();

  RegistryConfig with_creds = anonymous;
  with_creds.credentials[host] = {"alice", "s3cret"};
  RegistryClient client(with_creds);
  Puller puller(tmp / "store", client, blobs, Platform{"linux", "amd64", ""});
  auto out = puller.pull(host + "/app:1");
  ASSERT_TRUE(out.ok) << out.failure.error.message();
  EXPECT_EQ(out.digest, shared.app1.digest);
  EXPECT_TRUE(exists(out.rootfs + "/bin/busybox"));
}

}  // namespace
}  // namespace flotilla::runtime::image
