// Store: opening, schema, meta and desired state. Instances and the outbox are in
// store_instances.cpp.
#include "agent/store.hpp"

namespace flotilla::agent {
namespace {

// Schema steps, applied in order by Db::migrate. Never edit a step that has shipped; append.
const std::vector<std::string>& schema() {
  static const std::vector<std::string> steps = {
      R"sql(
CREATE TABLE meta (
  id INTEGER PRIMARY KEY CHECK (id = 1),
  node TEXT NOT NULL,
  desired_revision INTEGER NOT NULL DEFAULT 0,
  status_seq INTEGER NOT NULL DEFAULT 0,
  dropped_events INTEGER NOT NULL DEFAULT 0,
  instance_counter INTEGER NOT NULL DEFAULT 0,
  boot_id TEXT NOT NULL DEFAULT ''
);
CREATE TABLE desired (
  name TEXT PRIMARY KEY,
  spec BLOB NOT NULL,
  spec_hash TEXT NOT NULL
);
CREATE TABLE instances (
  instance_id TEXT PRIMARY KEY,
  workload TEXT NOT NULL,
  spec_hash TEXT NOT NULL,
  pid INTEGER NOT NULL DEFAULT 0,
  start_ticks INTEGER NOT NULL DEFAULT 0,
  phase INTEGER NOT NULL,
  restarts INTEGER NOT NULL DEFAULT 0,
  exit_code INTEGER NOT NULL DEFAULT 0,
  message TEXT NOT NULL DEFAULT '',
  started_unix_ms INTEGER NOT NULL DEFAULT 0,
  backoff_attempts INTEGER NOT NULL DEFAULT 0,
  next_restart_unix_ms INTEGER NOT NULL DEFAULT 0,
  grace_ms INTEGER NOT NULL DEFAULT 0,
  terminating_since_unix_ms INTEGER NOT NULL DEFAULT 0,
  seq INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE outbox_status (
  instance_id TEXT PRIMARY KEY,
  seq INTEGER NOT NULL,
  record BLOB NOT NULL
);
CREATE TABLE outbox_events (
  seq INTEGER PRIMARY KEY,
  record BLOB NOT NULL
);
)sql",
      // v2: why an instance is in its phase (OOMKilled, ImagePullBackOff, ...) and readiness.
      R"sql(
ALTER TABLE instances ADD COLUMN reason TEXT NOT NULL DEFAULT '';
ALTER TABLE instances ADD COLUMN ready INTEGER NOT NULL DEFAULT 0;
)sql",
      // v3: device twins (store_twins.cpp) and the devices whose reported state the hub awaits.
      R"sql(
CREATE TABLE twins (
  device TEXT PRIMARY KEY,
  desired TEXT NOT NULL,
  desired_version INTEGER NOT NULL,
  reported TEXT NOT NULL,
  reported_version INTEGER NOT NULL,
  observed_desired INTEGER NOT NULL
);
CREATE TABLE outbox_twins (
  device TEXT PRIMARY KEY,
  seq INTEGER NOT NULL
);
)sql",
      // v4: hub signing keys taken through rotations, and the ones they replaced
      // (sync/signed.hpp). trusted = 1: public_key verifies hub messages; 0: retired.
      R"sql(
CREATE TABLE hub_keys (
  key_id TEXT PRIMARY KEY,
  public_key BLOB NOT NULL,
  trusted INTEGER NOT NULL
);
)sql",
  };
  return steps;
}

}  // namespace

Expected<std::unique_ptr<Store>> Store::open(const std::string& path, const std::string& node) {
  auto fail = [&](const Error& e) {
    return Error("Failed to open agent store '" + path + "': " + e.message());
  };
  // FULL sync: an acked revision and the status seq must survive a power cut, or the hub
  // would take new records for old ones.
  auto db = sql::Db::open(path, /*full_sync=*/true);
  if (!db) return fail(db.error());
  if (auto st = db->migrate(schema()); !st) return fail(st.error());
  std::unique_ptr<Store> store(new Store(std::move(*db)));
  if (auto st = store->load_meta(); !st) return fail(st.error());
  if (store->meta_.node.empty()) {
    if (node.empty()) return fail(Error("it holds no agent state yet"));
    if (auto st = store->claim_node(node); !st) return fail(st.error());
  } else if (!node.empty() && store->meta_.node != node) {
    return Error("Failed to open agent store '" + path + "': it belongs to node '" +
                 store->meta_.node + "', not '" + node +
                 "' (use the right --node or another --data folder)");
  }
  return store;
}

Status Store::load_meta() {
  auto q = db_.prepare(
      "SELECT node, desired_revision, status_seq, dropped_events, instance_counter, boot_id "
      "FROM meta WHERE id = 1");
  if (!q) return q.error();
  auto row = q->step();
  if (!row) return row.error();
  if (!*row) return Ok();
  meta_.node = q->col_text(0);
  meta_.desired_revision = static_cast<uint64_t>(q->col_int(1));
  meta_.status_seq = static_cast<uint64_t>(q->col_int(2));
  meta_.dropped_events = static_cast<uint64_t>(q->col_int(3));
  meta_.instance_counter = static_cast<uint64_t>(q->col_int(4));
  meta_.boot_id = q->col_text(5);
  return Ok();
}

Status Store::claim_node(const std::string& node) {
  auto q = db_.prepare("INSERT INTO meta (id, node) VALUES (1, ?)");
  if (!q) return q.error();
  if (auto st = q->bind(1, node).run(); !st) return st;
  meta_ = Meta{};
  meta_.node = node;
  return Ok();
}

Status Store::set_boot_id(const std::string& boot_id) {
  auto q = db_.prepare("UPDATE meta SET boot_id = ? WHERE id = 1");
  if (!q) return q.error();
  if (auto st = q->bind(1, boot_id).run(); !st) {
    return st.error().WithContext("Failed to record boot id");
  }
  meta_.boot_id = boot_id;
  return Ok();
}

Status Store::save_counters() {
  auto q = db_.prepare(
      "UPDATE meta SET desired_revision = ?, status_seq = ?, dropped_events = ?, "
      "instance_counter = ? WHERE id = 1");
  if (!q) return q.error();
  return q->bind(1, static_cast<int64_t>(meta_.desired_revision))
      .bind(2, static_cast<int64_t>(meta_.status_seq))
      .bind(3, static_cast<int64_t>(meta_.dropped_events))
      .bind(4, static_cast<int64_t>(meta_.instance_counter))
      .run();
}

Expected<std::map<std::string, v1::WorkloadSpec>> Store::load_desired() {
  auto q = db_.prepare("SELECT name, spec FROM desired ORDER BY name");
  if (!q) return q.error();
  std::map<std::string, v1::WorkloadSpec> out;
  auto on_row = [&]() -> Status {
    v1::WorkloadSpec spec;
    std::string name = q->col_text(0);
    if (!spec.ParseFromString(q->col_text(1))) {
      return Error("Failed to load desired workload '" + name + "': stored spec is corrupt");
    }
    out.emplace(std::move(name), std::move(spec));
    return Ok();
  };
  if (auto st = sql::for_each_row(*q, on_row); !st)
    return st.error().WithContext("Failed to load desired workloads");
  return out;
}

Status Store::apply_desired(bool snapshot, const std::vector<v1::WorkloadSpec>& upserts,
                            const std::vector<std::string>& deletes, uint64_t to_revision) {
  auto fail = [&](const Error& e) {
    return Error("Failed to store desired revision " + std::to_string(to_revision) + ": " +
                 e.message());
  };
  sql::Tx tx(db_);
  if (!tx.begun()) return fail(tx.begun().error());
  if (snapshot) {
    if (auto st = db_.exec("DELETE FROM desired"); !st) return fail(st.error());
  }
  auto upsert = db_.prepare(
      "INSERT INTO desired (name, spec, spec_hash) VALUES (?, ?, ?) "
      "ON CONFLICT(name) DO UPDATE SET spec = excluded.spec, spec_hash = excluded.spec_hash");
  if (!upsert) return fail(upsert.error());
  for (const auto& spec : upserts) {
    auto st = upsert->bind(1, spec.name())
                  .bind_blob(2, spec.SerializeAsString())
                  .bind(3, spec.spec_hash())
                  .run();
    if (!st) return fail(st.error());
  }
  auto del = db_.prepare("DELETE FROM desired WHERE name = ?");
  if (!del) return fail(del.error());
  for (const auto& name : deletes) {
    if (auto st = del->bind(1, name).run(); !st) return fail(st.error());
  }
  Meta before = meta_;
  meta_.desired_revision = to_revision;
  Status st = save_counters();
  if (st) st = tx.commit();
  if (!st) {
    meta_ = before;
    return fail(st.error());
  }
  ++desired_version_;
  return Ok();
}

}  // namespace flotilla::agent
