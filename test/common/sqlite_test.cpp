#include "common/sqlite.hpp"

#include <gtest/gtest.h>

#include "test/support/temp_dir.hpp"

namespace flotilla::sql {
namespace {

const std::vector<std::string> kSteps = {
    "CREATE TABLE kv (k TEXT PRIMARY KEY, v TEXT NOT NULL);",
    "ALTER TABLE kv ADD COLUMN n INTEGER NOT NULL DEFAULT 0;",
};

int64_t count(Db& db) {
  auto st = db.prepare("SELECT COUNT(*) FROM kv");
  EXPECT_TRUE(st.ok());
  EXPECT_TRUE(*st->step());
  return st->col_int(0);
}

TEST(Sqlite, MigratesOnceAndRemembersVersion) {
  testing::TempDir dir;
  {
    auto db = Db::open(dir / "a.db");
    ASSERT_TRUE(db.ok()) << db.error().message();
    ASSERT_TRUE(db->migrate(kSteps).ok());
    ASSERT_TRUE(db->exec("INSERT INTO kv (k, v, n) VALUES ('a', 'b', 1)").ok());
  }
  auto db = Db::open(dir / "a.db");
  ASSERT_TRUE(db.ok());
  // Re-running the same steps must be a no-op (ALTER TABLE would fail if re-applied).
  ASSERT_TRUE(db->migrate(kSteps).ok());
  EXPECT_EQ(count(*db), 1);
}

TEST(Sqlite, RefusesSchemaNewerThanBinary) {
  testing::TempDir dir;
  auto db = Db::open(dir / "a.db");
  ASSERT_TRUE(db.ok());
  ASSERT_TRUE(db->migrate(kSteps).ok());
  auto old_binary = std::vector<std::string>{kSteps[0]};
  auto st = db->migrate(old_binary);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.error().message().find("newer than this binary"), std::string::npos);
}

TEST(Sqlite, TransactionRollsBackUnlessCommitted) {
  auto db = Db::open(":memory:");
  ASSERT_TRUE(db.ok());
  ASSERT_TRUE(db->migrate(kSteps).ok());
  {
    Tx tx(*db);
    ASSERT_TRUE(tx.begun().ok());
    ASSERT_TRUE(db->exec("INSERT INTO kv (k, v) VALUES ('x', 'y')").ok());
  }
  EXPECT_EQ(count(*db), 0);
  {
    Tx tx(*db);
    ASSERT_TRUE(db->exec("INSERT INTO kv (k, v) VALUES ('x', 'y')").ok());
    ASSERT_TRUE(tx.commit().ok());
  }
  EXPECT_EQ(count(*db), 1);
}

TEST(Sqlite, NestedTransactionIsASavepointUndoingOnlyItsOwnPart) {
  testing::TempDir dir;
  {
    auto db = Db::open(dir / "a.db");
    ASSERT_TRUE(db.ok());
    ASSERT_TRUE(db->migrate(kSteps).ok());
    Tx outer(*db);
    ASSERT_TRUE(outer.begun().ok());
    ASSERT_TRUE(db->exec("INSERT INTO kv (k, v) VALUES ('kept', 'y')").ok());
    {
      Tx failed(*db);  // rolled back: only its own row goes
      ASSERT_TRUE(failed.begun().ok());
      ASSERT_TRUE(db->exec("INSERT INTO kv (k, v) VALUES ('undone', 'y')").ok());
      {
        Tx inner(*db);  // committed into `failed`, so undone with it
        ASSERT_TRUE(db->exec("INSERT INTO kv (k, v) VALUES ('undone-too', 'y')").ok());
        ASSERT_TRUE(inner.commit().ok());
      }
    }
    {
      Tx ok(*db);
      ASSERT_TRUE(db->exec("INSERT INTO kv (k, v) VALUES ('released', 'y')").ok());
      ASSERT_TRUE(ok.commit().ok());
    }
    EXPECT_TRUE(db->in_transaction());
    EXPECT_EQ(count(*db), 2);
    // No outer commit: a reopened database holds none of it.
  }
  auto db = Db::open(dir / "a.db");
  ASSERT_TRUE(db.ok());
  EXPECT_FALSE(db->in_transaction());
  EXPECT_EQ(count(*db), 0);
  {
    Tx outer(*db);
    {
      Tx inner(*db);
      ASSERT_TRUE(db->exec("INSERT INTO kv (k, v) VALUES ('a', 'b')").ok());
      ASSERT_TRUE(inner.commit().ok());
    }
    ASSERT_TRUE(outer.commit().ok());
  }
  auto reopened = Db::open(dir / "a.db");
  ASSERT_TRUE(reopened.ok());
  EXPECT_EQ(count(*reopened), 1);
}

TEST(Sqlite, BindsRoundTripBinaryBlobs) {
  auto db = Db::open(":memory:");
  ASSERT_TRUE(db.ok());
  ASSERT_TRUE(db->exec("CREATE TABLE b (id INTEGER, data BLOB)").ok());
  std::string blob("a\0b\xff", 4);
  auto ins = db->prepare("INSERT INTO b VALUES (?, ?)");
  ASSERT_TRUE(ins.ok());
  ins->bind(1, int64_t{7}).bind_blob(2, blob);
  ASSERT_TRUE(ins->run().ok());
  auto sel = db->prepare("SELECT id, data FROM b");
  ASSERT_TRUE(*sel->step());
  EXPECT_EQ(sel->col_int(0), 7);
  EXPECT_EQ(sel->col_text(1), blob);
}

TEST(Sqlite, ForEachRowVisitsEveryRowOrStopsAtTheFirstError) {
  auto db = Db::open(":memory:");
  ASSERT_TRUE(db.ok());
  ASSERT_TRUE(db->exec("CREATE TABLE n (v INTEGER); INSERT INTO n VALUES (1), (2), (3);").ok());
  auto q = db->prepare("SELECT v FROM n ORDER BY v");
  ASSERT_TRUE(q.ok());
  std::vector<int64_t> seen;
  ASSERT_TRUE(for_each_row(*q, [&] { seen.push_back(q->col_int(0)); }).ok());
  EXPECT_EQ(seen, (std::vector<int64_t>{1, 2, 3}));

  q->reset();
  seen.clear();
  Status st = for_each_row(*q, [&]() -> Status {
    seen.push_back(q->col_int(0));
    if (q->col_int(0) == 2) return Error("row 2 is bad");
    return Ok();
  });
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().message(), "row 2 is bad");
  EXPECT_EQ(seen, (std::vector<int64_t>{1, 2}));
}

TEST(Sqlite, CachedStatementsComeBackCleanAndMayBeUsedTwiceAtOnce) {
  auto db = Db::open(":memory:");
  ASSERT_TRUE(db.ok());
  ASSERT_TRUE(db->exec("CREATE TABLE n (v INTEGER); INSERT INTO n VALUES (1), (2);").ok());
  const std::string sql = "SELECT COUNT(*) FROM n WHERE v >= ?";
  {
    auto q = db->prepare(sql);
    ASSERT_TRUE(q.ok());
    q->bind(1, int64_t{2});
    ASSERT_TRUE(*q->step());
    EXPECT_EQ(q->col_int(0), 1);
    // Left mid-result on purpose: the cache must reset it.
  }
  {
    // Reused: no stale binding (NULL compares false) and no stale cursor.
    auto q = db->prepare(sql);
    ASSERT_TRUE(*q->step());
    EXPECT_EQ(q->col_int(0), 0);
    // A second live use of the same SQL gets its own statement.
    auto q2 = db->prepare(sql);
    q2->bind(1, int64_t{1});
    ASSERT_TRUE(*q2->step());
    EXPECT_EQ(q2->col_int(0), 2);
  }
  // Writes are visible to a cached reader (no snapshot held over from the earlier use).
  ASSERT_TRUE(db->exec("INSERT INTO n VALUES (3)").ok());
  auto q = db->prepare(sql);
  q->bind(1, int64_t{1});
  ASSERT_TRUE(*q->step());
  EXPECT_EQ(q->col_int(0), 3);
}

TEST(Sqlite, ReportsBadSqlClearly) {
  auto db = Db::open(":memory:");
  ASSERT_TRUE(db.ok());
  auto st = db->prepare("SELEC nonsense");
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.error().message().find("Failed to prepare SQL"), std::string::npos);
}

}  // namespace
}  // namespace flotilla::sql
