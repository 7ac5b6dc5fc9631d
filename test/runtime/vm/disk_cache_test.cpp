// DiskCache with a scripted fetcher and a fake clock: prepare() never blocks, failures are
// reported with their cause and retried with backoff, only verified files are used; and the
// real fetch_to_file over file:// with a wrong digest.
#include "runtime/vm/disk_cache.hpp"

#include <chrono>
#include <fstream>
#include <mutex>

#include <gtest/gtest.h>

#include "common/fs.hpp"
#include "test/support/process.hpp"
#include "test/support/temp_dir.hpp"

namespace flotilla::runtime::vm {
namespace {

using namespace std::chrono_literals;
using flotilla::testing::eventually;
using flotilla::testing::TempDir;
using State = Preparation::State;

const std::string kDigest(64, 'a');

// A fetcher whose outcome the test sets; counts its calls.
struct ScriptedFetch {
  std::mutex mu;
  int calls = 0;
  bool succeed = false;
  image::FetchOutcome operator()(const image::FetchRequest& request) {
    std::lock_guard<std::mutex> lock(mu);
    ++calls;
    if (!succeed) {
      return image::FetchError{Error("Failed to fetch '" + request.url + "': HTTP 503"), true, 503};
    }
    (void)fs::write_atomic(request.dest, "disk bytes");
    return image::FetchResult{request.sha256, 10, 10, false, 200};
  }
  int call_count() {
    std::lock_guard<std::mutex> lock(mu);
    return calls;
  }
};

Preparation settle(DiskCache& cache, const DiskSource& source) {
  Preparation p;
  eventually(
      [&] {
        p = cache.prepare(source);
        return p.state != State::kInProgress;
      },
      10s);
  return p;
}

TEST(DiskCacheTest, FailuresAreReportedAndRetriedWithBackoff) {
  TempDir tmp;
  FakeClock clock;
  auto fetch = std::make_shared<ScriptedFetch>();
  DiskCache cache(
      tmp / "images", [fetch](const image::FetchRequest& r) { return (*fetch)(r); }, clock,
      DiskCache::Options{5s, 60s, 0});
  auto source = parse_disk_source("http://127.0.0.1:1/disk.img", kDigest);
  ASSERT_TRUE(source) << source.error().message();

  EXPECT_EQ(cache.prepare(*source).state, State::kInProgress);  // returns at once
  Preparation failed = settle(cache, *source);
  EXPECT_EQ(failed.state, State::kFailed);
  EXPECT_NE(failed.message.find("HTTP 503"), std::string::npos) << failed.message;
  EXPECT_NE(failed.message.find("next attempt in 5 s"), std::string::npos) << failed.message;
  EXPECT_EQ(cache.prepare(*source).state, State::kFailed);  // no retry before the backoff
  EXPECT_EQ(fetch->call_count(), 1);
  EXPECT_FALSE(cache.path(*source));

  clock.advance(5s);
  failed = settle(cache, *source);
  EXPECT_EQ(fetch->call_count(), 2);
  EXPECT_NE(failed.message.find("next attempt in 10 s"), std::string::npos) << failed.message;

  fetch->succeed = true;
  clock.advance(10s);
  Preparation ready = settle(cache, *source);
  EXPECT_EQ(ready.state, State::kReady) << ready.message;
  EXPECT_EQ(fetch->call_count(), 3);
  auto path = cache.path(*source);
  ASSERT_TRUE(path) << path.error().message();
  EXPECT_EQ(*path, tmp / "images" + "/sha256/" + kDigest);
  EXPECT_EQ(cache.prepare(*source).state, State::kReady);
  EXPECT_EQ(fetch->call_count(), 3);  // cached: never fetched again
}

TEST(DiskCacheTest, ALocalFileWithTheWrongDigestIsRefusedNamingBothDigests) {
  TempDir tmp;
  SystemClock clock;
  const std::string disk = tmp / "disk.raw";
  std::ofstream(disk) << "not what was promised";
  DiskCache cache(tmp / "images", image::fetch_to_file, clock, DiskCache::Options{});
  auto source = parse_disk_source(disk, "sha256:" + kDigest);
  ASSERT_TRUE(source) << source.error().message();
  Preparation p = settle(cache, *source);
  ASSERT_EQ(p.state, State::kFailed);
  EXPECT_NE(p.message.find(kDigest), std::string::npos) << p.message;  // want
  auto got = flotilla::testing::run_command({"/usr/bin/sha256sum", disk});
  ASSERT_EQ(got.exit_code, 0);
  EXPECT_NE(p.message.find(got.out.substr(0, 64)), std::string::npos) << p.message;  // got
  EXPECT_FALSE(fs::exists(cache.path_for(kDigest)));
}

TEST(DiskSourceTest, ReadsUrlsPathsAndDigests) {
  auto remote = parse_disk_source("https://example.test/d.qcow2", "sha256:" + kDigest);
  ASSERT_TRUE(remote);
  EXPECT_EQ(remote->url, "https://example.test/d.qcow2");
  EXPECT_EQ(remote->sha256, kDigest);

  auto kernel = parse_disk_source("http://h/vmlinuz#sha256=" + kDigest, "");
  ASSERT_TRUE(kernel) << kernel.error().message();
  EXPECT_EQ(kernel->url, "http://h/vmlinuz");
  EXPECT_EQ(kernel->sha256, kDigest);

  auto in_place = parse_disk_source("/var/lib/disk.raw", "");
  ASSERT_TRUE(in_place);
  EXPECT_TRUE(in_place->url.empty());
  EXPECT_EQ(in_place->local_path, "/var/lib/disk.raw");

  auto verified = parse_disk_source("file:///var/lib/disk.raw", kDigest);
  ASSERT_TRUE(verified);
  EXPECT_EQ(verified->url, "file:///var/lib/disk.raw");

  const std::pair<std::pair<std::string, std::string>, std::string> bad[] = {
      {{"http://h/d.img", ""}, "needs a sha256 digest"},
      {{"/d.img", "ABC"}, "not 64 lowercase hex digits"},
      {{"relative.img", ""}, "neither an http(s)://"},
      {{"registry.test/vm:1", ""}, "OCI artifact references are not supported"},
      {{"", ""}, "empty"},
      {{"http://h/k#sha256=" + kDigest, kDigest}, "both in the URL and in the sha256 field"},
  };
  for (const auto& [input, expected] : bad) {
    auto s = parse_disk_source(input.first, input.second);
    ASSERT_FALSE(s) << input.first;
    EXPECT_NE(s.error().message().find(expected), std::string::npos) << s.error().message();
  }
}

}  // namespace
}  // namespace flotilla::runtime::vm
