// A thin RAII layer over SQLite used by the agent's and the hub's stores.
//
// Db owns one connection (WAL, synchronous=NORMAL by default -- FULL where asked, foreign keys
// on, busy timeout). Stmt is a prepared statement with typed binds and column reads. Compiling
// SQL costs more than running most of our statements, so Db keeps each compiled statement and
// prepare() hands it out again (reset, bindings cleared); a Stmt returns it when destroyed.
// A Stmt must not outlive its Db.
// Tx is a scope-bound transaction: commit() or it rolls back when it goes out of scope, so every
// state change is exactly one transaction. A Tx begun inside another is a savepoint: rolling it
// back undoes only its own part, and nothing is durable before the outermost commit (so callers
// can group many state changes into one commit). migrate() applies numbered schema steps in order
// and records the version in PRAGMA user_version, each step in its own transaction.
//
// Thread-safety: a Db is used by one thread at a time (callers serialise).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <type_traits>
#include <unordered_map>
#include <vector>

#include "common/expected.hpp"

struct sqlite3;
struct sqlite3_stmt;

namespace flotilla::sql {

class Stmt;

class Db {
 public:
  Db() = default;
  ~Db();
  Db(const Db&) = delete;
  Db& operator=(const Db&) = delete;
  Db(Db&& other) noexcept;
  Db& operator=(Db&& other) noexcept;

  // Opens (creating if needed) the database at `path`; ":memory:" for tests.
  static Expected<Db> open(const std::string& path, bool full_sync = false);

  Status exec(const std::string& sql);
  Expected<Stmt> prepare(const std::string& sql);

  // Applies steps[i] for every i >= the stored user_version, each in one transaction.
  Status migrate(const std::vector<std::string>& steps);
  int64_t last_insert_rowid() const;
  int changes() const;
  bool in_transaction() const;
  const std::string& path() const { return path_; }

 private:
  friend class Stmt;
  std::string error_text() const;
  void finalize_idle();
  sqlite3* db_ = nullptr;
  std::string path_;
  // Compiled statements not in use, by SQL text (one each; a second concurrent use of the same
  // SQL compiles its own and finalizes it when done).
  std::unordered_map<std::string, sqlite3_stmt*> idle_;
};

class Stmt {
 public:
  Stmt() = default;
  ~Stmt();
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;
  Stmt(Stmt&& other) noexcept;
  Stmt& operator=(Stmt&& other) noexcept;

  // Binds are 1-based, like SQLite's.
  Stmt& bind(int idx, int64_t v);
  Stmt& bind(int idx, const std::string& v);  // bound as TEXT
  Stmt& bind_blob(int idx, const std::string& v);
  Stmt& bind_null(int idx);

  // Steps once: true when a row is ready, false when done; Error on failure.
  Expected<bool> step();
  // Runs to completion (for INSERT/UPDATE/DELETE).
  Status run();
  void reset();

  int64_t col_int(int idx) const;
  std::string col_text(int idx) const;  // TEXT or BLOB bytes
  bool col_null(int idx) const;

 private:
  friend class Db;
  Stmt(Db* db, sqlite3_stmt* s, std::string sql) : db_(db), s_(s), sql_(std::move(sql)) {}
  void release();  // back to the Db's cache, or finalized
  Db* db_ = nullptr;
  sqlite3_stmt* s_ = nullptr;
  std::string sql_;
};

// Steps `stmt` to its end and calls `on_row()` once per row; the callback reads the row through
// the statement. A callback returning Status stops the walk at its first error, which is
// returned; a void callback sees every row.
template <typename F>
Status for_each_row(Stmt& stmt, F&& on_row) {
  while (true) {
    auto row = stmt.step();
    if (!row) return row.error();
    if (!*row) return Ok();
    if constexpr (std::is_void_v<std::invoke_result_t<F>>) {
      on_row();
    } else {
      if (Status st = on_row(); !st) return st;
    }
  }
}

class Tx {
 public:
  explicit Tx(Db& db);  // BEGIN IMMEDIATE, or SAVEPOINT inside a transaction
  ~Tx();                // ROLLBACK (TO the savepoint) unless committed
  Tx(const Tx&) = delete;
  Tx& operator=(const Tx&) = delete;
  Status begun() const { return begun_; }
  Status commit();

 private:
  Db& db_;
  bool nested_;
  Status begun_;
  bool done_ = false;
};

}  // namespace flotilla::sql
