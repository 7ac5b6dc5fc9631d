// Store: instance status reported by agents, and the bounded event log.
#include <algorithm>

#include "cloud-hub/store.hpp"

#include <limits>
#include <tuple>

namespace flotilla::hub {

Expected<std::optional<InstanceRecord>> Store::get_instance(const std::string& node,
                                                            const std::string& instance_id) {
  auto s = db_->prepare(
      "SELECT status, updated_ms, seq, removed FROM instances WHERE node = ? AND instance_id = ?");
  if (!s) return s.error();
  s->bind(1, node).bind(2, instance_id);
  auto row = s->step();
  if (!row) return row.error();
  if (!*row) return std::optional<InstanceRecord>();
  InstanceRecord rec;
  rec.node = node;
  if (!rec.status.ParseFromString(s->col_text(0))) {
    return Error("Failed to read status of instance '" + instance_id + "' on node '" + node +
                 "': corrupt record");
  }
  rec.updated_ms = s->col_int(1);
  // The seq column is what newer records must beat (reset_instance_seqs() lowers it).
  rec.status.set_seq(static_cast<uint64_t>(s->col_int(2)));
  rec.status.set_removed(s->col_int(3) != 0);
  return std::optional<InstanceRecord>(std::move(rec));
}

Status Store::put_instance(const InstanceRecord& rec) {
  auto s = db_->prepare(
      "INSERT INTO instances "
      "(node, instance_id, workload, seq, status, updated_ms, phase, removed) "
      "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (node, instance_id) DO UPDATE SET "
      "workload = excluded.workload, seq = excluded.seq, status = excluded.status, "
      "updated_ms = excluded.updated_ms, phase = excluded.phase, removed = excluded.removed "
      "WHERE excluded.seq > instances.seq");
  if (!s) return s.error();
  s->bind(1, rec.node)
      .bind(2, rec.status.instance_id())
      .bind(3, rec.status.workload())
      .bind(4, static_cast<int64_t>(rec.status.seq()))
      .bind_blob(5, rec.status.SerializeAsString())
      .bind(6, rec.updated_ms)
      .bind(7, static_cast<int64_t>(rec.status.phase()))
      .bind(8, int64_t{rec.status.removed() ? 1 : 0});
  if (auto st = s->run(); !st) return st;
  return rec.status.removed() ? prune_removed(rec.node) : Ok();
}

Status Store::prune_removed(const std::string& node) {
  auto s = db_->prepare(
      "DELETE FROM instances WHERE node = ?1 AND removed = 1 AND seq < "
      "(SELECT seq FROM instances WHERE node = ?1 AND removed = 1 "
      "ORDER BY seq DESC LIMIT 1 OFFSET ?2)");
  if (!s) return s.error();
  s->bind(1, node).bind(2, kRemovedInstancesKept - 1);
  return s->run();
}

Status Store::retain_instances(const std::string& node, const std::set<std::string>& keep,
                               uint64_t up_to_seq) {
  const auto limit = static_cast<int64_t>(
      std::min<uint64_t>(up_to_seq, static_cast<uint64_t>(std::numeric_limits<int64_t>::max())));
  auto s =
      db_->prepare("SELECT instance_id FROM instances WHERE node = ? AND removed = 0 AND seq <= ?");
  if (!s) return s.error();
  s->bind(1, node).bind(2, limit);
  std::vector<std::string> drop;
  auto on_row = [&] {
    if (keep.count(s->col_text(0)) == 0) drop.push_back(s->col_text(0));
  };
  if (auto st = db::for_each_row(*s, on_row); !st) return st.error();
  // Kept as removed, so that an older record of theirs cannot bring them back.
  for (const auto& id : drop) {
    auto mark = db_->prepare(
        "UPDATE instances SET removed = 1, seq = CASE WHEN seq > ?1 THEN seq ELSE ?1 END "
        "WHERE node = ?2 AND instance_id = ?3");
    if (!mark) return mark.error();
    mark->bind(1, up_to_seq == kAllSeqs ? int64_t{0} : limit).bind(2, node).bind(3, id);
    if (auto st = mark->run(); !st) return st;
  }
  return drop.empty() ? Ok() : prune_removed(node);
}

Status Store::reset_instance_seqs(const std::string& node) {
  // The seq column is the guard; the blob's own seq is only informational after a reset.
  auto s = db_->prepare("UPDATE instances SET seq = 0 WHERE node = ?");
  if (!s) return s.error();
  s->bind(1, node);
  return s->run();
}

Expected<std::vector<InstanceRecord>> Store::list_instances() { return instances_where("", ""); }

Expected<std::vector<InstanceRecord>> Store::instances_where(const std::string& column,
                                                             const std::string& value) {
  const bool all = column.empty();
  if (!all && column != "node" && column != "workload") {
    return Error("instances_where: no such column '" + column + "'");
  }
  auto s = db_->prepare("SELECT node, status, updated_ms FROM instances WHERE removed = 0" +
                        (all ? std::string() : " AND " + column + " = ?") +
                        " ORDER BY workload, node, instance_id");
  if (!s) return s.error();
  if (!all) s->bind(1, value);
  std::vector<InstanceRecord> out;
  auto on_row = [&] {
    InstanceRecord rec;
    rec.node = s->col_text(0);
    if (!rec.status.ParseFromString(s->col_text(1))) return;  // unreadable: skip, never crash
    rec.updated_ms = s->col_int(2);
    out.push_back(std::move(rec));
  };
  if (auto st = db::for_each_row(*s, on_row); !st) return st.error();
  return out;
}

Expected<std::vector<std::pair<std::string, std::string>>> Store::running_instances() {
  auto s =
      db_->prepare("SELECT DISTINCT workload, node FROM instances WHERE removed = 0 AND phase = ?");
  if (!s) return s.error();
  s->bind(1, static_cast<int64_t>(flotilla::v1::PHASE_RUNNING));
  std::vector<std::pair<std::string, std::string>> out;
  auto on_row = [&] { out.emplace_back(s->col_text(0), s->col_text(1)); };
  if (auto st = db::for_each_row(*s, on_row); !st) return st.error();
  return out;
}

Status Store::add_event(const EventRecord& e) {
  auto s = db_->prepare(
      "INSERT INTO events (hub_ms, node, object, reason, message) VALUES (?, ?, ?, ?, ?) "
      "RETURNING id");
  if (!s) return s.error();
  s->bind(1, e.hub_ms).bind(2, e.node).bind(3, e.object).bind(4, e.reason).bind(5, e.message);
  auto row = s->step();
  if (!row) return row.error();
  if (!*row) return Error("Failed to add event '" + e.reason + "': no id returned");
  const int64_t id = s->col_int(0);
  if (auto done = s->step(); !done) return done.error();
  // Ids grow by one per event (on PostgreSQL a rolled-back insert leaves a gap in the sequence,
  // so a few events fewer may be kept).
  auto trim = db_->prepare("DELETE FROM events WHERE id <= ?");
  if (!trim) return trim.error();
  trim->bind(1, id - options_.max_events);
  return trim->run();
}

Expected<std::vector<EventRecord>> Store::list_events(const EventFilter& f) {
  std::string sql = "SELECT id, hub_ms, node, object, reason, message FROM events WHERE 1 = 1";
  if (!f.node.empty()) sql += " AND node = ?";
  // Hub events name "workload/<name>"; agents name "<workload>/<instance>".
  if (!f.workload.empty()) sql += " AND (object = ? OR object = ? OR substr(object, 1, ?) = ?)";
  sql += " ORDER BY id DESC LIMIT ?";
  auto s = db_->prepare(sql);
  if (!s) return s.error();
  int i = 1;
  if (!f.node.empty()) s->bind(i++, f.node);
  if (!f.workload.empty()) {
    const std::string prefix = f.workload + "/";
    s->bind(i++, f.workload);
    s->bind(i++, "workload/" + f.workload);
    s->bind(i++, static_cast<int64_t>(prefix.size()));
    s->bind(i++, prefix);
  }
  s->bind(i, f.limit);
  std::vector<EventRecord> out;
  auto on_row = [&] {
    out.push_back({s->col_int(0), s->col_int(1), s->col_text(2), s->col_text(3), s->col_text(4),
                   s->col_text(5)});
  };
  if (auto st = db::for_each_row(*s, on_row); !st) return st.error();
  std::reverse(out.begin(), out.end());
  return out;
}

Status Store::fill_instance_phases() {
  return transaction([&]() -> Status {
    auto q = db_->prepare("SELECT node, instance_id, status FROM instances WHERE phase IS NULL");
    if (!q) return q.error();
    std::vector<std::tuple<std::string, std::string, int64_t>> rows;
    auto on_row = [&] {
      flotilla::v1::InstanceStatus st;
      const int64_t phase = st.ParseFromString(q->col_text(2)) ? st.phase() : 0;
      rows.emplace_back(q->col_text(0), q->col_text(1), phase);
    };
    if (auto st = db::for_each_row(*q, on_row); !st) return st.error();
    for (const auto& [node, id, phase] : rows) {
      auto u = db_->prepare("UPDATE instances SET phase = ? WHERE node = ? AND instance_id = ?");
      if (!u) return u.error();
      u->bind(1, phase).bind(2, node).bind(3, id);
      if (auto st = u->run(); !st) return st;
    }
    return Ok();
  });
}

Expected<StoreCounts> Store::counts() {
  StoreCounts c;
  auto n = db_->prepare(
      "SELECT COUNT(*), COALESCE(SUM(CASE WHEN ready != 0 THEN 1 ELSE 0 END), 0) FROM nodes");
  if (!n) return n.error();
  if (auto row = n->step(); !row) return row.error();
  c.nodes = n->col_int(0);
  c.ready_nodes = n->col_int(1);
  auto w = db_->prepare("SELECT COUNT(*), COALESCE(SUM(pending), 0) FROM workloads");
  if (!w) return w.error();
  if (auto row = w->step(); !row) return row.error();
  c.workloads = w->col_int(0);
  c.pending_instances = w->col_int(1);
  auto p = db_->prepare(
      "SELECT COALESCE(phase, 0), COUNT(*) FROM instances WHERE removed = 0 GROUP BY 1");
  if (!p) return p.error();
  auto on_row = [&] { c.instances_by_phase[static_cast<int>(p->col_int(0))] += p->col_int(1); };
  if (auto st = db::for_each_row(*p, on_row); !st) return st.error();
  return c;
}

}  // namespace flotilla::hub
