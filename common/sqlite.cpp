#include "common/sqlite.hpp"

#include <sqlite3.h>

#include <utility>

namespace flotilla::sql {

Db::~Db() {
  finalize_idle();
  if (db_ != nullptr) sqlite3_close_v2(db_);
}
Db::Db(Db&& other) noexcept
    : db_(std::exchange(other.db_, nullptr)),
      path_(std::move(other.path_)),
      idle_(std::move(other.idle_)) {
  other.idle_.clear();
}
Db& Db::operator=(Db&& other) noexcept {
  if (this != &other) {
    finalize_idle();
    if (db_ != nullptr) sqlite3_close_v2(db_);
    db_ = std::exchange(other.db_, nullptr);
    path_ = std::move(other.path_);
    idle_ = std::move(other.idle_);
    other.idle_.clear();
  }
  return *this;
}

void Db::finalize_idle() {
  for (auto& [sql, s] : idle_) sqlite3_finalize(s);
  idle_.clear();
}

std::string Db::error_text() const { return db_ ? sqlite3_errmsg(db_) : "no database"; }

Expected<Db> Db::open(const std::string& path, bool full_sync) {
  Db db;
  db.path_ = path;
  int rc =
      sqlite3_open_v2(path.c_str(), &db.db_,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
  if (rc != SQLITE_OK) {
    return Error("Failed to open database '" + path + "': " + db.error_text());
  }
  sqlite3_busy_timeout(db.db_, 5000);
  std::string pragmas = "PRAGMA journal_mode=WAL; PRAGMA foreign_keys=ON; PRAGMA synchronous=";
  pragmas += full_sync ? "FULL;" : "NORMAL;";
  if (auto st = db.exec(pragmas); !st) return st.error().WithContext("database '" + path + "'");
  return db;
}

Status Db::exec(const std::string& sql) {
  char* err = nullptr;
  int rc = sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &err);
  if (rc != SQLITE_OK) {
    std::string msg = err ? err : error_text();
    sqlite3_free(err);
    return Error("Failed to execute SQL: " + msg);
  }
  return Ok();
}

Expected<Stmt> Db::prepare(const std::string& sql) {
  if (auto it = idle_.find(sql); it != idle_.end()) {
    sqlite3_stmt* cached = it->second;
    idle_.erase(it);
    return Stmt(this, cached, sql);
  }
  sqlite3_stmt* s = nullptr;
  int rc = sqlite3_prepare_v2(db_, sql.c_str(), static_cast<int>(sql.size()), &s, nullptr);
  if (rc != SQLITE_OK) {
    sqlite3_finalize(s);
    return Error("Failed to prepare SQL '" + sql + "': " + error_text());
  }
  return Stmt(this, s, sql);
}

Status Db::migrate(const std::vector<std::string>& steps) {
  auto ver = prepare("PRAGMA user_version");
  if (!ver) return ver.error();
  auto row = ver->step();
  if (!row) return row.error();
  int64_t have = ver->col_int(0);
  ver->reset();
  if (have > static_cast<int64_t>(steps.size())) {
    return Error("Failed to open database '" + path_ + "': schema version " + std::to_string(have) +
                 " is newer than this binary knows (" + std::to_string(steps.size()) + ")");
  }
  for (size_t i = static_cast<size_t>(have); i < steps.size(); ++i) {
    Tx tx(*this);
    if (!tx.begun()) return tx.begun();
    if (auto st = exec(steps[i]); !st)
      return st.error().WithContext("migration " + std::to_string(i + 1));
    if (auto st = exec("PRAGMA user_version=" + std::to_string(i + 1)); !st) return st;
    if (auto st = tx.commit(); !st) return st;
  }
  return Ok();
}

int64_t Db::last_insert_rowid() const { return sqlite3_last_insert_rowid(db_); }
int Db::changes() const { return sqlite3_changes(db_); }

Stmt::~Stmt() { release(); }
Stmt::Stmt(Stmt&& other) noexcept
    : db_(other.db_), s_(std::exchange(other.s_, nullptr)), sql_(std::move(other.sql_)) {}
Stmt& Stmt::operator=(Stmt&& other) noexcept {
  if (this != &other) {
    release();
    db_ = other.db_;
    s_ = std::exchange(other.s_, nullptr);
    sql_ = std::move(other.sql_);
  }
  return *this;
}

void Stmt::release() {
  if (s_ == nullptr) return;
  sqlite3_stmt* s = std::exchange(s_, nullptr);
  if (db_ == nullptr || db_->db_ == nullptr || db_->idle_.count(sql_) > 0) {
    sqlite3_finalize(s);
    return;
  }
  sqlite3_reset(s);
  sqlite3_clear_bindings(s);
  db_->idle_.emplace(std::move(sql_), s);
}

Stmt& Stmt::bind(int idx, int64_t v) {
  sqlite3_bind_int64(s_, idx, v);
  return *this;
}
Stmt& Stmt::bind(int idx, const std::string& v) {
  sqlite3_bind_text(s_, idx, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
  return *this;
}
Stmt& Stmt::bind_blob(int idx, const std::string& v) {
  sqlite3_bind_blob(s_, idx, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
  return *this;
}
Stmt& Stmt::bind_null(int idx) {
  sqlite3_bind_null(s_, idx);
  return *this;
}

Expected<bool> Stmt::step() {
  int rc = sqlite3_step(s_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  return Error(std::string("Failed to execute statement: ") +
               sqlite3_errmsg(sqlite3_db_handle(s_)));
}

Status Stmt::run() {
  while (true) {
    auto r = step();
    if (!r) {
      reset();
      return r.error();
    }
    if (!*r) break;
  }
  reset();
  return Ok();
}

void Stmt::reset() {
  sqlite3_reset(s_);
  sqlite3_clear_bindings(s_);
}

int64_t Stmt::col_int(int idx) const { return sqlite3_column_int64(s_, idx); }
std::string Stmt::col_text(int idx) const {
  const void* p = sqlite3_column_blob(s_, idx);
  int n = sqlite3_column_bytes(s_, idx);
  return p ? std::string(static_cast<const char*>(p), static_cast<size_t>(n)) : std::string();
}
bool Stmt::col_null(int idx) const { return sqlite3_column_type(s_, idx) == SQLITE_NULL; }

bool Db::in_transaction() const { return db_ != nullptr && sqlite3_get_autocommit(db_) == 0; }

Tx::Tx(Db& db)
    : db_(db),
      nested_(db.in_transaction()),
      begun_(db.exec(nested_ ? "SAVEPOINT nested_tx" : "BEGIN IMMEDIATE")) {}
Tx::~Tx() {
  if (begun_ && !done_) {
    // Savepoints with one name nest: these act on the innermost, this Tx's own.
    (void)db_.exec(nested_ ? "ROLLBACK TO nested_tx; RELEASE nested_tx" : "ROLLBACK");
  }
}
Status Tx::commit() {
  if (!begun_) return begun_;
  done_ = true;
  return db_.exec(nested_ ? "RELEASE nested_tx" : "COMMIT");
}

}  // namespace flotilla::sql
