// Puller against a real docker-registry: tags, digests, indexes, Docker manifests, corrupted
// blobs and concurrent pulls of one image.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <thread>

#include "runtime/image/layer_unpack.hpp"
#include "runtime/image/puller.hpp"
#include "test/runtime/image/registry_fixture.hpp"
#include "test/runtime/image/tar_builder.hpp"

namespace flotilla::runtime::image {
namespace {

using testing::shared_registry;

bool exists(const std::string& p) {
  struct stat st {};
  return ::lstat(p.c_str(), &st) == 0;
}

class RegistryPullTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto& reg = shared_registry();
    if (!reg.error.empty()) GTEST_SKIP() << "no test registry: " << reg.error;
    host_ = reg.host();
    RegistryConfig cfg;
    cfg.insecure = {host_};
    client_ = std::make_unique<RegistryClient>(cfg);
    ASSERT_TRUE(blobs_.init());
    puller_ =
        std::make_unique<Puller>(tmp_.path(), *client_, blobs_, Platform{"linux", "amd64", ""});
  }
  void expect_busybox_rootfs(const PullOutcome& out) {
    ASSERT_TRUE(out.ok) << out.failure.error.message();
    EXPECT_EQ(out.rootfs, tmp_ / ("rootfs/" + out.digest.substr(7) + "/rootfs"));
    struct stat st {};
    ASSERT_EQ(::stat((out.rootfs + "/bin/busybox").c_str(), &st), 0);
    EXPECT_TRUE(st.st_mode & S_IXUSR);
    char link[64] = {0};
    ASSERT_GT(::readlink((out.rootfs + "/bin/sh").c_str(), link, sizeof(link) - 1), 0);
    EXPECT_STREQ(link, "busybox");
    EXPECT_EQ(out.config.entrypoint, (std::vector<std::string>{"/bin/sh"}));
    EXPECT_EQ(out.config.cmd, (std::vector<std::string>{"-c", "echo hello"}));
    EXPECT_NE(std::find(out.config.env.begin(), out.config.env.end(), "GREETING=hi"),
              out.config.env.end());
    EXPECT_EQ(out.config.workdir, "/tmp");
    EXPECT_EQ(out.config.user, "1000:1000");
  }
  flotilla::testing::TempDir tmp_;
  std::string host_;
  std::unique_ptr<RegistryClient> client_;
  BlobStore blobs_{tmp_.path()};
  std::unique_ptr<Puller> puller_;
};

TEST_F(RegistryPullTest, PullsByTagIntoAVerifiedRootfs) {
  auto out = puller_->pull(host_ + "/app:1");
  expect_busybox_rootfs(out);
  EXPECT_EQ(out.digest, shared_registry().app1.digest);
  EXPECT_EQ(out.bytes_fetched, shared_registry().app1_blob_bytes);
  for (const auto& b : shared_registry().app1_blobs) EXPECT_TRUE(blobs_.has(b)) << b;
  // A second pull of the unpacked image fetches nothing.
  auto again = puller_->pull(host_ + "/app:1");
  ASSERT_TRUE(again.ok);
  EXPECT_EQ(again.bytes_fetched, 0u);
}

TEST_F(RegistryPullTest, PullsByDigest) {
  auto out = puller_->pull(host_ + "/app@" + shared_registry().app1.digest);
  expect_busybox_rootfs(out);
  EXPECT_EQ(out.digest, shared_registry().app1.digest);
}

TEST_F(RegistryPullTest, ADigestThatDoesNotMatchTheManifestIsRejected) {
  // The registry answers this digest with app:arm's bytes? No: it 404s a digest it lacks.
  std::string missing = "sha256:" + std::string(64, 'e');
  auto out = puller_->pull(host_ + "/app@" + missing);
  ASSERT_FALSE(out.ok);
  EXPECT_FALSE(out.failure.retryable);
  EXPECT_NE(out.failure.error.message().find("not found (HTTP 404)"), std::string::npos)
      << out.failure.error.message();
}

TEST_F(RegistryPullTest, AnIndexResolvesToTheNodesPlatform) {
  auto out = puller_->pull(host_ + "/app:multi");
  expect_busybox_rootfs(out);
  EXPECT_EQ(out.digest, shared_registry().app1.digest);  // amd64, though arm64 comes first
  EXPECT_TRUE(blobs_.has(shared_registry().multi.digest));

  Puller arm_puller(tmp_ / "arm", *client_, blobs_, Platform{"linux", "arm64", "v8"});
  ASSERT_TRUE(::mkdir((tmp_ / "arm").c_str(), 0755) == 0);
  auto arm = arm_puller.pull(host_ + "/app:multi");
  ASSERT_TRUE(arm.ok) << arm.failure.error.message();
  EXPECT_EQ(arm.digest, shared_registry().arm.digest);

  Puller riscv(tmp_.path(), *client_, blobs_, Platform{"linux", "riscv64", ""});
  auto none = riscv.pull(host_ + "/app:multi");
  ASSERT_FALSE(none.ok);
  EXPECT_NE(none.failure.error.message().find("no linux/riscv64 entry"), std::string::npos)
      << none.failure.error.message();
}

TEST_F(RegistryPullTest, PullsADockerV2Schema2Manifest) {
  auto m = testing::get_manifest(shared_registry().registry->port(), "app", "v2s2");
  ASSERT_EQ(m.media_type, "application/vnd.docker.distribution.manifest.v2+json");
  auto out = puller_->pull(host_ + "/app:v2s2");
  expect_busybox_rootfs(out);
  EXPECT_EQ(out.digest, m.digest);
}

TEST_F(RegistryPullTest, ACorruptedBlobIsRejectedAndNoRootfsAppears) {
  auto out = puller_->pull(host_ + "/bad:1");
  ASSERT_FALSE(out.ok);
  EXPECT_NE(out.failure.error.message().find("Failed to pull '" + host_ + "/bad:1'"),
            std::string::npos);
  EXPECT_NE(out.failure.error.message().find("digest mismatch (want sha256:"), std::string::npos)
      << out.failure.error.message();
  EXPECT_FALSE(exists(tmp_ / ("rootfs/" + out.digest.substr(7))));
  // Only .partial-free, verified blobs stay in the store.
  for (const auto& [digest, size] : blobs_.list()) {
    auto hash = sha256_file(blobs_.path(digest));
    ASSERT_TRUE(hash);
    EXPECT_EQ("sha256:" + *hash, digest);
  }
}

TEST_F(RegistryPullTest, ConcurrentPullsOfOneImageFetchEachBlobOnce) {
  PullOutcome a, b;
  std::thread t1([&] { a = puller_->pull(host_ + "/app:1"); });
  std::thread t2([&] { b = puller_->pull(host_ + "/app:1"); });
  t1.join();
  t2.join();
  ASSERT_TRUE(a.ok) << a.failure.error.message();
  ASSERT_TRUE(b.ok) << b.failure.error.message();
  EXPECT_EQ(a.rootfs, b.rootfs);
  EXPECT_EQ(a.bytes_fetched + b.bytes_fetched, shared_registry().app1_blob_bytes);
  EXPECT_EQ(blobs_.downloads(), shared_registry().app1_blobs.size());
  expect_busybox_rootfs(a);
}

TEST_F(RegistryPullTest, AMissingTagIsNotRetryable) {
  auto out = puller_->pull(host_ + "/app:nope");
  ASSERT_FALSE(out.ok);
  EXPECT_FALSE(out.failure.retryable);
  EXPECT_EQ(out.failure.error.message(),
            "Failed to pull '" + host_ + "/app:nope': manifest 'nope': not found (HTTP 404)");
}

}  // namespace
}  // namespace flotilla::runtime::image

namespace flotilla::runtime::image {
namespace {

// Not a timed assertion: prints how a pull compares with `skopeo copy` of the same image from
// the same registry into an oci: folder (download only; our pull also unpacks, timed apart).
TEST_F(RegistryPullTest, BenchPullVersusSkopeoCopy) {
  using Clock = std::chrono::steady_clock;
  auto ms = [](Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); };
  const int kRuns = 5;
  std::vector<double> pull_ms, unpack_ms, skopeo_ms;
  for (int i = 0; i < kRuns; ++i) {
    std::string root = tmp_ / ("bench" + std::to_string(i));
    ASSERT_EQ(::mkdir(root.c_str(), 0755), 0);
    BlobStore blobs(root);
    ASSERT_TRUE(blobs.init());
    Puller puller(root, *client_, blobs, Platform{"linux", "amd64", ""});
    auto t0 = Clock::now();
    auto out = puller.pull(host_ + "/app:1");
    pull_ms.push_back(ms(Clock::now() - t0));
    ASSERT_TRUE(out.ok) << out.failure.error.message();
    std::string again = root + "/unpack-again";
    ASSERT_EQ(::mkdir(again.c_str(), 0755), 0);
    auto t1 = Clock::now();
    ASSERT_TRUE(apply_layer(blobs.path(shared_registry().app1_blobs.back()), again));
    unpack_ms.push_back(ms(Clock::now() - t1));

    auto t2 = Clock::now();
    auto err = testing::run({"skopeo", "copy", "--quiet", "--src-tls-verify=false",
                             "docker://" + host_ + "/app:1", "oci:" + root + "/oci:app"});
    skopeo_ms.push_back(ms(Clock::now() - t2));
    ASSERT_EQ(err, "");
  }
  auto median = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
  };
  double pull = median(pull_ms), unpack = median(unpack_ms), skopeo = median(skopeo_ms);
  std::printf(
      "BENCH image=app:1 blob_bytes=%llu runs=%d pull_ms=%.1f (of which unpack_ms=%.1f) "
      "skopeo_copy_ms=%.1f ratio_pull_to_skopeo=%.2f ratio_fetch_only_to_skopeo=%.2f\n",
      static_cast<unsigned long long>(shared_registry().app1_blob_bytes), kRuns, pull, unpack,
      skopeo, pull / skopeo, (pull - unpack) / skopeo);
}

}  // namespace
}  // namespace flotilla::runtime::image
