// The audit log (cloud-hub/audit_log.hpp) in PostgreSQL, as hub instances sharing a database keep
// it: one log for all of them, ids in the order of their appends, and no way to change a record.
#include <gtest/gtest.h>

#include <thread>

#include "cloud-hub/audit_log.hpp"
#include "cloud-hub/pg.hpp"
#include "cloud-hub/store_pg.hpp"
#include "test/support/postgres.hpp"

namespace flotilla::hub {
namespace {

using testing::Postgres;

TEST(AuditLogPg, InstancesShareOneAppendOnlyLogInOrder) {
  if (auto why = Postgres::unavailable_reason(); !why.empty()) GTEST_SKIP() << why;
  Postgres server;
  ASSERT_TRUE(server.start());
  auto info = server.create_database("audit");
  ASSERT_TRUE(info) << info.error().message();
  auto open = [&]() -> std::unique_ptr<AuditLog> {
    auto conn = db::open_postgres(*info, "audit");
    EXPECT_TRUE(conn) << conn.error().message();
    if (!conn) return nullptr;
    auto log = AuditLog::open(std::move(*conn));
    EXPECT_TRUE(log) << log.error().message();
    return log ? std::move(*log) : nullptr;
  };
  auto a = open();
  auto b = open();  // a second instance: the schema exists, nothing migrates twice
  ASSERT_TRUE(a && b);

  // Two instances appending at once, 50 batches of 2 each.
  auto writer = [](AuditLog& log, const std::string& who) {
    for (int i = 0; i < 50; ++i) {
      std::vector<AuditRecord> records(2);
      for (auto& r : records) {
        r.who = who;
        r.method = "PUT";
        r.kind = "Workload";
        r.name = "w" + std::to_string(i);
        r.status = 200;
        r.after = {{"i", i}};
      }
      ASSERT_TRUE(log.append(records)) << who;
      ASSERT_EQ(records[1].id, records[0].id + 1) << "a batch is not contiguous";
    }
  };
  std::thread ta([&] { writer(*a, "ada"); });
  std::thread tb([&] { writer(*b, "bob"); });
  ta.join();
  tb.join();

  auto all = b->list(0, 1000);
  ASSERT_TRUE(all) << all.error().message();
  ASSERT_EQ(all->size(), 200u);
  for (size_t i = 0; i < all->size(); ++i) {
    EXPECT_EQ((*all)[i].id, static_cast<int64_t>(i + 1));
  }
  EXPECT_EQ((*all)[5].after.is_object(), true);
  EXPECT_TRUE((*all)[5].before.is_null());
  // Paging forward from an id, through the other instance.
  auto page = a->list(198, 10);
  ASSERT_TRUE(page) << page.error().message();
  ASSERT_EQ(page->size(), 2u);
  EXPECT_EQ(page->front().id, 199);
  // The last N, oldest first.
  auto last = a->list(0, 3);
  ASSERT_TRUE(last);
  ASSERT_EQ(last->size(), 3u);
  EXPECT_EQ(last->front().id, 198);

  auto conn = pg::Conn::connect(*info);
  ASSERT_TRUE(conn) << conn.error().message();
  for (const std::string sql : {"UPDATE audit.audit SET who = 'mallory'", "DELETE FROM audit.audit",
                                "TRUNCATE audit.audit"}) {
    auto st = conn->exec(sql);
    ASSERT_FALSE(st) << sql;
    EXPECT_NE(st.error().message().find("append-only"), std::string::npos) << st.error().message();
  }
  auto count = conn->query("SELECT count(*) FROM audit.audit");
  ASSERT_TRUE(count);
  EXPECT_EQ(count->int64(0, 0), 200);
}

}  // namespace
}  // namespace flotilla::hub
