// ImageStore end to end against a real docker-registry: prepare() progress, backoff while the
// registry is down and recovery when it is back, remembered tags across restarts, GC.
#include "runtime/image/image_store.hpp"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <chrono>

#include "test/runtime/image/registry_fixture.hpp"
#include "test/support/peers.hpp"

namespace flotilla::runtime::image {
namespace {

using flotilla::testing::eventually;
using testing::shared_registry;
using State = Preparation::State;

bool exists(const std::string& p) {
  struct stat st {};
  return ::lstat(p.c_str(), &st) == 0;
}

class ImageStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!shared_registry().error.empty()) {
      GTEST_SKIP() << "no test registry: " << shared_registry().error;
    }
    host_ = shared_registry().host();
  }
  ImageStoreConfig config(const std::string& host) {
    ImageStoreConfig c;
    c.root = tmp_ / "store";
    c.registry.insecure = {host};
    c.platform = {"linux", "amd64", ""};
    c.clock = &clock_;
    c.worker_tick = Millis(50);
    return c;
  }
  // Polls prepare() until it reports `want`; returns the last Preparation.
  Preparation wait_for(ImageStore& store, const std::string& ref, State want,
                       std::chrono::milliseconds timeout = std::chrono::seconds(20)) {
    Preparation p;
    eventually(
        [&] {
          p = store.prepare(ref);
          return p.state == want;
        },
        timeout);
    return p;
  }
  flotilla::testing::TempDir tmp_;
  FakeClock clock_;
  std::string host_;
};

TEST_F(ImageStoreTest, PrepareNeverBlocksAndEndsReadyWithTheImage) {
  ImageStore store(config(host_));
  ASSERT_TRUE(store.start());
  const std::string ref = host_ + "/app:1";
  auto first = store.prepare(ref);
  EXPECT_EQ(first.state, State::kInProgress);
  EXPECT_EQ(first.message.rfind("pulling '" + ref + "'", 0), 0u) << first.message;
  EXPECT_FALSE(store.unpacked(ref));
  auto ready = wait_for(store, ref, State::kReady);
  ASSERT_EQ(ready.state, State::kReady) << ready.message;
  auto img = store.unpacked(ref);
  ASSERT_TRUE(img) << img.error().message();
  EXPECT_EQ(img->digest, shared_registry().app1.digest);
  EXPECT_EQ(img->reference, ref);
  EXPECT_TRUE(exists(img->rootfs + "/bin/busybox"));
  EXPECT_EQ(img->config.entrypoint, (std::vector<std::string>{"/bin/sh"}));
  EXPECT_EQ(img->config.user, "1000:1000");
  EXPECT_EQ(store.bytes_fetched(), shared_registry().app1_blob_bytes);
}

TEST_F(ImageStoreTest, ATagPulledOnceIsNotPulledAgainAfterARestart) {
  const std::string ref = host_ + "/app:1";
  {
    ImageStore store(config(host_));
    ASSERT_TRUE(store.start());
    ASSERT_EQ(wait_for(store, ref, State::kReady).state, State::kReady);
  }
  // kReady on the very first prepare(): a pull would have answered kInProgress first.
  ImageStore again(config(host_));
  ASSERT_TRUE(again.start());
  auto p = again.prepare(ref);
  EXPECT_EQ(p.state, State::kReady) << p.message;
  EXPECT_EQ(again.bytes_fetched(), 0u);
  ASSERT_TRUE(again.unpacked(ref));
  // An interrupted unpack's leftovers are cleaned at start.
  ASSERT_EQ(::mkdir((tmp_ / "store/rootfs/.tmp-dead").c_str(), 0755), 0);
  ImageStore third(config(host_));
  ASSERT_TRUE(third.start());
  EXPECT_FALSE(exists(tmp_ / "store/rootfs/.tmp-dead"));
}

TEST_F(ImageStoreTest, RegistryDownBacksOffThenRecoversByItself) {
  int port = flotilla::testing::free_port();
  testing::Registry registry(tmp_.path(), port, shared_registry().storage);
  const std::string host = "127.0.0.1:" + std::to_string(port);
  const std::string ref = host + "/app:1";
  ImageStore store(config(host));
  ASSERT_TRUE(store.start());
  EXPECT_EQ(store.prepare(ref).state, State::kInProgress);
  auto failed = wait_for(store, ref, State::kFailed);
  ASSERT_EQ(failed.state, State::kFailed);
  EXPECT_EQ(failed.message, "Failed to pull '" + ref + "': connection refused; retrying in 1 s");
  // The next attempt is due after 1 s (fake clock); it fails again, and the wait doubles.
  clock_.advance(Millis(1000));
  Preparation second;
  ASSERT_TRUE(eventually(
      [&] {
        second = store.prepare(ref);
        return second.state == State::kFailed &&
               second.message.find("retrying in 2 s") != std::string::npos;
      },
      std::chrono::seconds(10)))
      << second.message;
  clock_.advance(Millis(1000));
  auto still = store.prepare(ref);
  EXPECT_EQ(still.state, State::kFailed);
  EXPECT_NE(still.message.find("retrying in 1 s"), std::string::npos) << still.message;

  ASSERT_TRUE(registry.start()) << registry.log();
  clock_.advance(Millis(1000));
  // No prepare() needed: the worker retries once due.
  ASSERT_TRUE(eventually(
      [&] { return exists(tmp_ / ("store/rootfs/" + shared_registry().app1.digest.substr(7))); },
      std::chrono::seconds(20)));
  EXPECT_EQ(wait_for(store, ref, State::kReady).state, State::kReady);
  EXPECT_TRUE(store.unpacked(ref));
}

TEST_F(ImageStoreTest, ACorruptedBlobFailsWithAClearMessageAndNoImage) {
  ImageStore store(config(host_));
  ASSERT_TRUE(store.start());
  const std::string ref = host_ + "/bad:1";
  auto p = wait_for(store, ref, State::kFailed);
  ASSERT_EQ(p.state, State::kFailed);
  EXPECT_EQ(p.message.rfind("Failed to pull '" + ref + "': ", 0), 0u) << p.message;
  EXPECT_NE(p.message.find("digest mismatch (want sha256:"), std::string::npos) << p.message;
  EXPECT_NE(p.message.find("; retrying in "), std::string::npos) << p.message;
  EXPECT_FALSE(store.unpacked(ref));
}

TEST_F(ImageStoreTest, AnInvalidReferenceFailsAtOnce) {
  ImageStore store(config(host_));
  ASSERT_TRUE(store.start());
  auto p = store.prepare(host_ + "/App:1");
  EXPECT_EQ(p.state, State::kFailed);
  EXPECT_NE(p.message.find("invalid repository component 'App'"), std::string::npos) << p.message;
}

TEST_F(ImageStoreTest, GcUnderABudgetRemovesTheUnusedImageAndKeepsTheInUseOne) {
  auto cfg = config(host_);
  cfg.disk_budget_bytes = 1;  // everything not in use must go
  ImageStore store(cfg);
  ASSERT_TRUE(store.start());
  const std::string app = host_ + "/app:1", other = host_ + "/other:1";
  store.set_in_use({app, other});
  ASSERT_EQ(wait_for(store, app, State::kReady).state, State::kReady);
  ASSERT_EQ(wait_for(store, other, State::kReady).state, State::kReady);
  auto other_img = store.unpacked(other);
  ASSERT_TRUE(other_img);
  // The store runs its own gc after each pull, after the pull already reports kReady. gc()
  // waits for it (both hold the pull lock), so nothing is removed behind the test's back once
  // this returns: over the budget, and still nothing to remove while both images are in use.
  auto in_use_report = store.gc();
  EXPECT_EQ(in_use_report.images_removed, 0);
  EXPECT_GT(in_use_report.bytes_after, cfg.disk_budget_bytes);
  EXPECT_TRUE(exists(other_img->rootfs + "/bin/busybox"));
  auto blobs_before = store.blobs().list();

  store.set_in_use({app});
  auto report = store.gc();
  EXPECT_EQ(report.images_removed, 1);
  EXPECT_GT(report.blobs_removed, 0);
  EXPECT_LT(report.bytes_after, report.bytes_before);
  EXPECT_FALSE(exists(other_img->rootfs));
  EXPECT_FALSE(store.unpacked(other));
  auto app_img = store.unpacked(app);
  ASSERT_TRUE(app_img);
  EXPECT_TRUE(exists(app_img->rootfs + "/bin/busybox"));
  auto blobs_after = store.blobs().list();
  for (const auto& b : shared_registry().app1_blobs) EXPECT_TRUE(blobs_after.count(b)) << b;
  EXPECT_LT(blobs_after.size(), blobs_before.size());
  // Asked for again, the removed image is pulled again.
  EXPECT_EQ(store.prepare(other).state, State::kInProgress);
}

}  // namespace
}  // namespace flotilla::runtime::image
