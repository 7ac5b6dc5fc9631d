// flotctl artifact through flotctl's library, against real files and, for push, a stand-in hub
// (cpp-httplib on a loopback port) that answers like the artifacts API.
#include <httplib.h>
#include <sys/stat.h>

#include <gtest/gtest.h>

#include <chrono>
#include <mutex>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "cloud-hub/flotctl/commands.hpp"
#include "common/base64.hpp"
#include "common/fs.hpp"
#include "common/sha256.hpp"
#include "ota/bundle.hpp"
#include "ota/signing.hpp"
#include "test/ota/test_images.hpp"
#include "test/support/temp_dir.hpp"

namespace flotilla::ota {
namespace {

struct Outcome {
  int code;
  std::string out;
  std::string err;
};

struct Upload {
  std::string path;
  std::string content_type;
  std::string body;
};

// Records every PUT; answers `status` with `body`, or 201 with {}.
class FakeHub {
 public:
  FakeHub() {
    server_.Put(R"(/api/v1/artifacts/.*)",
                [this](const httplib::Request& req, httplib::Response& res) {
                  std::lock_guard lock(mu_);
                  uploads_.push_back({req.path, req.get_header_value("Content-Type"), req.body});
                  if (fail_path_ == req.path) {
                    res.status = 400;
                    res.set_content(R"({"error":"payload sha256 does not match the manifest"})",
                                    "application/json");
                  } else {
                    res.status = 201;
                    res.set_content("{}", "application/json");
                  }
                });
    port_ = server_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    while (!server_.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ~FakeHub() {
    server_.stop();
    thread_.join();
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  std::vector<Upload> uploads() {
    std::lock_guard lock(mu_);
    return uploads_;
  }
  void fail_on(const std::string& path) {
    std::lock_guard lock(mu_);
    fail_path_ = path;
  }

 private:
  httplib::Server server_;
  int port_ = 0;
  std::thread thread_;
  std::mutex mu_;
  std::vector<Upload> uploads_;
  std::string fail_path_;
};

class ArtifactCli : public ::testing::Test {
 protected:
  void SetUp() override {
    base_ = testing::make_image(400000, 21);
    next_ = testing::change_image(base_, 1.0, 22);
    ASSERT_TRUE(fs::write_atomic(tmp_ / "v1.img", base_).ok());
    ASSERT_TRUE(fs::write_atomic(tmp_ / "v2.img", next_).ok());
  }
  Outcome flotctl(std::vector<std::string> args) {
    std::ostringstream out, err;
    flotctl::Context ctx;
    ctx.default_hub = hub_.url();
    const int code = flotctl::run(args, ctx, out, err);
    return {code, out.str(), err.str()};
  }
  // keygen + build (with a delta) + sign, each checked.
  void make_signed_bundle() {
    Outcome r = flotctl({"artifact", "keygen", "--out", tmp_ / "k"});
    ASSERT_EQ(r.code, 0) << r.err;
    r = flotctl({"artifact", "build", "--name", "fw", "--version", "2.0", "--target", "image",
                 "--payload", tmp_ / "v2.img", "--base", tmp_ / "v1.img", "--base-version", "1.0",
                 "--out", bundle_});
    ASSERT_EQ(r.code, 0) << r.err;
    r = flotctl({"artifact", "sign", "--key", tmp_ / "k.key", bundle_});
    ASSERT_EQ(r.code, 0) << r.err;
  }
  std::string read(const std::string& path) { return fs::read_file(path).value(); }

  FakeHub hub_;
  flotilla::testing::TempDir tmp_;
  std::string base_, next_;
  std::string bundle_ = tmp_ / "bundle";
};

TEST_F(ArtifactCli, KeygenWritesAPrivateKeyOnlyTheOwnerReadsAndNeverOverwritesIt) {
  Outcome r = flotctl({"artifact", "keygen", "--out", tmp_ / "k"});
  ASSERT_EQ(r.code, 0) << r.err;
  struct stat st {};
  ASSERT_EQ(::stat((tmp_ / "k.key").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  const std::string key = read(tmp_ / "k.key");
  auto sig = sign(key, "hello");
  ASSERT_TRUE(sig.ok());
  EXPECT_TRUE(verify(read(tmp_ / "k.pub"), "hello", *sig).ok());

  r = flotctl({"artifact", "keygen", "--out", tmp_ / "k"});
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("refusing to overwrite"), std::string::npos) << r.err;
  EXPECT_EQ(read(tmp_ / "k.key"), key);
}

TEST_F(ArtifactCli, BuildSignVerify) {
  make_signed_bundle();
  Outcome r = flotctl({"artifact", "verify", "--pub", tmp_ / "k.pub", bundle_});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, bundle_ + ": fw 2.0 (image): signature ok, payload ok, delta from 1.0 ok\n");
  auto manifest = parse_manifest(read(bundle_ + "/manifest.json"));
  ASSERT_TRUE(manifest.ok());
  EXPECT_EQ(manifest->sha256, sha256_hex(next_));
}

TEST_F(ArtifactCli, VerifyFailsOnTamperingAndAnotherKey) {
  make_signed_bundle();
  ASSERT_EQ(flotctl({"artifact", "keygen", "--out", tmp_ / "other"}).code, 0);
  Outcome r = flotctl({"artifact", "verify", "--pub", tmp_ / "other.pub", bundle_});
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("signature does not match the pinned key"), std::string::npos) << r.err;

  std::string payload = read(bundle_ + "/payload");
  payload[7] ^= 1;
  ASSERT_TRUE(fs::write_atomic(bundle_ + "/payload", payload).ok());
  r = flotctl({"artifact", "verify", "--pub", tmp_ / "k.pub", bundle_});
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("payload: sha256 is"), std::string::npos) << r.err;
}

TEST_F(ArtifactCli, BadUsageSaysWhat) {
  Outcome r = flotctl({"artifact", "build", "--name", "fw", "--version", "2"});
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("artifact build needs --target"), std::string::npos) << r.err;
  r = flotctl({"artifact", "frobnicate"});
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("unknown artifact verb 'frobnicate'"), std::string::npos);
  r = flotctl({"artifact", "sign", "--key", "k.key"});
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("needs one bundle directory"), std::string::npos);
  r = flotctl({"artifact", "build", "--name", "Bad Name", "--version", "2", "--target", "image",
               "--payload", tmp_ / "v2.img", "--out", bundle_});
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("'name' must be"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(bundle_));
  r = flotctl({"artifact", "build", "--name", "fw", "--version", "2", "--target", "image",
               "--payload", tmp_ / "v2.img", "--base", tmp_ / "v1.img", "--base-version", "1",
               "--level", "20", "--out", bundle_});
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("--level wants a zstd level from 1 to 19, got '20'"), std::string::npos);
  EXPECT_FALSE(fs::exists(bundle_));
  EXPECT_EQ(flotctl({"artifact", "--help"}).code, 0);
}

TEST_F(ArtifactCli, PushUploadsManifestSignaturePayloadAndDelta) {
  make_signed_bundle();
  Outcome r = flotctl({"--hub", hub_.url(), "artifact", "push", bundle_});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("pushed fw 2.0 to " + hub_.url()), std::string::npos) << r.out;
  auto uploads = hub_.uploads();
  ASSERT_EQ(uploads.size(), 3u);
  EXPECT_EQ(uploads[0].path, "/api/v1/artifacts/fw/2.0");
  EXPECT_EQ(uploads[0].content_type, "application/json");
  auto doc = nlohmann::json::parse(uploads[0].body);
  EXPECT_EQ(doc["manifest"], read(bundle_ + "/manifest.json"));
  EXPECT_EQ(base64_decode(doc["signature"].get<std::string>()).value(),
            read(bundle_ + "/manifest.sig"));
  EXPECT_EQ(uploads[1].path, "/api/v1/artifacts/fw/2.0/payload");
  EXPECT_EQ(uploads[1].content_type, "application/octet-stream");
  EXPECT_TRUE(uploads[1].body == next_);
  EXPECT_EQ(uploads[2].path, "/api/v1/artifacts/fw/2.0/delta");
  EXPECT_TRUE(uploads[2].body == read(bundle_ + "/delta"));
}

TEST_F(ArtifactCli, PushPrintsTheHubsError) {
  make_signed_bundle();
  hub_.fail_on("/api/v1/artifacts/fw/2.0/payload");
  Outcome r = flotctl({"artifact", "push", bundle_});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.err,
            "error: Failed to push the payload: payload sha256 does not match the manifest\n");
  EXPECT_EQ(hub_.uploads().size(), 2u);  // the delta is not sent after a failure
}

TEST_F(ArtifactCli, PushRefusesUnsignedOrDamagedBundlesWithoutUploading) {
  Outcome r = flotctl({"artifact", "build", "--name", "fw", "--version", "2.0", "--target", "agent",
                       "--payload", tmp_ / "v2.img", "--out", bundle_});
  ASSERT_EQ(r.code, 0) << r.err;
  r = flotctl({"artifact", "push", bundle_});
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("it is not signed"), std::string::npos) << r.err;
  ASSERT_EQ(flotctl({"artifact", "keygen", "--out", tmp_ / "k"}).code, 0);
  ASSERT_EQ(flotctl({"artifact", "sign", "--key", tmp_ / "k.key", bundle_}).code, 0);
  ASSERT_TRUE(fs::write_atomic(bundle_ + "/payload", "short").ok());
  r = flotctl({"artifact", "push", bundle_});
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("payload: size is 5 bytes"), std::string::npos) << r.err;
  EXPECT_TRUE(hub_.uploads().empty());
}

}  // namespace
}  // namespace flotilla::ota
