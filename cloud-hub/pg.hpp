// pg: a thin RAII layer over libpq, PostgreSQL's C client, for the hub's shared-database parts
// (shard_leases.hpp, and the store backend store_pg.hpp).
//
// Conn owns one connection. query() runs one statement with text parameters ($1, $2, ...; no SQL
// is ever built by pasting values in) and returns its rows as a Result; exec() runs a script of
// statements without parameters (schema steps). Every error names the statement that failed and
// carries PostgreSQL's own message: "Failed to run 'UPDATE shard_leases SET ...': ERROR: ...".
// A broken connection (server restarted, network cut) stays broken: broken() tells, and the owner
// connects again. Tx is a scope-bound transaction: commit() or it rolls back when it goes out of
// scope. prepare() and run_prepared() are for statements run many times (the store's): parsed and
// planned once per connection.
//
// Thread-safety: a Conn is used by one thread at a time (callers serialise).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/clock.hpp"
#include "common/expected.hpp"

struct pg_conn;
struct pg_result;

namespace flotilla::pg {

// One statement parameter in PostgreSQL's text form; nullopt is SQL NULL.
struct Param {
  Param(std::string v) : text(std::move(v)) {}    // NOLINT(google-explicit-constructor)
  Param(const char* v) : text(v) {}               // NOLINT(google-explicit-constructor)
  Param(int64_t v) : text(std::to_string(v)) {}   // NOLINT(google-explicit-constructor)
  Param(int v) : text(std::to_string(v)) {}       // NOLINT(google-explicit-constructor)
  Param(uint32_t v) : text(std::to_string(v)) {}  // NOLINT(google-explicit-constructor)
  Param(std::nullopt_t) {}                        // NOLINT(google-explicit-constructor)
  // Raw bytes sent in binary format, for a BYTEA parameter (no escaping, no text form).
  static Param bytes(std::string v) {
    Param p(std::move(v));
    p.binary = true;
    return p;
  }
  std::optional<std::string> text;
  bool binary = false;
};

// The rows of a successful query. Columns are 0-based; values are in PostgreSQL's text form.
class Result {
 public:
  int rows() const;
  int cols() const;
  bool is_null(int row, int col) const;
  std::string text(int row, int col) const;
  int64_t int64(int row, int col) const;  // 0 for NULL or text that is not a number
  // The value's bytes: text() for most types, the decoded bytes of a BYTEA.
  std::string bytes(int row, int col) const;
  // Rows an INSERT/UPDATE/DELETE touched.
  int64_t affected() const;
  // The command tag: "UPDATE 3", "COMMIT", or "ROLLBACK" for a COMMIT of a failed transaction.
  std::string command() const;

 private:
  friend class Conn;
  struct Free {
    void operator()(pg_result* r) const;
  };
  explicit Result(pg_result* r) : r_(r) {}
  std::unique_ptr<pg_result, Free> r_;
};

// A NOTIFY received on a channel this connection LISTENs to.
struct Notification {
  std::string channel;
  std::string payload;
  int sender_pid = 0;  // the sending session's backend process (see Conn::backend_pid)
};

struct ConnectOptions {
  int connect_timeout_s = 5;  // libpq connect_timeout, unless the conninfo sets its own
  // Server-side statement_timeout: a statement that runs longer is cancelled and fails.
  // 0: none.
  Millis statement_timeout{0};
};

class Conn {
 public:
  Conn() = default;
  ~Conn();
  Conn(const Conn&) = delete;
  Conn& operator=(const Conn&) = delete;
  Conn(Conn&& other) noexcept;
  Conn& operator=(Conn&& other) noexcept;

  // `conninfo`: a URI (postgresql://user@host:port/db) or key=value pairs, as libpq takes them.
  static Expected<Conn> connect(const std::string& conninfo, const ConnectOptions& options = {});

  Expected<Result> query(const std::string& sql, const std::vector<Param>& params = {});
  Status exec(const std::string& script);
  // Prepares `sql` as the named statement of this connection.
  Status prepare(const std::string& name, const std::string& sql);
  // Runs the named statement; errors name `sql`.
  Expected<Result> run_prepared(const std::string& name, const std::string& sql,
                                const std::vector<Param>& params);
  bool broken() const;
  // The connection's socket, to wait on with poll() for notifications; -1 when not connected.
  int socket() const;
  // The server process of this session: the sender_pid of the notifications it sends itself.
  int backend_pid() const;
  // Reads what the server has sent, without waiting, and returns the notifications received since
  // the last call (also those that arrived while a query ran). An error means the connection broke.
  Expected<std::vector<Notification>> notifications();
  // In a transaction block (also one a failed statement aborted).
  bool in_transaction() const;

 private:
  // The Result of `raw`, or the error naming `sql`.
  Expected<Result> checked(pg_result* raw, const std::string& sql);
  pg_conn* c_ = nullptr;
};

class Tx {
 public:
  // BEGIN, or BEGIN ISOLATION LEVEL SERIALIZABLE when `serializable`.
  explicit Tx(Conn& conn, bool serializable = false);
  ~Tx();  // ROLLBACK unless committed
  Tx(const Tx&) = delete;
  Tx& operator=(const Tx&) = delete;
  Status begun() const { return begun_; }
  Status commit();

 private:
  Conn& conn_;
  Status begun_;
  bool done_ = false;
};

}  // namespace flotilla::pg
