// Store: per-node desired state, revisions, tombstones and their compaction.
#include "cloud-hub/store.hpp"

namespace flotilla::hub {
namespace {

namespace pb = flotilla::v1;

Status run(db::Conn& db, const std::string& sql, const std::vector<std::string>& texts,
           const std::vector<int64_t>& ints = {}) {
  auto s = db.prepare(sql);
  if (!s) return s.error();
  int i = 1;
  for (const auto& t : texts) s->bind(i++, t);
  for (int64_t v : ints) s->bind(i++, v);
  return s->run();
}

}  // namespace

Expected<uint64_t> Store::update_node_desired(const std::string& node,
                                              const std::map<std::string, std::string>& upserts,
                                              const std::vector<std::string>& deletes) {
  auto rec = get_node(node);
  if (!rec) return rec.error();
  if (!*rec) return Error("Failed to update desired state of node '" + node + "': not registered");
  if (upserts.empty() && deletes.empty()) return (*rec)->revision;
  static const std::string kUpsertDesired =
      db::upsert_sql("desired", "node, workload, spec, revision", 2);
  static const std::string kUpsertTombstone =
      db::upsert_sql("tombstones", "node, workload, revision", 2);
  const uint64_t rev = (*rec)->revision + 1;
  const auto irev = static_cast<int64_t>(rev);
  for (const auto& [workload, spec] : upserts) {
    auto s = db_->prepare(kUpsertDesired);
    if (!s) return s.error();
    s->bind(1, node).bind(2, workload).bind_blob(3, spec).bind(4, irev);
    if (auto st = s->run(); !st) return st.error();
    if (auto st =
            run(*db_, "DELETE FROM tombstones WHERE node = ? AND workload = ?", {node, workload});
        !st) {
      return st.error();
    }
  }
  for (const auto& workload : deletes) {
    if (auto st =
            run(*db_, "DELETE FROM desired WHERE node = ? AND workload = ?", {node, workload});
        !st) {
      return st.error();
    }
    if (auto st = run(*db_, kUpsertTombstone, {node, workload}, {irev}); !st) {
      return st.error();
    }
  }
  auto s = db_->prepare("UPDATE nodes SET revision = ? WHERE name = ?");
  if (!s) return s.error();
  s->bind(1, irev).bind(2, node);
  if (auto st = s->run(); !st) return st.error();
  if (auto st = compact(node, rev); !st) return st.error();
  return rev;
}

Status Store::compact(const std::string& node, uint64_t revision) {
  if (revision <= options_.tombstone_retention) return Ok();
  const auto cutoff = static_cast<int64_t>(revision - options_.tombstone_retention);
  auto s = db_->prepare("SELECT MAX(revision) FROM tombstones WHERE node = ? AND revision <= ?");
  if (!s) return s.error();
  s->bind(1, node).bind(2, cutoff);
  auto row = s->step();
  if (!row) return row.error();
  if (!*row || s->col_null(0)) return Ok();
  const int64_t floor = s->col_int(0);
  auto del = db_->prepare("DELETE FROM tombstones WHERE node = ? AND revision <= ?");
  if (!del) return del.error();
  del->bind(1, node).bind(2, cutoff);
  if (auto st = del->run(); !st) return st;
  // Deltas from below the newest compacted tombstone would miss its delete.
  auto up = db_->prepare(
      "UPDATE nodes SET compacted_floor = CASE WHEN compacted_floor > ?1 "
      "THEN compacted_floor ELSE ?1 END WHERE name = ?2");
  if (!up) return up.error();
  up->bind(1, floor).bind(2, node);
  return up->run();
}

Expected<std::vector<DesiredRow>> Store::desired_for_node(const std::string& node) {
  auto s =
      db_->prepare("SELECT workload, spec, revision FROM desired WHERE node = ? ORDER BY workload");
  if (!s) return s.error();
  s->bind(1, node);
  std::vector<DesiredRow> out;
  auto on_row = [&] {
    out.push_back({s->col_text(0), s->col_text(1), static_cast<uint64_t>(s->col_int(2))});
  };
  if (auto st = db::for_each_row(*s, on_row); !st) return st.error();
  return out;
}

Expected<std::optional<std::string>> Store::desired_spec(const std::string& node,
                                                         const std::string& workload) {
  auto s = db_->prepare("SELECT spec FROM desired WHERE node = ? AND workload = ?");
  if (!s) return s.error();
  s->bind(1, node).bind(2, workload);
  auto row = s->step();
  if (!row) return row.error();
  if (!*row) return std::optional<std::string>();
  return std::optional<std::string>(s->col_text(0));
}

Expected<std::map<std::string, std::set<std::string>>> Store::placements() {
  auto s = db_->prepare("SELECT workload, node FROM desired");
  if (!s) return s.error();
  std::map<std::string, std::set<std::string>> out;
  auto on_row = [&] { out[s->col_text(0)].insert(s->col_text(1)); };
  if (auto st = db::for_each_row(*s, on_row); !st) return st.error();
  return out;
}

Expected<pb::DesiredState> Store::desired_message(const NodeRecord& node) {
  pb::DesiredState msg;
  msg.set_node(node.name);
  msg.set_to_revision(node.revision);
  const uint64_t acked = node.acked_revision;
  // An agent with nothing, one behind the compacted history, or one ahead of anything this
  // store issued gets everything.
  const bool snapshot = acked == 0 || acked < node.compacted_floor || acked > node.revision;
  msg.set_snapshot(snapshot);
  msg.set_from_revision(snapshot ? 0 : acked);
  auto rows = desired_for_node(node.name);
  if (!rows) return rows.error();
  for (const auto& row : *rows) {
    if (!snapshot && row.revision <= acked) continue;
    if (!msg.add_upserts()->ParseFromString(row.spec)) {
      return Error("Failed to read desired spec of workload '" + row.workload + "' on node '" +
                   node.name + "': corrupt record");
    }
  }
  if (snapshot) return msg;
  auto s = db_->prepare(
      "SELECT workload FROM tombstones WHERE node = ? AND revision > ? ORDER BY workload");
  if (!s) return s.error();
  s->bind(1, node.name).bind(2, static_cast<int64_t>(acked));
  auto on_row = [&] { msg.add_deletes(s->col_text(0)); };
  if (auto st = db::for_each_row(*s, on_row); !st) return st.error();
  return msg;
}

Status Store::skip_revision_past(const std::string& node, uint64_t claimed) {
  auto s = db_->prepare("UPDATE nodes SET revision = ?, compacted_floor = ? WHERE name = ?");
  if (!s) return s.error();
  const auto next = static_cast<int64_t>(claimed + 1);
  s->bind(1, next).bind(2, next).bind(3, node);
  return s->run();
}

}  // namespace flotilla::hub
