// AuditLog: the append-only record of every change made through the REST API, in SQLite
// (<data>/audit.db) or, for hub instances sharing PostgreSQL (--store), in its schema "audit",
// one log for all of them. Each record says who (the token's name, or "anonymous" when API
// authentication is off), with which role, what (method, request target, the object's kind and
// name), when (UTC), the HTTP status it got, and the object's JSON before and after (null where
// it did not exist). Triggers refuse UPDATE and DELETE on the table (and TRUNCATE in
// PostgreSQL).
//
// Thread-safety: all methods may be called from any thread (one mutex).
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cloud-hub/store_db.hpp"
#include "common/expected.hpp"

namespace flotilla::hub {

struct AuditRecord {
  int64_t id = 0;      // given by append()
  std::string time;    // UTC, 2026-01-02T03:04:05.678Z
  std::string who;     // token name or "anonymous"
  std::string role;    // the token's role, or "none"
  std::string method;  // PUT, POST, PATCH, DELETE
  std::string target;  // the request's path and query
  std::string kind;    // Node, Workload, Device, Rollout, Artifact; "" when unknown
  std::string name;
  int status = 0;         // the HTTP status answered
  nlohmann::json before;  // null: absent
  nlohmann::json after;
};

// Unix milliseconds as UTC ISO 8601 with milliseconds.
std::string utc_time(int64_t unix_ms);
nlohmann::json audit_json(const AuditRecord& r);

class AuditLog {
 public:
  // A SQLite file, synced at every commit.
  static Expected<std::unique_ptr<AuditLog>> open(const std::string& path);
  // Either backend (db::open_postgres(conninfo, "audit") for several instances).
  static Expected<std::unique_ptr<AuditLog>> open(std::unique_ptr<db::Conn> db);

  // Appends `records` in one transaction and sets their ids.
  Status append(std::vector<AuditRecord>& records);
  // With since > 0: the first `limit` records after id `since`; else the last `limit` records.
  // Oldest first either way.
  Expected<std::vector<AuditRecord>> list(int64_t since, int limit);

 private:
  std::mutex mu_;
  std::unique_ptr<db::Conn> db_;
};

}  // namespace flotilla::hub
