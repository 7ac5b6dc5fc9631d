// The libpq wrapper (cloud-hub/pg.hpp) against a real PostgreSQL.
#include "cloud-hub/pg.hpp"

#include <gtest/gtest.h>

#include "test/support/postgres.hpp"
#include "test/support/temp_dir.hpp"

namespace flotilla::pg {
namespace {

using testing::Postgres;

class PgTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (auto why = Postgres::unavailable_reason(); !why.empty()) GTEST_SKIP() << why;
    auto st = server_.start();
    ASSERT_TRUE(st) << st.error().message();
    auto info = server_.create_database("pgtest");
    ASSERT_TRUE(info) << info.error().message();
    auto conn = Conn::connect(*info);
    ASSERT_TRUE(conn) << conn.error().message();
    conn_ = std::move(*conn);
    ASSERT_TRUE(conn_.exec("CREATE TABLE t (id integer PRIMARY KEY, name text, n bigint)"));
  }

  int64_t count() {
    auto r = conn_.query("SELECT count(*) FROM t");
    EXPECT_TRUE(r) << r.error().message();
    return r ? r->int64(0, 0) : -1;
  }

  Postgres server_;
  Conn conn_;
};

TEST_F(PgTest, ParametersTravelAsValuesNotAsSql) {
  const std::string tricky = "O'Brien'); DROP TABLE t; --";
  auto ins = conn_.query("INSERT INTO t VALUES ($1, $2, $3), ($4, $5, $6)",
                         {1, tricky, int64_t{1} << 40, 2, std::nullopt, std::nullopt});
  ASSERT_TRUE(ins) << ins.error().message();
  EXPECT_EQ(ins->affected(), 2);
  auto rows = conn_.query("SELECT id, name, n FROM t ORDER BY id");
  ASSERT_TRUE(rows) << rows.error().message();
  ASSERT_EQ(rows->rows(), 2);
  EXPECT_EQ(rows->text(0, 1), tricky);
  EXPECT_EQ(rows->int64(0, 2), int64_t{1} << 40);
  EXPECT_TRUE(rows->is_null(1, 1));
  EXPECT_TRUE(rows->is_null(1, 2));
  EXPECT_FALSE(rows->is_null(0, 1));
}

TEST_F(PgTest, ErrorsNameTheFailedStatementAndTheServersReason) {
  auto bad = conn_.query("SELEC id FROM t");
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message().find("Failed to run 'SELEC id FROM t'"), std::string::npos)
      << bad.error().message();
  EXPECT_NE(bad.error().message().find("syntax error"), std::string::npos) << bad.error().message();

  ASSERT_TRUE(conn_.query("INSERT INTO t(id) VALUES ($1)", {7}));
  auto dup = conn_.query("INSERT INTO t(id) VALUES ($1)", {7});
  ASSERT_FALSE(dup);
  EXPECT_NE(dup.error().message().find("duplicate key"), std::string::npos)
      << dup.error().message();
  // The connection is still good after a failed statement.
  EXPECT_FALSE(conn_.broken());
  EXPECT_EQ(count(), 1);
}

TEST_F(PgTest, TransactionRollsBackUnlessCommitted) {
  {
    Tx tx(conn_);
    ASSERT_TRUE(tx.begun());
    ASSERT_TRUE(conn_.query("INSERT INTO t(id) VALUES (1)"));
  }
  EXPECT_EQ(count(), 0);
  {
    Tx tx(conn_);
    ASSERT_TRUE(conn_.query("INSERT INTO t(id) VALUES (1)"));
    ASSERT_TRUE(tx.commit());
  }
  EXPECT_EQ(count(), 1);
}

TEST_F(PgTest, CommittingATransactionWhoseStatementFailedIsAnErrorAndKeepsNothing) {
  Tx tx(conn_);
  ASSERT_TRUE(conn_.query("INSERT INTO t(id) VALUES (1)"));
  ASSERT_FALSE(conn_.query("INSERT INTO t(id) VALUES (1)"));  // duplicate: the tx is aborted
  auto st = tx.commit();
  ASSERT_FALSE(st);
  EXPECT_NE(st.error().message().find("rolled back"), std::string::npos) << st.error().message();
  EXPECT_EQ(count(), 0);
}

TEST_F(PgTest, LostServerBreaksTheConnectionAndConnectingAgainWorksOnceItIsBack) {
  server_.kill9();
  auto r = conn_.query("SELECT 1");
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message().find("Failed to run 'SELECT 1'"), std::string::npos);
  EXPECT_TRUE(conn_.broken());

  auto refused = Conn::connect(server_.conninfo("pgtest"));
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().message().find("127.0.0.1:" + std::to_string(server_.port())),
            std::string::npos)
      << refused.error().message();

  ASSERT_TRUE(server_.start());
  auto again = Conn::connect(server_.conninfo("pgtest"));
  ASSERT_TRUE(again) << again.error().message();
  auto one = again->query("SELECT 1");
  ASSERT_TRUE(one) << one.error().message();
  EXPECT_EQ(one->int64(0, 0), 1);
}

TEST_F(PgTest, StatementTimeoutCancelsALongStatement) {
  ConnectOptions options;
  options.statement_timeout = Millis(200);
  auto conn = Conn::connect(server_.conninfo("pgtest"), options);
  ASSERT_TRUE(conn) << conn.error().message();
  auto slow = conn->query("SELECT pg_sleep(5)");
  ASSERT_FALSE(slow);
  EXPECT_NE(slow.error().message().find("statement timeout"), std::string::npos)
      << slow.error().message();
  // Without one, the same statement may take its time.
  auto patient = conn_.query("SELECT pg_sleep(0.3)");
  EXPECT_TRUE(patient) << patient.error().message();
}

TEST(PgConnect, UnreachableServerIsAClearError) {
  const int port = testing::free_port();
  auto conn = Conn::connect("postgresql://flotilla@127.0.0.1:" + std::to_string(port) + "/nothing");
  ASSERT_FALSE(conn);
  EXPECT_NE(conn.error().message().find(
                "Failed to connect to PostgreSQL at '127.0.0.1:" + std::to_string(port) + "'"),
            std::string::npos)
      << conn.error().message();
}

}  // namespace
}  // namespace flotilla::pg
