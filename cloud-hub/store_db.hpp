// store::db: the SQL connection the hub's Store runs on, SQLite (a file in the data folder) or
// PostgreSQL (one schema of a shared database, store_pg.hpp), so that each store query is written
// once.
//
// Conn is one connection. prepare() hands out a Stmt with typed binds (1-based, `?` or `?N`
// placeholders; the PostgreSQL side rewrites them to `$N`) and column reads (0-based); both
// backends keep each statement compiled and hand it out again. exec() runs a script without
// parameters. Tx is a scope-bound transaction as sql::Tx: commit() or it rolls back; one begun
// inside another is a savepoint. migrate() applies the backend's numbered schema steps in order,
// each in one transaction, and records the version (SQLite: PRAGMA user_version; PostgreSQL: a
// table in the schema).
//
// Where the dialects differ, the store writes what both accept: ON CONFLICT ... DO UPDATE instead
// of INSERT OR REPLACE, RETURNING instead of last_insert_rowid(), CASE instead of the two-argument
// MAX(), 1 = 1 instead of a bare 1. On PostgreSQL, an error inside a transaction aborts it: the
// store never continues a transaction after a failed statement (it returns the error and the Tx
// rolls back).
//
// Thread-safety: a Conn is used by one thread at a time (callers serialise).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

#include "common/expected.hpp"

namespace flotilla::hub::db {

// One backend's prepared statement in use.
class Cursor {
 public:
  virtual ~Cursor() = default;
  virtual void bind_int(int idx, int64_t v) = 0;
  virtual void bind_text(int idx, const std::string& v) = 0;
  virtual void bind_blob(int idx, const std::string& v) = 0;
  virtual void bind_null(int idx) = 0;
  virtual Expected<bool> step() = 0;
  virtual Status run() = 0;
  virtual int64_t col_int(int idx) const = 0;
  virtual std::string col_text(int idx) const = 0;  // TEXT, or BLOB/BYTEA bytes
  virtual bool col_null(int idx) const = 0;
};

class Stmt {
 public:
  explicit Stmt(std::unique_ptr<Cursor> cursor) : c_(std::move(cursor)) {}
  Stmt& bind(int idx, int64_t v) {
    c_->bind_int(idx, v);
    return *this;
  }
  Stmt& bind(int idx, const std::string& v) {
    c_->bind_text(idx, v);
    return *this;
  }
  Stmt& bind_blob(int idx, const std::string& v) {
    c_->bind_blob(idx, v);
    return *this;
  }
  Stmt& bind_null(int idx) {
    c_->bind_null(idx);
    return *this;
  }
  // Steps once: true when a row is ready, false when done; Error on failure.
  Expected<bool> step() { return c_->step(); }
  // Runs to completion (INSERT/UPDATE/DELETE).
  Status run() { return c_->run(); }
  int64_t col_int(int idx) const { return c_->col_int(idx); }
  std::string col_text(int idx) const { return c_->col_text(idx); }
  bool col_null(int idx) const { return c_->col_null(idx); }

 private:
  std::unique_ptr<Cursor> c_;
};

// Steps `stmt` to its end and calls `on_row()` once per row; a callback returning Status stops
// the walk at its first error (as sql::for_each_row, for this Stmt).
template <typename F>
Status for_each_row(Stmt& stmt, F&& on_row) {
  Expected<bool> row = stmt.step();
  for (; row && *row; row = stmt.step()) {
    if constexpr (std::is_void_v<std::invoke_result_t<F>>) {
      on_row();
    } else if (Status st = on_row(); !st) {
      return st;
    }
  }
  return row ? Ok() : Status(row.error());
}

enum class Backend { kSqlite, kPostgres };

class Conn {
 public:
  virtual ~Conn() = default;
  virtual Backend backend() const = 0;
  // What the connection is, for errors: the SQLite path, or "PostgreSQL schema 'shard_07'".
  virtual std::string name() const = 0;
  virtual Status exec(const std::string& script) = 0;
  virtual Expected<Stmt> prepare(const std::string& sql) = 0;
  // Rows changed by the last INSERT/UPDATE/DELETE run.
  virtual int64_t changes() const = 0;
  virtual bool in_transaction() const = 0;
  // BEGIN (SQLite: BEGIN IMMEDIATE, taking the write lock at once).
  virtual Status begin() = 0;
  // COMMIT; an error when the database rolled the transaction back instead.
  virtual Status commit() = 0;
  virtual Status rollback() = 0;
  // Applies steps[i] for every i >= the stored version, each in one transaction.
  virtual Status migrate(const std::vector<std::string>& steps) = 0;
  // The fleet lock: held by one connection (one hub instance) at a time, across every store of
  // the database, while it does fleet-wide work (scheduling) over several transactions; it
  // nests. SQLite: nothing to do (one hub process per data folder).
  virtual Status lock_fleet() { return Ok(); }
  virtual void unlock_fleet() {}
};

// A scope-bound transaction, or a savepoint inside one.
class Tx {
 public:
  explicit Tx(Conn& conn)
      : conn_(conn),
        nested_(conn.in_transaction()),
        begun_(nested_ ? conn.exec("SAVEPOINT nested_tx") : conn.begin()) {}
  ~Tx() {
    if (begun_ && !done_) {
      // Savepoints with one name nest: these act on the innermost, this Tx's own.
      (void)(nested_ ? conn_.exec("ROLLBACK TO nested_tx; RELEASE nested_tx") : conn_.rollback());
    }
  }
  Tx(const Tx&) = delete;
  Tx& operator=(const Tx&) = delete;
  Status begun() const { return begun_; }
  bool nested() const { return nested_; }
  Status commit() {
    if (!begun_) return begun_;
    done_ = true;
    return nested_ ? conn_.exec("RELEASE nested_tx") : conn_.commit();
  }

 private:
  Conn& conn_;
  bool nested_;
  Status begun_;
  bool done_ = false;
};

// INSERT INTO `table` (`columns`) VALUES (?, ...) ON CONFLICT (its first `keys` columns) DO UPDATE
// SET every other column: INSERT OR REPLACE in the syntax both backends accept. `columns` is a
// list "a, b, c".
std::string upsert_sql(const std::string& table, const std::string& columns, int keys);

// PostgreSQL (several hub instances, docs/multi-hub.md): inside the current transaction, whether
// `owner` still holds the lease of `shard` under `epoch`, unexpired by the database's clock. The
// lease row stays share-locked until the transaction ends, so no other instance can take the
// shard over before it committed or rolled back. An error: it does not.
Status check_lease(Conn& conn, uint32_t shard, const std::string& owner, int64_t epoch);

// A SQLite database file (created if missing); ":memory:" for tests.
// `full_sync`: every commit is synced to disk before it returns (sql::Db::open).
Expected<std::unique_ptr<Conn>> open_sqlite(const std::string& path, bool full_sync = false);

}  // namespace flotilla::hub::db
