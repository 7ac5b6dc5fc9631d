#include "cloud-hub/audit_log.hpp"

#include <ctime>

namespace flotilla::hub {
namespace {

using json = nlohmann::json;

// The columns after the id, the same in both backends. before/after: JSON; NULL: absent.
// time: UTC ISO 8601.
constexpr const char* kColumns = R"(
  time TEXT NOT NULL,
  who TEXT NOT NULL,
  role TEXT NOT NULL,
  method TEXT NOT NULL,
  target TEXT NOT NULL,
  kind TEXT NOT NULL,
  name TEXT NOT NULL,
  status INTEGER NOT NULL,
  before TEXT,
  after TEXT
);
)";

const std::vector<std::string> kSqliteMigrations = {
    std::string("CREATE TABLE audit (id INTEGER PRIMARY KEY AUTOINCREMENT,") + kColumns + R"(
CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
  BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
  BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
)"};

// The same in PostgreSQL (schema "audit"). Appends take the schema's transaction lock
// (db::Conn::begin), so ids grow in commit order across hub instances and a reader going on
// from an id misses none.
const std::vector<std::string> kPostgresMigrations = {
    std::string("CREATE TABLE audit (id BIGSERIAL PRIMARY KEY,") + kColumns + R"(
CREATE FUNCTION audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
  BEGIN RAISE EXCEPTION 'the audit log is append-only'; END $$;
CREATE TRIGGER audit_no_change BEFORE UPDATE OR DELETE ON audit
  FOR EACH ROW EXECUTE FUNCTION audit_append_only();
CREATE TRIGGER audit_no_truncate BEFORE TRUNCATE ON audit
  FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();
)"};

void bind_json(db::Stmt& stmt, int idx, const json& j) {
  if (j.is_null()) {
    stmt.bind_null(idx);
  } else {
    stmt.bind(idx, j.dump());
  }
}

json col_json(const db::Stmt& stmt, int idx) {
  if (stmt.col_null(idx)) return nullptr;
  json j = json::parse(stmt.col_text(idx), nullptr, false);
  return j.is_discarded() ? json(stmt.col_text(idx)) : j;
}

}  // namespace

std::string utc_time(int64_t unix_ms) {
  const time_t secs = static_cast<time_t>(unix_ms / 1000);
  struct tm tm {};
  gmtime_r(&secs, &tm);
  char buf[96];
  std::snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                static_cast<int>(unix_ms % 1000));
  return buf;
}

json audit_json(const AuditRecord& r) {
  return {{"id", r.id},         {"time", r.time},     {"who", r.who},    {"role", r.role},
          {"method", r.method}, {"target", r.target}, {"kind", r.kind},  {"name", r.name},
          {"status", r.status}, {"before", r.before}, {"after", r.after}};
}

Expected<std::unique_ptr<AuditLog>> AuditLog::open(const std::string& path) {
  auto db = db::open_sqlite(path, /*full_sync=*/true);
  if (!db) return db.error().WithContext("Failed to open audit log '" + path + "'");
  return open(std::move(*db));
}

Expected<std::unique_ptr<AuditLog>> AuditLog::open(std::unique_ptr<db::Conn> db) {
  const bool sqlite = db->backend() == db::Backend::kSqlite;
  if (auto st = db->migrate(sqlite ? kSqliteMigrations : kPostgresMigrations); !st) {
    return st.error().WithContext("Failed to open audit log " + db->name());
  }
  std::unique_ptr<AuditLog> log(new AuditLog());
  log->db_ = std::move(db);
  return log;
}

Status AuditLog::append(std::vector<AuditRecord>& records) {
  std::lock_guard<std::mutex> lock(mu_);
  db::Tx tx(*db_);
  if (!tx.begun()) return tx.begun().error().WithContext("Failed to write the audit log");
  for (auto& r : records) {
    auto stmt = db_->prepare(
        "INSERT INTO audit (time, who, role, method, target, kind, name, status, before, after) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id");
    if (!stmt) return stmt.error().WithContext("Failed to write the audit log");
    stmt->bind(1, r.time).bind(2, r.who).bind(3, r.role).bind(4, r.method).bind(5, r.target);
    stmt->bind(6, r.kind).bind(7, r.name).bind(8, static_cast<int64_t>(r.status));
    bind_json(*stmt, 9, r.before);
    bind_json(*stmt, 10, r.after);
    auto row = stmt->step();
    if (!row) return row.error().WithContext("Failed to write the audit log");
    if (!*row) return Error("Failed to write the audit log: no id came back");
    r.id = stmt->col_int(0);
  }
  if (auto st = tx.commit(); !st) return st.error().WithContext("Failed to write the audit log");
  return Ok();
}

Expected<std::vector<AuditRecord>> AuditLog::list(int64_t since, int limit) {
  std::lock_guard<std::mutex> lock(mu_);
  const std::string columns =
      "SELECT id, time, who, role, method, target, kind, name, status, before, after FROM audit ";
  auto stmt = since > 0
                  ? db_->prepare(columns + "WHERE id > ? ORDER BY id LIMIT ?")
                  : db_->prepare("SELECT * FROM (" + columns +
                                 "WHERE id > ? ORDER BY id DESC LIMIT ?) AS last ORDER BY id");
  if (!stmt) return stmt.error().WithContext("Failed to read the audit log");
  stmt->bind(1, since).bind(2, static_cast<int64_t>(limit));
  std::vector<AuditRecord> out;
  auto st = db::for_each_row(*stmt, [&] {
    AuditRecord r;
    r.id = stmt->col_int(0);
    r.time = stmt->col_text(1);
    r.who = stmt->col_text(2);
    r.role = stmt->col_text(3);
    r.method = stmt->col_text(4);
    r.target = stmt->col_text(5);
    r.kind = stmt->col_text(6);
    r.name = stmt->col_text(7);
    r.status = static_cast<int>(stmt->col_int(8));
    r.before = col_json(*stmt, 9);
    r.after = col_json(*stmt, 10);
    out.push_back(std::move(r));
  });
  if (!st) return st.error().WithContext("Failed to read the audit log");
  return out;
}

}  // namespace flotilla::hub
