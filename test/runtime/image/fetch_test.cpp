// fetch_to_file against a small cpp-httplib server that can cut a transfer after N bytes,
// ignore Range requests, or answer with errors.
#include "runtime/image/http_fetch.hpp"

#include <gtest/gtest.h>
#include <httplib.h>
#include <sys/stat.h>

#include <atomic>
#include <thread>

#include "test/runtime/image/tar_builder.hpp"
#include "test/support/temp_dir.hpp"

namespace flotilla::runtime::image {
namespace {

using testing::read_all;
using testing::sha256_hex;

class FakeServer {
 public:
  FakeServer() {
    server_.Get("/blob", [this](const httplib::Request& req, httplib::Response& res) {
      requests++;
      if (!req.ranges.empty()) range_requests++;
      if (ignore_range) const_cast<httplib::Request&>(req).ranges.clear();
      size_t cut = cut_after.exchange(0);
      if (cut > 0 && req.ranges.empty()) {
        // Promise the whole body, send `cut` bytes, then drop the connection.
        res.set_content_provider(body.size(), "application/octet-stream",
                                 [this, cut](size_t offset, size_t, httplib::DataSink& sink) {
                                   if (offset >= cut) return false;
                                   sink.write(body.data() + offset, cut - offset);
                                   served += cut - offset;
                                   return true;
                                 });
        return;
      }
      served += req.ranges.empty() ? body.size() : body.size() - req.ranges[0].first;
      res.set_content(body, "application/octet-stream");
    });
    server_.Get("/missing", [](const httplib::Request&, httplib::Response& res) {
      res.status = 404;
      res.set_content("blob unknown", "text/plain");
    });
    server_.Get("/down", [](const httplib::Request&, httplib::Response& res) { res.status = 503; });
    port = server_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    while (!server_.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ~FakeServer() {
    server_.stop();
    thread_.join();
  }
  std::string url(const std::string& path) const {
    return "http://127.0.0.1:" + std::to_string(port) + path;
  }

  std::string body;
  std::atomic<size_t> cut_after{0};
  std::atomic<bool> ignore_range{false};
  std::atomic<int> requests{0}, range_requests{0};
  std::atomic<size_t> served{0};
  int port = 0;

 private:
  httplib::Server server_;
  std::thread thread_;
};

std::string pattern(size_t n) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>((i * 131 + i / 7) & 0xff);
  return s;
}

class FetchTest : public ::testing::Test {
 protected:
  void SetUp() override { server_.body = pattern(3 << 20); }
  FetchRequest request() {
    FetchRequest r;
    r.url = server_.url("/blob");
    r.dest = tmp_ / "blob";
    r.sha256 = sha256_hex(server_.body);
    return r;
  }
  bool exists(const std::string& p) {
    struct stat st {};
    return ::stat(p.c_str(), &st) == 0;
  }
  flotilla::testing::TempDir tmp_;
  FakeServer server_;
};

TEST_F(FetchTest, DownloadsAndVerifies) {
  auto out = fetch_to_file(request());
  ASSERT_TRUE(out) << out.failure().error.message();
  EXPECT_EQ(out->sha256, sha256_hex(server_.body));
  EXPECT_EQ(out->size, server_.body.size());
  EXPECT_EQ(out->bytes_fetched, server_.body.size());
  EXPECT_FALSE(out->resumed);
  EXPECT_EQ(out->http_status, 200);
  EXPECT_EQ(read_all(tmp_ / "blob"), server_.body);
  EXPECT_FALSE(exists(tmp_ / "blob.partial"));
}

TEST_F(FetchTest, ACutTransferResumesFromThePartialFileAndFetchesOnlyTheRest) {
  const size_t cut = 1'000'000;
  server_.cut_after = cut;
  auto first = fetch_to_file(request());
  ASSERT_FALSE(first);
  EXPECT_TRUE(first.failure().retryable) << first.failure().error.message();
  EXPECT_FALSE(exists(tmp_ / "blob"));  // nothing unverified at dest
  ASSERT_TRUE(exists(tmp_ / "blob.partial"));
  EXPECT_EQ(read_all(tmp_ / "blob.partial").size(), cut);

  auto second = fetch_to_file(request());
  ASSERT_TRUE(second) << second.failure().error.message();
  EXPECT_TRUE(second->resumed);
  EXPECT_EQ(second->http_status, 206);
  EXPECT_EQ(second->bytes_fetched, server_.body.size() - cut);
  EXPECT_EQ(server_.range_requests.load(), 1);
  EXPECT_EQ(read_all(tmp_ / "blob"), server_.body);
}

TEST_F(FetchTest, APartialFileThatIsAlreadyCompleteIsVerifiedAndKept) {
  // A crash between the last byte and the rename: the server answers the resume with 416.
  testing::write_all(tmp_ / "blob.partial", server_.body);
  auto out = fetch_to_file(request());
  ASSERT_TRUE(out) << out.failure().error.message();
  EXPECT_EQ(out->bytes_fetched, 0u);
  EXPECT_EQ(out->size, server_.body.size());
  EXPECT_EQ(read_all(tmp_ / "blob"), server_.body);
}

TEST_F(FetchTest, AServerIgnoringRangeRestartsFromZero) {
  server_.cut_after = 500'000;
  ASSERT_FALSE(fetch_to_file(request()));
  server_.ignore_range = true;
  auto out = fetch_to_file(request());
  ASSERT_TRUE(out) << out.failure().error.message();
  EXPECT_FALSE(out->resumed);
  EXPECT_EQ(out->http_status, 200);
  EXPECT_EQ(out->bytes_fetched, server_.body.size());
  EXPECT_EQ(read_all(tmp_ / "blob"), server_.body);
}

TEST_F(FetchTest, DigestMismatchDeletesThePartialAndIsNotRetryable) {
  auto req = request();
  req.sha256 = std::string(64, '0');
  auto out = fetch_to_file(req);
  ASSERT_FALSE(out);
  EXPECT_FALSE(out.failure().retryable);
  EXPECT_NE(
      out.failure().error.message().find("digest mismatch (want sha256:" + std::string(64, '0') +
                                         ", got sha256:" + sha256_hex(server_.body)),
      std::string::npos)
      << out.failure().error.message();
  EXPECT_FALSE(exists(tmp_ / "blob"));
  EXPECT_FALSE(exists(tmp_ / "blob.partial"));
}

TEST_F(FetchTest, HttpErrorsSayTheStatusAndWhetherToRetry) {
  auto req = request();
  req.url = server_.url("/missing");
  auto out = fetch_to_file(req);
  ASSERT_FALSE(out);
  EXPECT_FALSE(out.failure().retryable);
  EXPECT_EQ(out.failure().http_status, 404);
  EXPECT_EQ(out.failure().error.message(),
            "Failed to fetch '" + req.url + "': HTTP 404 (blob unknown)");
  req.url = server_.url("/down");
  auto down = fetch_to_file(req);
  ASSERT_FALSE(down);
  EXPECT_TRUE(down.failure().retryable);
  EXPECT_FALSE(exists(tmp_ / "blob"));
}

TEST_F(FetchTest, OversizeIsCut) {
  auto req = request();
  req.max_bytes = 1000;
  auto out = fetch_to_file(req);
  ASSERT_FALSE(out);
  EXPECT_FALSE(out.failure().retryable);
  EXPECT_NE(out.failure().error.message().find("larger than the expected 1000 bytes"),
            std::string::npos)
      << out.failure().error.message();
}

TEST_F(FetchTest, ConnectionRefused) {
  auto req = request();
  req.url = "http://127.0.0.1:" + std::to_string(flotilla::testing::free_port()) + "/blob";
  auto out = fetch_to_file(req);
  ASSERT_FALSE(out);
  EXPECT_TRUE(out.failure().retryable);
  EXPECT_EQ(out.failure().error.message(), "Failed to fetch '" + req.url + "': connection refused");
}

TEST_F(FetchTest, FileUrlsAndResumeOfThem) {
  std::string src = tmp_ / "src.img";
  testing::write_all(src, server_.body);
  testing::write_all(tmp_ / "copy.partial", server_.body.substr(0, 12345));
  FetchRequest req;
  req.url = "file://" + src;
  req.dest = tmp_ / "copy";
  req.sha256 = sha256_hex(server_.body);
  auto out = fetch_to_file(req);
  ASSERT_TRUE(out) << out.failure().error.message();
  EXPECT_TRUE(out->resumed);
  EXPECT_EQ(out->bytes_fetched, server_.body.size() - 12345);
  EXPECT_EQ(read_all(tmp_ / "copy"), server_.body);
  auto hash = sha256_file(tmp_ / "copy");
  ASSERT_TRUE(hash);
  EXPECT_EQ(*hash, sha256_hex(server_.body));
  EXPECT_FALSE(sha256_file(tmp_ / "nope"));
}

TEST_F(FetchTest, CancelKeepsThePartialFile) {
  std::atomic<bool> cancel{true};
  auto req = request();
  req.cancel = &cancel;
  auto out = fetch_to_file(req);
  ASSERT_FALSE(out);
  EXPECT_NE(out.failure().error.message().find("cancelled"), std::string::npos);
  EXPECT_FALSE(exists(tmp_ / "blob"));
}

}  // namespace
}  // namespace flotilla::runtime::image
