#include "cloud-hub/pg.hpp"

#include <libpq-fe.h>

#include <cstdlib>

namespace flotilla::pg {
namespace {

// The statement as an error names it: whitespace runs folded, long ones cut.
std::string statement_name(const std::string& sql) {
  std::string out;
  bool space = false;
  for (char ch : sql) {
    if (ch == ' ' || ch == '\n' || ch == '\t' || ch == '\r') {
      space = !out.empty();
      continue;
    }
    if (space) out += ' ';
    space = false;
    out += ch;
  }
  constexpr size_t kMax = 100;
  if (out.size() > kMax) out = out.substr(0, kMax) + "...";
  return out;
}

// libpq's messages end with a newline (and may hold several lines).
std::string trimmed(const char* message) {
  std::string out = message != nullptr ? message : "";
  while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
  return out.empty() ? "unknown error" : out;
}

Error statement_error(const std::string& sql, const std::string& cause) {
  return Error("Failed to run '" + statement_name(sql) + "': " + cause);
}

}  // namespace

void Result::Free::operator()(pg_result* r) const { PQclear(r); }

int Result::rows() const { return PQntuples(r_.get()); }
int Result::cols() const { return PQnfields(r_.get()); }
bool Result::is_null(int row, int col) const { return PQgetisnull(r_.get(), row, col) != 0; }
std::string Result::text(int row, int col) const {
  return std::string(PQgetvalue(r_.get(), row, col),
                     static_cast<size_t>(PQgetlength(r_.get(), row, col)));
}
int64_t Result::int64(int row, int col) const {
  if (is_null(row, col)) return 0;
  return std::strtoll(PQgetvalue(r_.get(), row, col), nullptr, 10);
}
std::string Result::bytes(int row, int col) const {
  constexpr Oid kByteaOid = 17;
  if (PQftype(r_.get(), col) != kByteaOid) return text(row, col);
  const char* v = PQgetvalue(r_.get(), row, col);
  const auto n = static_cast<size_t>(PQgetlength(r_.get(), row, col));
  if (n >= 2 && v[0] == '\\' && v[1] == 'x') {  // hex format, PostgreSQL's default since 9.0
    auto nibble = [](char c) -> int {
      if (c >= '0' && c <= '9') return c - '0';
      if (c >= 'a' && c <= 'f') return c - 'a' + 10;
      return c - 'A' + 10;
    };
    std::string out((n - 2) / 2, '\0');
    for (size_t i = 0; i < out.size(); ++i) {
      out[i] = static_cast<char>(nibble(v[2 + 2 * i]) << 4 | nibble(v[3 + 2 * i]));
    }
    return out;
  }
  size_t len = 0;  // the old escape format (bytea_output = escape)
  unsigned char* raw = PQunescapeBytea(reinterpret_cast<const unsigned char*>(v), &len);
  if (raw == nullptr) return std::string();
  std::string out(reinterpret_cast<const char*>(raw), len);
  PQfreemem(raw);
  return out;
}

int64_t Result::affected() const {
  const char* n = PQcmdTuples(r_.get());
  return n != nullptr && *n != '\0' ? std::strtoll(n, nullptr, 10) : 0;
}

std::string Result::command() const {
  const char* tag = PQcmdStatus(r_.get());
  return tag != nullptr ? tag : "";
}

Conn::~Conn() {
  if (c_ != nullptr) PQfinish(c_);
}
Conn::Conn(Conn&& other) noexcept : c_(other.c_) { other.c_ = nullptr; }
Conn& Conn::operator=(Conn&& other) noexcept {
  if (this != &other) {
    if (c_ != nullptr) PQfinish(c_);
    c_ = other.c_;
    other.c_ = nullptr;
  }
  return *this;
}

Expected<Conn> Conn::connect(const std::string& conninfo, const ConnectOptions& options) {
  // dbname is expanded as a whole conninfo string or URI. It comes last: what the caller wrote
  // there (a connect_timeout of its own) wins over these defaults.
  const std::string timeout = std::to_string(options.connect_timeout_s);
  const char* keys[] = {"connect_timeout", "fallback_application_name", "dbname", nullptr};
  const char* values[] = {timeout.c_str(), "flotilla-hub", conninfo.c_str(), nullptr};
  Conn conn;
  conn.c_ = PQconnectdbParams(keys, values, /*expand_dbname=*/1);
  if (conn.c_ == nullptr) return Error("Failed to connect to PostgreSQL: out of memory");
  if (PQstatus(conn.c_) != CONNECTION_OK) {
    // The conninfo may hold a password: name only the server libpq tried.
    const std::string host = PQhost(conn.c_) != nullptr ? PQhost(conn.c_) : "";
    const std::string port = PQport(conn.c_) != nullptr ? PQport(conn.c_) : "";
    const std::string at = host.empty() && port.empty() ? "" : " at '" + host + ":" + port + "'";
    return Error("Failed to connect to PostgreSQL" + at + ": " + trimmed(PQerrorMessage(conn.c_)));
  }
  // Notices (e.g. "relation already exists, skipping") are not errors; keep them out of stderr.
  PQsetNoticeProcessor(
      conn.c_, [](void*, const char*) {}, nullptr);
  if (options.statement_timeout.count() > 0) {
    // A session setting, so the caller's own `options=` in the conninfo stay as they were.
    auto st = conn.query("SELECT set_config('statement_timeout', $1, false)",
                         {std::to_string(options.statement_timeout.count())});
    if (!st) return st.error();
  }
  return conn;
}

Expected<Result> Conn::query(const std::string& sql, const std::vector<Param>& params) {
  if (c_ == nullptr) return statement_error(sql, "not connected");
  std::vector<const char*> values;
  values.reserve(params.size());
  for (const auto& p : params) values.push_back(p.text ? p.text->c_str() : nullptr);
  pg_result* raw = PQexecParams(c_, sql.c_str(), static_cast<int>(values.size()), nullptr,
                                values.data(), nullptr, nullptr, /*resultFormat=*/0);
  return checked(raw, sql);
}

Expected<Result> Conn::checked(pg_result* raw, const std::string& sql) {
  Result result(raw);
  if (raw == nullptr) return statement_error(sql, trimmed(PQerrorMessage(c_)));
  const ExecStatusType status = PQresultStatus(raw);
  if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) {
    return statement_error(sql, trimmed(PQresultErrorMessage(raw)));
  }
  return result;
}

Status Conn::prepare(const std::string& name, const std::string& sql) {
  if (c_ == nullptr) return statement_error(sql, "not connected");
  auto result = checked(PQprepare(c_, name.c_str(), sql.c_str(), 0, nullptr), sql);
  if (!result) return result.error();
  return Ok();
}

Expected<Result> Conn::run_prepared(const std::string& name, const std::string& sql,
                                    const std::vector<Param>& params) {
  if (c_ == nullptr) return statement_error(sql, "not connected");
  std::vector<const char*> values;
  std::vector<int> lengths;
  std::vector<int> formats;
  values.reserve(params.size());
  lengths.reserve(params.size());
  formats.reserve(params.size());
  for (const auto& p : params) {
    values.push_back(p.text ? p.text->data() : nullptr);
    lengths.push_back(p.text ? static_cast<int>(p.text->size()) : 0);
    formats.push_back(p.binary ? 1 : 0);
  }
  return checked(PQexecPrepared(c_, name.c_str(), static_cast<int>(values.size()), values.data(),
                                lengths.data(), formats.data(), /*resultFormat=*/0),
                 sql);
}

bool Conn::in_transaction() const {
  if (c_ == nullptr) return false;
  const PGTransactionStatusType t = PQtransactionStatus(c_);
  return t == PQTRANS_INTRANS || t == PQTRANS_INERROR || t == PQTRANS_ACTIVE;
}

Status Conn::exec(const std::string& script) {
  if (c_ == nullptr) return statement_error(script, "not connected");
  Result result(PQexec(c_, script.c_str()));
  if (!result.r_) return statement_error(script, trimmed(PQerrorMessage(c_)));
  const ExecStatusType status = PQresultStatus(result.r_.get());
  if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) {
    return statement_error(script, trimmed(PQresultErrorMessage(result.r_.get())));
  }
  return Ok();
}

bool Conn::broken() const { return c_ == nullptr || PQstatus(c_) != CONNECTION_OK; }

int Conn::socket() const { return c_ == nullptr ? -1 : PQsocket(c_); }

int Conn::backend_pid() const { return c_ == nullptr ? 0 : PQbackendPID(c_); }

Expected<std::vector<Notification>> Conn::notifications() {
  if (c_ == nullptr) return Error("Failed to read notifications: not connected");
  if (PQconsumeInput(c_) == 0) {
    return Error("Failed to read notifications: " + trimmed(PQerrorMessage(c_)));
  }
  std::vector<Notification> out;
  while (PGnotify* n = PQnotifies(c_)) {
    out.push_back(
        {n->relname != nullptr ? n->relname : "", n->extra != nullptr ? n->extra : "", n->be_pid});
    PQfreemem(n);
  }
  return out;
}

Tx::Tx(Conn& conn, bool serializable) : conn_(conn) {
  begun_ = conn_.exec(serializable ? "BEGIN ISOLATION LEVEL SERIALIZABLE" : "BEGIN");
  done_ = !begun_;
}

Tx::~Tx() {
  if (!done_) (void)conn_.exec("ROLLBACK");
}

Status Tx::commit() {
  if (!begun_) return begun_;
  done_ = true;
  auto result = conn_.query("COMMIT");
  if (!result) return result.error();
  // PostgreSQL answers the COMMIT of a transaction that already failed with a ROLLBACK.
  if (result->command() != "COMMIT") {
    return Error("Failed to run 'COMMIT': the transaction had failed and was rolled back");
  }
  return Ok();
}

}  // namespace flotilla::pg
