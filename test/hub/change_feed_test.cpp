// ChangeFeed (cloud-hub/change_feed.hpp): its payload codec, and two feeds over a real PostgreSQL
// telling each other their changes, across a restart of the server.
#include "cloud-hub/change_feed.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "test/support/postgres.hpp"

namespace flotilla::hub {
namespace {

using namespace std::chrono_literals;
using testing::Postgres;

std::set<Change> many_changes(int count) {
  std::set<Change> out;
  for (int i = 0; i < count; ++i) {
    const auto kind = static_cast<Change::Kind>(i % 4);
    // Names of 1 to 200 bytes, so chunks end at varied places.
    out.insert({kind, "obj-" + std::to_string(i) + std::string(static_cast<size_t>(i % 197), 'x')});
  }
  return out;
}

TEST(ChangeFeedCodec, ManyChangesTravelInPayloadsUnderTheLimitAndComeBackWhole) {
  const auto changes = many_changes(3000);
  const auto payloads = encode_changes(changes);
  ASSERT_GT(payloads.size(), 10u);
  std::set<Change> back;
  for (const auto& p : payloads) {
    EXPECT_LE(p.size(), kMaxChangePayload);
    auto decoded = decode_changes(p);
    ASSERT_TRUE(decoded) << decoded.error().message();
    back.merge(*decoded);
  }
  EXPECT_EQ(back, changes);
  EXPECT_TRUE(encode_changes({}).empty());
}

TEST(ChangeFeedCodec, NamesThatCannotTravelAreLeftOutAndTheRestGoes) {
  const std::set<Change> changes = {{Change::Kind::kNode, ""},
                                    {Change::Kind::kNode, "two\nlines"},
                                    {Change::Kind::kWorkload, std::string(8000, 'w')},
                                    {Change::Kind::kDevice, "cam-1"}};
  const auto payloads = encode_changes(changes);
  ASSERT_EQ(payloads.size(), 1u);
  auto decoded = decode_changes(payloads[0]);
  ASSERT_TRUE(decoded) << decoded.error().message();
  EXPECT_EQ(*decoded, (std::set<Change>{{Change::Kind::kDevice, "cam-1"}}));
}

TEST(ChangeFeedCodec, MalformedPayloadsAreRefusedWithTheReason) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"", "does not start with"},
      {"flotilla-changes 2\nn a\n", "does not start with"},
      {"flotilla-changes 1\nx name\n", "unknown kind 'x'"},
      {"flotilla-changes 1\nn\n", "line 2 is not '<kind> <name>'"},
      {"flotilla-changes 1\nnname\n", "line 2 is not '<kind> <name>'"},
      {"flotilla-changes 1\nn a\nw b", "line 3 has no line end"},
  };
  for (const auto& [payload, reason] : cases) {
    auto decoded = decode_changes(payload);
    ASSERT_FALSE(decoded) << payload;
    EXPECT_NE(decoded.error().message().find(reason), std::string::npos)
        << payload << " -> " << decoded.error().message();
  }
  auto empty = decode_changes("flotilla-changes 1\n");
  ASSERT_TRUE(empty);
  EXPECT_TRUE(empty->empty());
}

// What a feed handed over.
struct Inbox {
  std::mutex mu;
  std::condition_variable cv;
  std::set<Change> changes;
  int calls = 0;
  int gaps = 0;

  ChangeListener listener() {
    return [this](const std::set<Change>& c) {
      std::lock_guard lock(mu);
      changes.insert(c.begin(), c.end());
      calls += 1;
      cv.notify_all();
    };
  }
  std::function<void()> on_gap() {
    return [this] {
      std::lock_guard lock(mu);
      gaps += 1;
      cv.notify_all();
    };
  }
  template <typename Pred>
  bool wait(Pred pred, std::chrono::milliseconds timeout = 10s) {
    std::unique_lock lock(mu);
    return cv.wait_for(lock, timeout, [&] { return pred(); });
  }
};

class ChangeFeedTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (auto why = Postgres::unavailable_reason(); !why.empty()) GTEST_SKIP() << why;
    auto st = server_.start();
    ASSERT_TRUE(st) << st.error().message();
    auto info = server_.create_database("feed");
    ASSERT_TRUE(info) << info.error().message();
    conninfo_ = *info;
  }

  std::unique_ptr<ChangeFeed> feed(Inbox& inbox) {
    ChangeFeedOptions o;
    o.conninfo = conninfo_;
    o.reconnect_delay = 100ms;
    o.connect_timeout_s = 2;
    auto f = ChangeFeed::start(o, inbox.listener(), inbox.on_gap());
    EXPECT_TRUE(f) << f.error().message();
    return f ? std::move(*f) : nullptr;
  }

  Postgres server_;
  std::string conninfo_;
};

TEST_F(ChangeFeedTest, TheOtherInstanceGetsEveryChangeAndNobodyGetsTheirOwn) {
  Inbox a_in, b_in;
  auto a = feed(a_in);
  auto b = feed(b_in);
  ASSERT_TRUE(a && b);
  const auto changes = many_changes(3000);
  a->publish(changes);
  ASSERT_TRUE(b_in.wait([&] { return b_in.changes == changes; }))
      << b_in.changes.size() << " of " << changes.size();
  const std::set<Change> back = {{Change::Kind::kWorkload, "web"}};
  b->publish(back);
  ASSERT_TRUE(a_in.wait([&] { return !a_in.changes.empty(); }));
  std::this_thread::sleep_for(300ms);  // an echo of a's own notifications would be here by now
  {
    std::lock_guard lock(a_in.mu);
    EXPECT_EQ(a_in.changes, back);
  }
  {
    std::lock_guard lock(b_in.mu);
    EXPECT_EQ(b_in.changes, changes);  // and not b's own "web"
  }
  EXPECT_EQ(a->stats().published, changes.size());
  EXPECT_EQ(b->stats().received, changes.size());
  EXPECT_EQ(a->stats().gaps + b->stats().gaps, 0u);
}

TEST_F(ChangeFeedTest, AMalformedNotificationIsCountedAndDroppedAndTheFeedGoesOn) {
  Inbox in;
  auto f = feed(in);
  ASSERT_TRUE(f);
  auto conn = pg::Conn::connect(conninfo_);
  ASSERT_TRUE(conn) << conn.error().message();
  ASSERT_TRUE(conn->query("SELECT pg_notify('flotilla_changes', $1)", {"garbage"}));
  ASSERT_TRUE(
      conn->query("SELECT pg_notify('flotilla_changes', $1)", {"flotilla-changes 1\nn edge-7\n"}));
  ASSERT_TRUE(in.wait([&] { return !in.changes.empty(); }));
  std::lock_guard lock(in.mu);
  EXPECT_EQ(in.changes, (std::set<Change>{{Change::Kind::kNode, "edge-7"}}));
  EXPECT_EQ(f->stats().rejected, 1u);
}

TEST_F(ChangeFeedTest, AfterTheDatabaseRestartsEachFeedReportsAGapOnceAndGoesOn) {
  Inbox a_in, b_in;
  auto a = feed(a_in);
  auto b = feed(b_in);
  ASSERT_TRUE(a && b);
  server_.stop();
  // Published while the database is away: queued, and sent once a is connected again.
  a->publish({{Change::Kind::kNode, "while-down"}});
  std::this_thread::sleep_for(300ms);
  ASSERT_TRUE(server_.start());
  ASSERT_TRUE(a_in.wait([&] { return a_in.gaps == 1; })) << "a reported no gap";
  ASSERT_TRUE(b_in.wait([&] { return b_in.gaps == 1; })) << "b reported no gap";
  ASSERT_TRUE(b_in.wait([&] { return a->stats().published == 1; }, 5s))
      << "what a published while the database was away was not sent";
  const std::set<Change> after = {{Change::Kind::kDevice, "after-restart"}};
  a->publish(after);
  ASSERT_TRUE(b_in.wait([&] { return b_in.changes.count(*after.begin()) == 1; }));
  std::this_thread::sleep_for(300ms);
  std::lock_guard lock(a_in.mu);
  EXPECT_EQ(a_in.gaps, 1);
  EXPECT_EQ(b->stats().gaps, 1u);
}

TEST(ChangeFeed, AnUnreachableDatabaseIsAClearErrorAtStart) {
  ChangeFeedOptions o;
  o.conninfo = "postgresql://nobody@127.0.0.1:1/none";
  o.connect_timeout_s = 2;
  auto f = ChangeFeed::start(
      o, [](const std::set<Change>&) {}, [] {});
  ASSERT_FALSE(f);
  EXPECT_NE(f.error().message().find("Failed to start the change feed"), std::string::npos)
      << f.error().message();
}

}  // namespace
}  // namespace flotilla::hub
