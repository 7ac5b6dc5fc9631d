// Store: schema, transactions, nodes and workloads. Desired state is in store_desired.cpp,
// instances and events in store_status.cpp.
#include "cloud-hub/store.hpp"

#include <nlohmann/json.hpp>

#include "cloud-hub/labels.hpp"

namespace flotilla::hub {
namespace {

// SQLite's schema steps, in order; a change of schema is a new step here and in
// kPostgresMigrations.
const std::vector<std::string> kSqliteMigrations = {
    R"sql(
CREATE TABLE nodes (
  name TEXT PRIMARY KEY,
  labels TEXT NOT NULL DEFAULT '{}',
  cpu_millis INTEGER NOT NULL DEFAULT 0,
  memory_bytes INTEGER NOT NULL DEFAULT 0,
  arch TEXT NOT NULL DEFAULT '',
  runtimes TEXT NOT NULL DEFAULT '[]',
  boot_id TEXT NOT NULL DEFAULT '',
  agent_version TEXT NOT NULL DEFAULT '',
  protocol_version INTEGER NOT NULL DEFAULT 0,
  ready INTEGER NOT NULL DEFAULT 0,
  registered_ms INTEGER NOT NULL DEFAULT 0,
  last_seen_ms INTEGER NOT NULL DEFAULT 0,
  revision INTEGER NOT NULL DEFAULT 0,
  acked_revision INTEGER NOT NULL DEFAULT 0,
  compacted_floor INTEGER NOT NULL DEFAULT 0,
  status_seq INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE workloads (
  name TEXT PRIMARY KEY,
  manifest TEXT NOT NULL,
  spec_hash TEXT NOT NULL,
  generation INTEGER NOT NULL,
  created_ms INTEGER NOT NULL,
  updated_ms INTEGER NOT NULL,
  pending INTEGER NOT NULL DEFAULT 0,
  pending_reason TEXT NOT NULL DEFAULT ''
);
CREATE TABLE desired (
  node TEXT NOT NULL,
  workload TEXT NOT NULL,
  spec BLOB NOT NULL,
  revision INTEGER NOT NULL,
  PRIMARY KEY (node, workload)
);
CREATE INDEX desired_by_workload ON desired (workload);
CREATE TABLE tombstones (
  node TEXT NOT NULL,
  workload TEXT NOT NULL,
  revision INTEGER NOT NULL,
  PRIMARY KEY (node, workload)
);
CREATE INDEX tombstones_by_revision ON tombstones (node, revision);
CREATE TABLE instances (
  node TEXT NOT NULL,
  instance_id TEXT NOT NULL,
  workload TEXT NOT NULL,
  seq INTEGER NOT NULL,
  status BLOB NOT NULL,
  updated_ms INTEGER NOT NULL,
  PRIMARY KEY (node, instance_id)
);
CREATE INDEX instances_by_workload ON instances (workload);
CREATE TABLE events (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  hub_ms INTEGER NOT NULL,
  node TEXT NOT NULL DEFAULT '',
  object TEXT NOT NULL DEFAULT '',
  reason TEXT NOT NULL,
  message TEXT NOT NULL
);
CREATE INDEX events_by_node ON events (node, id);
CREATE INDEX events_by_object ON events (object, id);
)sql",
    // 2: the phase beside the record, so gauges count phases without parsing every record.
    // Rows from before have NULL until open() fills them in.
    "ALTER TABLE instances ADD COLUMN phase INTEGER;",
    // 3: removed instances are kept (removed = 1) with the seq that removed them, so an older
    // record of theirs, duplicated or replayed, cannot bring them back.
    R"sql(
ALTER TABLE instances ADD COLUMN removed INTEGER NOT NULL DEFAULT 0;
CREATE INDEX instances_removed_by_seq ON instances (node, removed, seq);
)sql",
    // 4: the taints a node reports, as JSON [{key, value, effect}].
    "ALTER TABLE nodes ADD COLUMN taints TEXT NOT NULL DEFAULT '[]';",
    // 5: the scheduler's placements, fleet-wide state of the control database. A store from
    // before sharding (hub.db, everything in one file) takes them from its desired state.
    R"sql(
CREATE TABLE placements (
  workload TEXT NOT NULL,
  node TEXT NOT NULL,
  PRIMARY KEY (workload, node)
);
INSERT INTO placements (workload, node) SELECT workload, node FROM desired;
)sql",
    // 6: device twins (shard databases: a device lives in its node's shard). Documents are
    // canonical JSON (common/twin.hpp); versions as twin::Twin keeps them.
    R"sql(
CREATE TABLE IF NOT EXISTS devices (
  name TEXT PRIMARY KEY,
  node TEXT NOT NULL,
  desired TEXT NOT NULL DEFAULT '{}',
  desired_version INTEGER NOT NULL DEFAULT 0,
  reported TEXT NOT NULL DEFAULT '{}',
  reported_version INTEGER NOT NULL DEFAULT 0,
  observed_desired INTEGER NOT NULL DEFAULT 0,
  updated_ms INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS devices_by_node ON devices (node, name);
)sql",
    // 7: a device's labels (JSON text, as a node's).
    R"sql(
ALTER TABLE devices ADD COLUMN labels TEXT NOT NULL DEFAULT '{}';
)sql",
};

// PostgreSQL's: its first step is SQLite's first seven as one (no store on PostgreSQL predates
// them). BIGINT for INTEGER, BYTEA for BLOB, an identity column for AUTOINCREMENT, and text keys
// compared bytewise (COLLATE "C"), as SQLite compares them, whatever the database's locale.
const std::vector<std::string> kPostgresMigrations = {
    R"sql(
CREATE TABLE nodes (
  name TEXT COLLATE "C" PRIMARY KEY,
  labels TEXT NOT NULL DEFAULT '{}',
  cpu_millis BIGINT NOT NULL DEFAULT 0,
  memory_bytes BIGINT NOT NULL DEFAULT 0,
  arch TEXT NOT NULL DEFAULT '',
  runtimes TEXT NOT NULL DEFAULT '[]',
  boot_id TEXT NOT NULL DEFAULT '',
  agent_version TEXT NOT NULL DEFAULT '',
  protocol_version BIGINT NOT NULL DEFAULT 0,
  ready BIGINT NOT NULL DEFAULT 0,
  registered_ms BIGINT NOT NULL DEFAULT 0,
  last_seen_ms BIGINT NOT NULL DEFAULT 0,
  revision BIGINT NOT NULL DEFAULT 0,
  acked_revision BIGINT NOT NULL DEFAULT 0,
  compacted_floor BIGINT NOT NULL DEFAULT 0,
  status_seq BIGINT NOT NULL DEFAULT 0,
  taints TEXT NOT NULL DEFAULT '[]'
);
CREATE TABLE workloads (
  name TEXT COLLATE "C" PRIMARY KEY,
  manifest TEXT NOT NULL,
  spec_hash TEXT NOT NULL,
  generation BIGINT NOT NULL,
  created_ms BIGINT NOT NULL,
  updated_ms BIGINT NOT NULL,
  pending BIGINT NOT NULL DEFAULT 0,
  pending_reason TEXT NOT NULL DEFAULT ''
);
CREATE TABLE desired (
  node TEXT COLLATE "C" NOT NULL,
  workload TEXT COLLATE "C" NOT NULL,
  spec BYTEA NOT NULL,
  revision BIGINT NOT NULL,
  PRIMARY KEY (node, workload)
);
CREATE INDEX desired_by_workload ON desired (workload);
CREATE TABLE tombstones (
  node TEXT COLLATE "C" NOT NULL,
  workload TEXT COLLATE "C" NOT NULL,
  revision BIGINT NOT NULL,
  PRIMARY KEY (node, workload)
);
CREATE INDEX tombstones_by_revision ON tombstones (node, revision);
CREATE TABLE instances (
  node TEXT COLLATE "C" NOT NULL,
  instance_id TEXT COLLATE "C" NOT NULL,
  workload TEXT COLLATE "C" NOT NULL,
  seq BIGINT NOT NULL,
  status BYTEA NOT NULL,
  updated_ms BIGINT NOT NULL,
  phase BIGINT,
  removed BIGINT NOT NULL DEFAULT 0,
  PRIMARY KEY (node, instance_id)
);
CREATE INDEX instances_by_workload ON instances (workload);
CREATE INDEX instances_removed_by_seq ON instances (node, removed, seq);
CREATE TABLE events (
  id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
  hub_ms BIGINT NOT NULL,
  node TEXT COLLATE "C" NOT NULL DEFAULT '',
  object TEXT COLLATE "C" NOT NULL DEFAULT '',
  reason TEXT NOT NULL,
  message TEXT NOT NULL
);
CREATE INDEX events_by_node ON events (node, id);
CREATE INDEX events_by_object ON events (object, id);
CREATE TABLE placements (
  workload TEXT COLLATE "C" NOT NULL,
  node TEXT COLLATE "C" NOT NULL,
  PRIMARY KEY (workload, node)
);
CREATE TABLE devices (
  name TEXT COLLATE "C" PRIMARY KEY,
  node TEXT COLLATE "C" NOT NULL,
  desired TEXT NOT NULL DEFAULT '{}',
  desired_version BIGINT NOT NULL DEFAULT 0,
  reported TEXT NOT NULL DEFAULT '{}',
  reported_version BIGINT NOT NULL DEFAULT 0,
  observed_desired BIGINT NOT NULL DEFAULT 0,
  updated_ms BIGINT NOT NULL DEFAULT 0,
  labels TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX devices_by_node ON devices (node, name);
)sql",
};

}  // namespace

// Labels and runtimes are stored as JSON text; a corrupt column reads as empty.
std::string labels_to_text(const std::map<std::string, std::string>& labels) {
  return nlohmann::json(labels).dump();
}

std::map<std::string, std::string> labels_from_text(const std::string& text) {
  auto j = nlohmann::json::parse(text, nullptr, false);
  std::map<std::string, std::string> out;
  if (!j.is_object()) return out;
  for (const auto& [k, v] : j.items()) {
    if (v.is_string()) out[k] = v.get<std::string>();
  }
  return out;
}

namespace {

std::vector<std::string> list_from_text(const std::string& text) {
  auto j = nlohmann::json::parse(text, nullptr, false);
  std::vector<std::string> out;
  if (!j.is_array()) return out;
  for (const auto& v : j) {
    if (v.is_string()) out.push_back(v.get<std::string>());
  }
  return out;
}

std::string taints_to_text(const std::vector<Taint>& taints) {
  nlohmann::json list = nlohmann::json::array();
  for (const auto& t : taints) {
    list.push_back({{"key", t.key}, {"value", t.value}, {"effect", t.effect}});
  }
  return list.dump();
}

std::vector<Taint> taints_from_text(const std::string& text) {
  auto j = nlohmann::json::parse(text, nullptr, false);
  std::vector<Taint> out;
  if (!j.is_array()) return out;
  for (const auto& t : j) {
    if (!t.is_object()) continue;
    out.push_back(
        {t.value("key", std::string()), t.value("value", std::string()), t.value("effect", "")});
  }
  return out;
}

constexpr const char* kNodeColumns =
    "name, labels, cpu_millis, memory_bytes, arch, runtimes, boot_id, agent_version, "
    "protocol_version, ready, registered_ms, last_seen_ms, revision, acked_revision, "
    "compacted_floor, status_seq, taints";

NodeRecord read_node(const db::Stmt& s) {
  NodeRecord n;
  n.name = s.col_text(0);
  n.labels = labels_from_text(s.col_text(1));
  n.cpu_millis = s.col_int(2);
  n.memory_bytes = s.col_int(3);
  n.arch = s.col_text(4);
  n.runtimes = list_from_text(s.col_text(5));
  n.boot_id = s.col_text(6);
  n.agent_version = s.col_text(7);
  n.protocol_version = static_cast<uint32_t>(s.col_int(8));
  n.ready = s.col_int(9) != 0;
  n.registered_ms = s.col_int(10);
  n.last_seen_ms = s.col_int(11);
  n.revision = static_cast<uint64_t>(s.col_int(12));
  n.acked_revision = static_cast<uint64_t>(s.col_int(13));
  n.compacted_floor = static_cast<uint64_t>(s.col_int(14));
  n.status_seq = static_cast<uint64_t>(s.col_int(15));
  n.taints = taints_from_text(s.col_text(16));
  return n;
}

constexpr const char* kWorkloadColumns =
    "name, manifest, spec_hash, generation, created_ms, updated_ms, pending, pending_reason";

WorkloadRecord read_workload(const db::Stmt& s) {
  WorkloadRecord w;
  w.name = s.col_text(0);
  w.manifest = s.col_text(1);
  w.spec_hash = s.col_text(2);
  w.generation = s.col_int(3);
  w.created_ms = s.col_int(4);
  w.updated_ms = s.col_int(5);
  w.pending = s.col_int(6);
  w.pending_reason = s.col_text(7);
  return w;
}

}  // namespace

Expected<std::unique_ptr<Store>> Store::open(const std::string& path, StoreOptions options) {
  auto db = db::open_sqlite(path);
  if (!db) return db.error();
  return open(std::move(*db), options);
}

Expected<std::unique_ptr<Store>> Store::open(std::unique_ptr<db::Conn> conn, StoreOptions options) {
  const std::string name = conn->name();
  const bool sqlite = conn->backend() == db::Backend::kSqlite;
  if (auto st = conn->migrate(sqlite ? kSqliteMigrations : kPostgresMigrations); !st) {
    return st.error().WithContext("Failed to migrate '" + name + "'");
  }
  auto store = std::unique_ptr<Store>(new Store(std::move(conn), options));
  if (auto st = store->fill_instance_phases(); !st) {
    return st.error().WithContext("Failed to migrate '" + name + "'");
  }
  return store;
}

Status Store::transaction(const std::function<Status()>& fn) {
  db::Tx tx(*db_);
  if (!tx.begun()) return tx.begun();
  if (auto st = fn(); !st) return st;
  if (commit_check_ && !tx.nested()) {
    if (auto st = commit_check_(); !st) {
      return st.error().WithContext("Failed to commit to " + db_->name());
    }
  }
  return tx.commit();
}

Status Store::check_lease(uint32_t shard, const std::string& owner, int64_t epoch) {
  return db::check_lease(*db_, shard, owner, epoch);
}

Expected<std::optional<NodeRecord>> Store::get_node(const std::string& name) {
  auto s = db_->prepare(std::string("SELECT ") + kNodeColumns + " FROM nodes WHERE name = ?");
  if (!s) return s.error();
  s->bind(1, name);
  auto row = s->step();
  if (!row) return row.error();
  if (!*row) return std::optional<NodeRecord>();
  return std::optional<NodeRecord>(read_node(*s));
}

Expected<std::vector<NodeRecord>> Store::list_nodes() {
  auto s = db_->prepare(std::string("SELECT ") + kNodeColumns + " FROM nodes ORDER BY name");
  if (!s) return s.error();
  std::vector<NodeRecord> out;
  auto on_row = [&] { out.push_back(read_node(*s)); };
  if (auto st = db::for_each_row(*s, on_row); !st) return st.error();
  return out;
}

Status Store::put_node(const NodeRecord& n) {
  static const std::string kUpsert = db::upsert_sql("nodes", kNodeColumns, 1);
  auto s = db_->prepare(kUpsert);
  if (!s) return s.error();
  s->bind(1, n.name)
      .bind(2, labels_to_text(n.labels))
      .bind(3, n.cpu_millis)
      .bind(4, n.memory_bytes)
      .bind(5, n.arch)
      .bind(6, nlohmann::json(n.runtimes).dump())
      .bind(7, n.boot_id)
      .bind(8, n.agent_version)
      .bind(9, static_cast<int64_t>(n.protocol_version))
      .bind(10, int64_t{n.ready ? 1 : 0})
      .bind(11, n.registered_ms)
      .bind(12, n.last_seen_ms)
      .bind(13, static_cast<int64_t>(n.revision))
      .bind(14, static_cast<int64_t>(n.acked_revision))
      .bind(15, static_cast<int64_t>(n.compacted_floor))
      .bind(16, static_cast<int64_t>(n.status_seq))
      .bind(17, taints_to_text(n.taints));
  return s->run();
}

Status Store::put_node_progress(const NodeRecord& n) {
  auto s = db_->prepare(
      "UPDATE nodes SET ready = ?, last_seen_ms = ?, revision = ?, acked_revision = ?, "
      "compacted_floor = ?, status_seq = ? WHERE name = ?");
  if (!s) return s.error();
  s->bind(1, int64_t{n.ready ? 1 : 0})
      .bind(2, n.last_seen_ms)
      .bind(3, static_cast<int64_t>(n.revision))
      .bind(4, static_cast<int64_t>(n.acked_revision))
      .bind(5, static_cast<int64_t>(n.compacted_floor))
      .bind(6, static_cast<int64_t>(n.status_seq))
      .bind(7, n.name);
  if (auto st = s->run(); !st) return st;
  if (db_->changes() != 1) return Error("Failed to update node '" + n.name + "': no such node");
  return Ok();
}

Status Store::delete_node(const std::string& name) {
  for (const char* table : {"nodes", "desired", "tombstones", "instances"}) {
    std::string column = std::string(table) == "nodes" ? "name" : "node";
    auto s = db_->prepare(std::string("DELETE FROM ") + table + " WHERE " + column + " = ?");
    if (!s) return s.error();
    s->bind(1, name);
    if (auto st = s->run(); !st) return st;
  }
  return Ok();
}

Expected<std::optional<WorkloadRecord>> Store::get_workload(const std::string& name) {
  auto s =
      db_->prepare(std::string("SELECT ") + kWorkloadColumns + " FROM workloads WHERE name = ?");
  if (!s) return s.error();
  s->bind(1, name);
  auto row = s->step();
  if (!row) return row.error();
  if (!*row) return std::optional<WorkloadRecord>();
  return std::optional<WorkloadRecord>(read_workload(*s));
}

Expected<std::vector<WorkloadRecord>> Store::list_workloads() {
  auto s =
      db_->prepare(std::string("SELECT ") + kWorkloadColumns + " FROM workloads ORDER BY name");
  if (!s) return s.error();
  std::vector<WorkloadRecord> out;
  auto on_row = [&] { out.push_back(read_workload(*s)); };
  if (auto st = db::for_each_row(*s, on_row); !st) return st.error();
  return out;
}

Status Store::put_workload(const WorkloadRecord& w) {
  static const std::string kUpsert = db::upsert_sql("workloads", kWorkloadColumns, 1);
  auto s = db_->prepare(kUpsert);
  if (!s) return s.error();
  s->bind(1, w.name)
      .bind(2, w.manifest)
      .bind(3, w.spec_hash)
      .bind(4, w.generation)
      .bind(5, w.created_ms)
      .bind(6, w.updated_ms)
      .bind(7, w.pending)
      .bind(8, w.pending_reason);
  return s->run();
}

Status Store::set_pending(const std::string& workload, int64_t pending, const std::string& reason) {
  auto s = db_->prepare("UPDATE workloads SET pending = ?, pending_reason = ? WHERE name = ?");
  if (!s) return s.error();
  s->bind(1, pending).bind(2, reason).bind(3, workload);
  return s->run();
}

Status Store::delete_workload(const std::string& name) {
  auto s = db_->prepare("DELETE FROM workloads WHERE name = ?");
  if (!s) return s.error();
  s->bind(1, name);
  if (auto st = s->run(); !st) return st;
  return set_placements(name, {});
}

Expected<std::vector<NodeRecord>> Store::list_nodes_page(
    const std::string& after, const std::map<std::string, std::string>& selector, int64_t limit,
    std::optional<bool> ready) {
  auto s = db_->prepare(std::string("SELECT ") + kNodeColumns + " FROM nodes WHERE name > ?" +
                        (ready ? " AND ready = ?" : "") + " ORDER BY name");
  if (!s) return s.error();
  s->bind(1, after);
  if (ready) s->bind(2, static_cast<int64_t>(*ready ? 1 : 0));
  std::vector<NodeRecord> out;
  while (limit <= 0 || static_cast<int64_t>(out.size()) < limit) {
    auto row = s->step();
    if (!row) return row.error();
    if (!*row) break;
    NodeRecord n = read_node(*s);
    if (labels_match(selector, n.labels)) out.push_back(std::move(n));
  }
  return out;
}

Expected<std::map<std::string, std::set<std::string>>> Store::fleet_placements() {
  auto s = db_->prepare("SELECT workload, node FROM placements");
  if (!s) return s.error();
  std::map<std::string, std::set<std::string>> out;
  auto on_row = [&] { out[s->col_text(0)].insert(s->col_text(1)); };
  if (auto st = db::for_each_row(*s, on_row); !st) return st.error();
  return out;
}

Expected<std::set<std::string>> Store::placements_of(const std::string& workload) {
  auto s = db_->prepare("SELECT node FROM placements WHERE workload = ?");
  if (!s) return s.error();
  s->bind(1, workload);
  std::set<std::string> out;
  auto on_row = [&] { out.insert(s->col_text(0)); };
  if (auto st = db::for_each_row(*s, on_row); !st) return st.error();
  return out;
}

Status Store::set_placements(const std::string& workload, const std::set<std::string>& nodes) {
  auto del = db_->prepare("DELETE FROM placements WHERE workload = ?");
  if (!del) return del.error();
  del->bind(1, workload);
  if (auto st = del->run(); !st) return st;
  for (const auto& node : nodes) {
    auto s = db_->prepare("INSERT INTO placements (workload, node) VALUES (?, ?)");
    if (!s) return s.error();
    s->bind(1, workload).bind(2, node);
    if (auto st = s->run(); !st) return st;
  }
  return Ok();
}

}  // namespace flotilla::hub
