#include "cloud-hub/store_pg.hpp"

#include <algorithm>
#include <optional>
#include <unordered_map>

#include "cloud-hub/pg.hpp"

namespace flotilla::hub::db {
namespace {

// Held (per transaction) by schema creation and migrations: one at a time across instances.
constexpr const char* kSchemaLock = "SELECT pg_advisory_xact_lock(7310033592018468210)";
// The advisory lock namespace (first key) of a schema's transactions (second key: the schema's
// hash) and of the fleet lock (second key 0).
constexpr int32_t kLockSpace = 1718382700;

int32_t schema_key(const std::string& schema) {
  uint32_t h = 2166136261u;  // FNV-1a
  for (unsigned char c : schema) h = (h ^ c) * 16777619u;
  return static_cast<int32_t>(h | 1u);  // never 0, the fleet lock's
}

bool plain_name(const std::string& s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
  });
}

struct Prepared {
  std::string name;  // s1, s2, ...
  std::string sql;   // as PostgreSQL runs it ($N placeholders)
  int params = 0;
};

class PgConn;

class PgCursor final : public Cursor {
 public:
  PgCursor(PgConn* conn, const Prepared* p)
      : conn_(conn), p_(p), params_(static_cast<size_t>(p->params), pg::Param(std::nullopt)) {}
  void bind_int(int idx, int64_t v) override { set(idx, pg::Param(v)); }
  void bind_text(int idx, const std::string& v) override { set(idx, pg::Param(v)); }
  void bind_blob(int idx, const std::string& v) override { set(idx, pg::Param::bytes(v)); }
  void bind_null(int idx) override { set(idx, pg::Param(std::nullopt)); }
  Expected<bool> step() override;
  Status run() override;
  int64_t col_int(int idx) const override { return result_->int64(row_, idx); }
  std::string col_text(int idx) const override { return result_->bytes(row_, idx); }
  bool col_null(int idx) const override { return result_->is_null(row_, idx); }

 private:
  void set(int idx, pg::Param p) {
    if (idx >= 1 && idx <= static_cast<int>(params_.size())) params_[idx - 1] = std::move(p);
  }
  PgConn* conn_;
  const Prepared* p_;
  std::vector<pg::Param> params_;
  std::optional<pg::Result> result_;
  int row_ = -1;
};

class PgConn final : public Conn {
 public:
  PgConn(std::string conninfo, std::string schema, pg::Conn conn)
      : conninfo_(std::move(conninfo)),
        schema_(std::move(schema)),
        // Every write transaction of a schema holds its lock, taken first: hub instances sharing
        // the database take turns, as threads of one hub do under the shard's mutex (reads in the
        // transaction see every commit before it, never a write racing theirs).
        begin_sql_("BEGIN; SELECT pg_advisory_xact_lock(" + std::to_string(kLockSpace) + ", " +
                   std::to_string(schema_key(schema_)) + ")"),
        conn_(std::move(conn)) {}
  Backend backend() const override { return Backend::kPostgres; }
  std::string name() const override { return "PostgreSQL schema '" + schema_ + "'"; }

  Status exec(const std::string& script) override {
    if (auto st = ensure_connected(); !st) return st;
    return conn_.exec(script);
  }

  Expected<Stmt> prepare(const std::string& sql) override {
    if (auto st = ensure_connected(); !st) return st.error();
    auto it = prepared_.find(sql);
    if (it == prepared_.end()) {
      auto [text, params] = to_dollar_params(sql);
      Prepared p{"s" + std::to_string(prepared_.size() + 1), std::move(text), params};
      if (auto st = conn_.prepare(p.name, p.sql); !st) return st.error();
      it = prepared_.emplace(sql, std::move(p)).first;
    }
    return Stmt(std::make_unique<PgCursor>(this, &it->second));
  }

  Expected<pg::Result> run(const Prepared& p, const std::vector<pg::Param>& params) {
    auto r = conn_.run_prepared(p.name, p.sql, params);
    changes_ = r ? r->affected() : 0;
    return r;
  }

  int64_t changes() const override { return changes_; }
  bool in_transaction() const override { return in_tx_; }

  Status begin() override {
    if (auto st = ensure_connected(); !st) return st;
    if (auto st = conn_.exec(begin_sql_); !st) return st;
    in_tx_ = true;
    return Ok();
  }

  Status lock_fleet() override {
    if (auto st = ensure_connected(); !st) return st;
    return conn_.exec("SELECT pg_advisory_lock(" + std::to_string(kLockSpace) + ", 0)");
  }

  void unlock_fleet() override {
    // A broken connection released it with the session.
    (void)conn_.exec("SELECT pg_advisory_unlock(" + std::to_string(kLockSpace) + ", 0)");
  }

  Status commit() override {
    in_tx_ = false;
    auto result = conn_.query("COMMIT");
    if (!result) return result.error();
    // PostgreSQL answers the COMMIT of a transaction that already failed with a ROLLBACK.
    if (result->command() != "COMMIT") {
      return Error("Failed to run 'COMMIT' in " + name() +
                   ": the transaction had failed and was rolled back");
    }
    return Ok();
  }

  Status rollback() override {
    in_tx_ = false;
    return conn_.exec("ROLLBACK");
  }

  Status migrate(const std::vector<std::string>& steps) override {
    while (true) {
      pg::Tx tx(conn_);
      if (!tx.begun()) return tx.begun();
      if (auto st = conn_.exec(kSchemaLock); !st) return st;
      if (auto st = conn_.exec(
              "CREATE TABLE IF NOT EXISTS flotilla_schema_version (version BIGINT NOT NULL)");
          !st) {
        return st;
      }
      auto have = conn_.query("SELECT version FROM flotilla_schema_version");
      if (!have) return have.error();
      int64_t version = 0;
      if (have->rows() == 0) {
        if (auto st = conn_.exec("INSERT INTO flotilla_schema_version VALUES (0)"); !st) return st;
      } else {
        version = have->int64(0, 0);
      }
      if (version > static_cast<int64_t>(steps.size())) {
        return Error("Failed to open " + name() + ": schema version " + std::to_string(version) +
                     " is newer than this binary knows (" + std::to_string(steps.size()) + ")");
      }
      if (version == static_cast<int64_t>(steps.size())) return tx.commit();
      if (auto st = conn_.exec(steps[static_cast<size_t>(version)]); !st) {
        return st.error().WithContext("migration " + std::to_string(version + 1));
      }
      auto up = conn_.query("UPDATE flotilla_schema_version SET version = $1", {version + 1});
      if (!up) return up.error();
      if (auto st = tx.commit(); !st) return st;
    }
  }

  // Connects and selects the schema (creating it when missing).
  static Expected<pg::Conn> connect(const std::string& conninfo, const std::string& schema) {
    auto conn = pg::Conn::connect(conninfo);
    if (!conn) return conn.error();
    {
      pg::Tx tx(*conn);
      if (!tx.begun()) return tx.begun().error();
      if (auto st = conn->exec(kSchemaLock); !st) return st.error();
      if (auto st = conn->exec("CREATE SCHEMA IF NOT EXISTS " + schema); !st) return st.error();
      if (auto st = tx.commit(); !st) return st.error();
    }
    if (auto st = conn->exec("SET search_path TO " + schema); !st) return st.error();
    return conn;
  }

 private:
  // A connection broken outside a transaction is opened again; inside one it stays broken, so
  // that the transaction fails as a whole instead of going on in autocommit on a new connection.
  Status ensure_connected() {
    if (!conn_.broken() || in_tx_) return Ok();
    auto conn = connect(conninfo_, schema_);
    if (!conn) return conn.error().WithContext("Failed to reconnect " + name());
    conn_ = std::move(*conn);
    prepared_.clear();
    return Ok();
  }

  std::string conninfo_;
  std::string schema_;
  std::string begin_sql_;
  pg::Conn conn_;
  // By the store's SQL text. Node-based, so the cursors' pointers stay valid as it grows.
  std::unordered_map<std::string, Prepared> prepared_;
  int64_t changes_ = 0;
  bool in_tx_ = false;
};

Expected<bool> PgCursor::step() {
  if (!result_) {
    auto r = conn_->run(*p_, params_);
    if (!r) return r.error();
    result_ = std::move(*r);
    row_ = -1;
  }
  ++row_;
  return row_ < result_->rows();
}

Status PgCursor::run() {
  auto r = conn_->run(*p_, params_);
  result_.reset();
  if (!r) return r.error();
  return Ok();
}

}  // namespace

std::pair<std::string, int> to_dollar_params(const std::string& sql) {
  std::string out;
  out.reserve(sql.size() + 8);
  int next = 0;
  int most = 0;
  char quote = 0;  // ' or " while inside a quoted string or identifier
  for (size_t i = 0; i < sql.size(); ++i) {
    const char c = sql[i];
    if (quote != 0) {
      if (c == quote) quote = 0;  // a doubled quote closes and reopens: same result
      out += c;
      continue;
    }
    if (c == '\'' || c == '"') {
      quote = c;
      out += c;
      continue;
    }
    if (c != '?') {
      out += c;
      continue;
    }
    size_t j = i + 1;
    while (j < sql.size() && sql[j] >= '0' && sql[j] <= '9') ++j;
    const int n = j > i + 1 ? std::stoi(sql.substr(i + 1, j - i - 1)) : ++next;
    most = std::max(most, n);
    out += "$" + std::to_string(n);
    i = j - 1;
  }
  return {out, most};
}

Expected<std::unique_ptr<Conn>> open_postgres(const std::string& conninfo,
                                              const std::string& schema) {
  if (!plain_name(schema)) {
    return Error("Failed to open PostgreSQL schema '" + schema + "': use [a-z0-9_] only");
  }
  auto conn = PgConn::connect(conninfo, schema);
  if (!conn) return conn.error();
  return std::unique_ptr<Conn>(std::make_unique<PgConn>(conninfo, schema, std::move(*conn)));
}

Expected<std::set<std::string>> postgres_store_schemas(const std::string& conninfo) {
  auto conn = pg::Conn::connect(conninfo);
  if (!conn) return conn.error();
  auto rows = conn->query(
      "SELECT nspname FROM pg_namespace WHERE nspname = 'control' OR nspname LIKE 'shard\\_%'");
  if (!rows) return rows.error();
  std::set<std::string> out;
  for (int i = 0; i < rows->rows(); ++i) out.insert(rows->text(i, 0));
  return out;
}

}  // namespace flotilla::hub::db
