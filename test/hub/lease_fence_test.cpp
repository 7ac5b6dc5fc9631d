// Fencing shard writes by their lease (Store::check_lease, docs/multi-hub.md) over a real
// PostgreSQL: a write commits only under the lease its owner still holds, and an open write keeps
// the shard from being taken over until it ends.
#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "cloud-hub/hub_stores.hpp"
#include "cloud-hub/shard_leases.hpp"
#include "test/support/postgres.hpp"

namespace flotilla::hub {
namespace {

using namespace std::chrono_literals;
using testing::Postgres;

constexpr Millis kPeriod{1000};
constexpr uint32_t kShard = 3;

class LeaseFenceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (auto why = Postgres::unavailable_reason(); !why.empty()) GTEST_SKIP() << why;
    auto st = server_.start();
    ASSERT_TRUE(st) << st.error().message();
    auto info = server_.create_database("fence");
    ASSERT_TRUE(info) << info.error().message();
    conninfo_ = *info;
    auto stores = open_postgres_hub_stores(conninfo_, 16, {});
    ASSERT_TRUE(stores) << stores.error().message();
    stores_ = std::move(*stores);
  }

  std::unique_ptr<ShardLeases> instance(const std::string& id) {
    ShardLeaseOptions o;
    o.conninfo = conninfo_;
    o.instance_id = id;
    o.shards = 16;
    o.lease_period = kPeriod;
    auto leases = ShardLeases::create(o, clock_);
    EXPECT_TRUE(leases) << leases.error().message();
    return leases ? std::move(*leases) : nullptr;
  }

  Store& store() { return *stores_.shards[kShard]; }

  // A node written in one transaction that ends with `check`; whether it committed.
  Status write_node(const std::string& name, const std::function<Status()>& check) {
    return store().transaction([&]() -> Status {
      NodeRecord n;
      n.name = name;
      if (auto st = store().put_node(n); !st) return st;
      return check();
    });
  }
  bool has_node(const std::string& name) {
    auto n = store().get_node(name);
    EXPECT_TRUE(n) << n.error().message();
    return n && n->has_value();
  }

  Postgres server_;
  std::string conninfo_;
  HubStores stores_;
  SystemClock clock_;  // the database's clock_timestamp() runs on real time too
};

TEST_F(LeaseFenceTest, AWriteCommitsOnlyUnderTheLeaseItsOwnerStillHolds) {
  auto a = instance("a");
  ASSERT_TRUE(a);
  ASSERT_TRUE(a->tick().status);
  ASSERT_EQ(a->owned().count(kShard), 1u);
  const int64_t epoch = a->owned().at(kShard).epoch;

  auto st = write_node("n1", [&] { return store().check_lease(kShard, "a", epoch); });
  ASSERT_TRUE(st) << st.error().message();
  EXPECT_TRUE(has_node("n1"));

  // Another epoch or another owner: refused, and nothing of the transaction is kept.
  st = write_node("n2", [&] { return store().check_lease(kShard, "a", epoch + 1); });
  ASSERT_FALSE(st);
  EXPECT_NE(st.error().message().find("the lease of shard 3 under epoch"), std::string::npos)
      << st.error().message();
  st = write_node("n2", [&] { return store().check_lease(kShard, "b", epoch); });
  ASSERT_FALSE(st);
  EXPECT_FALSE(has_node("n2"));

  // A write that checked its lease holds the lease row: though the lease expires meanwhile (a
  // stops renewing, as a paused process would), b cannot take the shard before it ends.
  auto b = instance("b");
  ASSERT_TRUE(b);
  st = write_node("n3", [&]() -> Status {
    if (auto held = store().check_lease(kShard, "a", epoch); !held) return held;
    std::this_thread::sleep_for(kPeriod + 300ms);
    auto changes = b->tick();
    EXPECT_TRUE(changes.status) << changes.status.error().message();
    EXPECT_EQ(b->owned().count(kShard), 0u) << "taken over under an open write";
    EXPECT_GE(b->owned().size(), 1u) << "b took none of a's expired shards";
    return Ok();
  });
  ASSERT_TRUE(st) << st.error().message();
  EXPECT_TRUE(has_node("n3"));

  // Once it ended, b takes the shard under a new epoch, and a's writes under its old one are
  // refused.
  const auto deadline = std::chrono::steady_clock::now() + 5s;
  while (b->owned().count(kShard) == 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(100ms);
    ASSERT_TRUE(b->tick().status);
  }
  ASSERT_EQ(b->owned().count(kShard), 1u);
  EXPECT_GT(b->owned().at(kShard).epoch, epoch);
  st = write_node("n4", [&] { return store().check_lease(kShard, "a", epoch); });
  ASSERT_FALSE(st);
  EXPECT_FALSE(has_node("n4"));
  const int64_t b_epoch = b->owned().at(kShard).epoch;
  st = write_node("n5", [&] { return store().check_lease(kShard, "b", b_epoch); });
  EXPECT_TRUE(st) << st.error().message();
}

}  // namespace
}  // namespace flotilla::hub
