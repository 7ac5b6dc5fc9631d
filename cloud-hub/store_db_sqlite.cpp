// store::db over SQLite: common/sqlite.hpp's Db and Stmt behind the store's connection interface.
#include "cloud-hub/store_db.hpp"
#include "common/sqlite.hpp"

namespace flotilla::hub::db {
namespace {

class SqliteCursor final : public Cursor {
 public:
  explicit SqliteCursor(sql::Stmt s) : s_(std::move(s)) {}
  void bind_int(int idx, int64_t v) override { s_.bind(idx, v); }
  void bind_text(int idx, const std::string& v) override { s_.bind(idx, v); }
  void bind_blob(int idx, const std::string& v) override { s_.bind_blob(idx, v); }
  void bind_null(int idx) override { s_.bind_null(idx); }
  Expected<bool> step() override { return s_.step(); }
  Status run() override { return s_.run(); }
  int64_t col_int(int idx) const override { return s_.col_int(idx); }
  std::string col_text(int idx) const override { return s_.col_text(idx); }
  bool col_null(int idx) const override { return s_.col_null(idx); }

 private:
  sql::Stmt s_;
};

class SqliteConn final : public Conn {
 public:
  explicit SqliteConn(sql::Db db) : db_(std::move(db)) {}
  Backend backend() const override { return Backend::kSqlite; }
  std::string name() const override { return db_.path(); }
  Status exec(const std::string& script) override { return db_.exec(script); }
  Expected<Stmt> prepare(const std::string& sql) override {
    auto s = db_.prepare(sql);
    if (!s) return s.error();
    return Stmt(std::make_unique<SqliteCursor>(std::move(*s)));
  }
  int64_t changes() const override { return db_.changes(); }
  bool in_transaction() const override { return db_.in_transaction(); }
  Status begin() override { return db_.exec("BEGIN IMMEDIATE"); }
  Status commit() override { return db_.exec("COMMIT"); }
  Status rollback() override { return db_.exec("ROLLBACK"); }
  Status migrate(const std::vector<std::string>& steps) override { return db_.migrate(steps); }

 private:
  sql::Db db_;
};

}  // namespace

Status check_lease(Conn& conn, uint32_t shard, const std::string& owner, int64_t epoch) {
  auto s = conn.prepare(
      "SELECT 1 FROM public.flotilla_shard_leases WHERE shard = ? AND owner = ? AND epoch = ? "
      "AND expires_at > clock_timestamp() FOR SHARE");
  if (!s) return s.error();
  s->bind(1, static_cast<int64_t>(shard));
  s->bind(2, owner);
  s->bind(3, epoch);
  auto row = s->step();
  if (!row) return row.error();
  if (!*row) {
    return Error("the lease of shard " + std::to_string(shard) + " under epoch " +
                 std::to_string(epoch) + " is not '" + owner + "''s any more");
  }
  return Ok();
}

std::string upsert_sql(const std::string& table, const std::string& columns, int keys) {
  std::vector<std::string> names;
  for (size_t start = 0; start <= columns.size();) {
    size_t comma = columns.find(',', start);
    if (comma == std::string::npos) comma = columns.size();
    std::string name = columns.substr(start, comma - start);
    name.erase(0, name.find_first_not_of(' '));
    name.erase(name.find_last_not_of(' ') + 1);
    names.push_back(name);
    start = comma + 1;
  }
  std::string values;
  std::string key;
  std::string set;
  for (size_t i = 0; i < names.size(); ++i) {
    values += i == 0 ? "?" : ", ?";
    if (static_cast<int>(i) < keys) {
      key += (key.empty() ? "" : ", ") + names[i];
    } else {
      set += (set.empty() ? "" : ", ") + names[i] + " = excluded." + names[i];
    }
  }
  return "INSERT INTO " + table + " (" + columns + ") VALUES (" + values + ") ON CONFLICT (" + key +
         ") DO UPDATE SET " + set;
}

Expected<std::unique_ptr<Conn>> open_sqlite(const std::string& path, bool full_sync) {
  auto db = sql::Db::open(path, full_sync);
  if (!db) return db.error();
  return std::unique_ptr<Conn>(std::make_unique<SqliteConn>(std::move(*db)));
}

}  // namespace flotilla::hub::db
