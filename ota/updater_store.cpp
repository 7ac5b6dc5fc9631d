#include "ota/updater_store.hpp"

namespace flotilla::ota {
namespace {

// Schema steps, applied in order by Db::migrate. Never edit a step that has shipped; append.
const std::vector<std::string>& schema() {
  static const std::vector<std::string> steps = {
      "CREATE TABLE update_state ("
      "  id INTEGER PRIMARY KEY CHECK (id = 1), rollout TEXT NOT NULL, generation INTEGER NOT NULL,"
      "  phase INTEGER NOT NULL, manifest TEXT NOT NULL, signature BLOB NOT NULL,"
      "  payload_url TEXT NOT NULL, delta_url TEXT NOT NULL, target TEXT NOT NULL,"
      "  version TEXT NOT NULL, from_slot TEXT NOT NULL, to_slot TEXT NOT NULL,"
      "  delta INTEGER NOT NULL, delta_fallback INTEGER NOT NULL, bytes_done INTEGER NOT NULL,"
      "  bytes_total INTEGER NOT NULL, attempts INTEGER NOT NULL, pending INTEGER NOT NULL,"
      "  transitions INTEGER NOT NULL, message TEXT NOT NULL);"
      "CREATE TABLE slots (target TEXT NOT NULL, slot TEXT NOT NULL, sha256 TEXT NOT NULL,"
      "  version TEXT NOT NULL, PRIMARY KEY (target, slot));"
      "CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);",
  };
  return steps;
}

Error store_error(const std::string& verb, const Error& e) {
  return Error("Failed to " + verb + " the OTA state: " + e.message());
}

}  // namespace

Expected<std::unique_ptr<UpdaterStore>> UpdaterStore::open(const std::string& path) {
  auto db = sql::Db::open(path, /*full_sync=*/true);
  if (!db) return Error("Failed to open the OTA state '" + path + "': " + db.error().message());
  if (auto st = db->migrate(schema()); !st) {
    return Error("Failed to open the OTA state '" + path + "': " + st.error().message());
  }
  return std::unique_ptr<UpdaterStore>(new UpdaterStore(std::move(*db)));
}

Expected<UpdateState> UpdaterStore::load() {
  auto q = db_.prepare(
      "SELECT rollout, generation, phase, manifest, signature, payload_url, delta_url, target,"
      " version, from_slot, to_slot, delta, delta_fallback, bytes_done, bytes_total, attempts,"
      " pending, transitions, message FROM update_state WHERE id = 1");
  if (!q) return store_error("load", q.error());
  UpdateState s;
  auto row = q->step();
  if (!row) return store_error("load", row.error());
  if (!*row) return s;
  s.rollout = q->col_text(0);
  s.generation = static_cast<uint64_t>(q->col_int(1));
  int phase = static_cast<int>(q->col_int(2));
  if (phase < 0 || phase > static_cast<int>(Phase::kAborted)) {
    return store_error("load", Error("unknown phase " + std::to_string(phase)));
  }
  s.phase = static_cast<Phase>(phase);
  s.manifest = q->col_text(3);
  s.signature = q->col_text(4);
  s.payload_url = q->col_text(5);
  s.delta_url = q->col_text(6);
  s.target = q->col_text(7);
  s.version = q->col_text(8);
  s.from_slot = q->col_text(9);
  s.to_slot = q->col_text(10);
  s.delta = q->col_int(11) != 0;
  s.delta_fallback = q->col_int(12) != 0;
  s.bytes_done = static_cast<uint64_t>(q->col_int(13));
  s.bytes_total = static_cast<uint64_t>(q->col_int(14));
  s.attempts = static_cast<uint32_t>(q->col_int(15));
  s.pending = q->col_int(16) != 0;
  s.transitions = static_cast<uint32_t>(q->col_int(17));
  s.message = q->col_text(18);
  return s;
}

Status UpdaterStore::write_slot(const SlotRecord& r) {
  auto q = db_.prepare(
      "INSERT INTO slots (target, slot, sha256, version) VALUES (?, ?, ?, ?) "
      "ON CONFLICT(target, slot) DO UPDATE SET sha256 = excluded.sha256,"
      " version = excluded.version");
  if (!q) return q.error();
  return q->bind(1, r.target).bind(2, r.slot).bind(3, r.sha256).bind(4, r.version).run();
}

Status UpdaterStore::save(const UpdateState& s, const std::optional<SlotRecord>& slot) {
  sql::Tx tx(db_);
  if (!tx.begun()) return store_error("save", tx.begun().error());
  auto q = db_.prepare(
      "INSERT OR REPLACE INTO update_state (id, rollout, generation, phase, manifest, signature,"
      " payload_url, delta_url, target, version, from_slot, to_slot, delta, delta_fallback,"
      " bytes_done, bytes_total, attempts, pending, transitions, message)"
      " VALUES (1, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
  if (!q) return store_error("save", q.error());
  Status st = q->bind(1, s.rollout)
                  .bind(2, static_cast<int64_t>(s.generation))
                  .bind(3, static_cast<int64_t>(s.phase))
                  .bind(4, s.manifest)
                  .bind_blob(5, s.signature)
                  .bind(6, s.payload_url)
                  .bind(7, s.delta_url)
                  .bind(8, s.target)
                  .bind(9, s.version)
                  .bind(10, s.from_slot)
                  .bind(11, s.to_slot)
                  .bind(12, int64_t{s.delta})
                  .bind(13, int64_t{s.delta_fallback})
                  .bind(14, static_cast<int64_t>(s.bytes_done))
                  .bind(15, static_cast<int64_t>(s.bytes_total))
                  .bind(16, static_cast<int64_t>(s.attempts))
                  .bind(17, int64_t{s.pending})
                  .bind(18, static_cast<int64_t>(s.transitions))
                  .bind(19, s.message)
                  .run();
  if (st && slot) st = write_slot(*slot);
  if (st) st = tx.commit();
  if (!st) return store_error("save", st.error());
  return Ok();
}

Expected<std::optional<SlotRecord>> UpdaterStore::slot(const std::string& target,
                                                       const std::string& slot) {
  auto q = db_.prepare("SELECT sha256, version FROM slots WHERE target = ? AND slot = ?");
  if (!q) return store_error("load", q.error());
  q->bind(1, target).bind(2, slot);
  auto row = q->step();
  if (!row) return store_error("load", row.error());
  if (!*row) return std::optional<SlotRecord>();
  return std::optional<SlotRecord>(SlotRecord{target, slot, q->col_text(0), q->col_text(1)});
}

Status UpdaterStore::save_slot(const SlotRecord& record) {
  sql::Tx tx(db_);
  if (!tx.begun()) return store_error("save", tx.begun().error());
  Status st = write_slot(record);
  if (st) st = tx.commit();
  if (!st) return store_error("save", st.error());
  return Ok();
}

Expected<uint64_t> UpdaterStore::next_seq() {
  sql::Tx tx(db_);
  if (!tx.begun()) return store_error("save", tx.begun().error());
  auto q = db_.prepare(
      "INSERT INTO meta (key, value) VALUES ('report_seq', 1) "
      "ON CONFLICT(key) DO UPDATE SET value = value + 1 RETURNING value");
  if (!q) return store_error("save", q.error());
  auto row = q->step();
  if (!row) return store_error("save", row.error());
  uint64_t seq = static_cast<uint64_t>(q->col_int(0));
  q->reset();
  if (auto st = tx.commit(); !st) return store_error("save", st.error());
  return seq;
}

}  // namespace flotilla::ota
