// Store: instances and the status outbox.
#include "agent/store.hpp"

namespace flotilla::agent {
namespace {

// Keeps status and event records small, so a batch always holds many of them.
constexpr size_t kMaxMessageChars = 1024;

std::string clip(const std::string& text) {
  return text.size() <= kMaxMessageChars ? text : text.substr(0, kMaxMessageChars) + "...";
}

constexpr const char* kInstanceColumns =
    "instance_id, workload, spec_hash, pid, start_ticks, phase, restarts, exit_code, message, "
    "started_unix_ms, backoff_attempts, next_restart_unix_ms, grace_ms, "
    "terminating_since_unix_ms, seq, reason, ready";

void bind_instance(sql::Stmt& q, const InstanceRecord& r) {
  q.bind(1, r.instance_id)
      .bind(2, r.workload)
      .bind(3, r.spec_hash)
      .bind(4, r.pid)
      .bind(5, static_cast<int64_t>(r.start_ticks))
      .bind(6, static_cast<int64_t>(r.phase))
      .bind(7, static_cast<int64_t>(r.restarts))
      .bind(8, static_cast<int64_t>(r.exit_code))
      .bind(9, r.message)
      .bind(10, r.started_unix_ms)
      .bind(11, static_cast<int64_t>(r.backoff_attempts))
      .bind(12, r.next_restart_unix_ms)
      .bind(13, r.grace_ms)
      .bind(14, r.terminating_since_unix_ms)
      .bind(15, static_cast<int64_t>(r.seq))
      .bind(16, r.reason)
      .bind(17, static_cast<int64_t>(r.ready));
}

InstanceRecord read_instance(const sql::Stmt& q) {
  InstanceRecord r;
  r.instance_id = q.col_text(0);
  r.workload = q.col_text(1);
  r.spec_hash = q.col_text(2);
  r.pid = q.col_int(3);
  r.start_ticks = static_cast<uint64_t>(q.col_int(4));
  int64_t phase = q.col_int(5);
  r.phase = v1::Phase_IsValid(static_cast<int>(phase)) ? static_cast<v1::Phase>(phase)
                                                       : v1::PHASE_UNKNOWN;
  r.restarts = static_cast<uint32_t>(q.col_int(6));
  r.exit_code = static_cast<int32_t>(q.col_int(7));
  r.message = q.col_text(8);
  r.started_unix_ms = q.col_int(9);
  r.backoff_attempts = static_cast<int32_t>(q.col_int(10));
  r.next_restart_unix_ms = q.col_int(11);
  r.grace_ms = q.col_int(12);
  r.terminating_since_unix_ms = q.col_int(13);
  r.seq = static_cast<uint64_t>(q.col_int(14));
  r.reason = q.col_text(15);
  r.ready = q.col_int(16) != 0;
  return r;
}

}  // namespace

v1::InstanceStatus to_status(const InstanceRecord& rec, bool removed) {
  v1::InstanceStatus s;
  s.set_workload(rec.workload);
  s.set_instance_id(rec.instance_id);
  s.set_phase(rec.phase);
  s.set_spec_hash(rec.spec_hash);
  s.set_pid(rec.pid);
  s.set_restarts(rec.restarts);
  s.set_exit_code(rec.exit_code);
  s.set_message(clip(rec.message));
  s.set_seq(rec.seq);
  s.set_started_unix_ms(rec.started_unix_ms);
  s.set_removed(removed);
  s.set_ready(!removed && rec.ready);
  s.set_reason(rec.reason);
  return s;
}

Expected<std::vector<InstanceRecord>> Store::load_instances() {
  auto q = db_.prepare(std::string("SELECT ") + kInstanceColumns +
                       " FROM instances ORDER BY instance_id");
  if (!q) return q.error();
  std::vector<InstanceRecord> out;
  auto on_row = [&] { out.push_back(read_instance(*q)); };
  if (auto st = sql::for_each_row(*q, on_row); !st)
    return st.error().WithContext("Failed to load instances");
  return out;
}

Status Store::create_instance(InstanceRecord& rec, const EventRecord& event) {
  return write_instance(Write::kInsert, rec, event);
}

Status Store::save_instance(InstanceRecord& rec, const EventRecord& event) {
  return write_instance(Write::kUpdate, rec, event);
}

Status Store::remove_instance(InstanceRecord& rec, const EventRecord& event) {
  return write_instance(Write::kRemove, rec, event);
}

Status Store::write_instance(Write kind, InstanceRecord& rec, const EventRecord& event) {
  // On failure only what this call assigned is undone; the caller's intent stays in `rec`.
  const Meta before_meta = meta_;
  const std::string before_id = rec.instance_id;
  const uint64_t before_seq = rec.seq;
  auto fail = [&](const Error& e) {
    meta_ = before_meta;
    rec.instance_id = before_id;
    rec.seq = before_seq;
    std::string what = rec.instance_id.empty() ? rec.workload : rec.instance_id;
    return Error("Failed to record state of instance '" + what + "': " + e.message());
  };
  sql::Tx tx(db_);
  if (!tx.begun()) return fail(tx.begun().error());
  if (kind == Write::kInsert) {
    rec.instance_id = rec.workload + "-" + std::to_string(++meta_.instance_counter);
  }
  rec.seq = ++meta_.status_seq;
  Expected<sql::Stmt> q = Error("unreachable");
  if (kind == Write::kInsert) {
    q = db_.prepare(std::string("INSERT INTO instances (") + kInstanceColumns +
                    ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
  } else if (kind == Write::kUpdate) {
    q = db_.prepare(
        "UPDATE instances SET instance_id = ?1, workload = ?2, spec_hash = ?3, pid = ?4, "
        "start_ticks = ?5, phase = ?6, restarts = ?7, exit_code = ?8, message = ?9, "
        "started_unix_ms = ?10, backoff_attempts = ?11, next_restart_unix_ms = ?12, "
        "grace_ms = ?13, terminating_since_unix_ms = ?14, seq = ?15, reason = ?16, ready = ?17 "
        "WHERE instance_id = ?1");
  } else {
    q = db_.prepare("DELETE FROM instances WHERE instance_id = ?");
  }
  if (!q) return fail(q.error());
  if (kind == Write::kRemove) {
    q->bind(1, rec.instance_id);
  } else {
    bind_instance(*q, rec);
  }
  if (auto st = q->run(); !st) return fail(st.error());
  if (kind != Write::kInsert && db_.changes() != 1) return fail(Error("no such instance"));
  if (auto st = put_status(rec, kind == Write::kRemove); !st) return fail(st.error());
  if (auto st = put_event(event); !st) return fail(st.error());
  if (auto st = save_counters(); !st) return fail(st.error());
  if (auto st = tx.commit(); !st) return fail(st.error());
  ++outbox_version_;
  return Ok();
}

Status Store::put_status(const InstanceRecord& rec, bool removed) {
  auto q = db_.prepare(
      "INSERT INTO outbox_status (instance_id, seq, record) VALUES (?, ?, ?) "
      "ON CONFLICT(instance_id) DO UPDATE SET seq = excluded.seq, record = excluded.record");
  if (!q) return q.error();
  return q->bind(1, rec.instance_id)
      .bind(2, static_cast<int64_t>(rec.seq))
      .bind_blob(3, to_status(rec, removed).SerializeAsString())
      .run();
}

Status Store::put_event(const EventRecord& event) {
  v1::Event e;
  e.set_object(event.object);
  e.set_reason(event.reason);
  e.set_message(clip(event.message));
  e.set_unix_ms(event.unix_ms);
  e.set_seq(++meta_.status_seq);
  auto ins = db_.prepare("INSERT INTO outbox_events (seq, record) VALUES (?, ?)");
  if (!ins) return ins.error();
  auto st = ins->bind(1, static_cast<int64_t>(e.seq())).bind_blob(2, e.SerializeAsString()).run();
  if (!st) return st;
  auto count = db_.prepare("SELECT COUNT(*) FROM outbox_events");
  if (!count) return count.error();
  auto row = count->step();
  if (!row) return row.error();
  int64_t excess = count->col_int(0) - kMaxEvents;
  if (excess <= 0) return Ok();
  auto drop = db_.prepare(
      "DELETE FROM outbox_events WHERE seq IN "
      "(SELECT seq FROM outbox_events ORDER BY seq LIMIT ?)");
  if (!drop) return drop.error();
  if (auto dst = drop->bind(1, excess).run(); !dst) return dst;
  meta_.dropped_events += static_cast<uint64_t>(excess);
  return Ok();
}

Expected<std::vector<OutboxStatus>> Store::outbox_statuses() {
  auto q = db_.prepare("SELECT instance_id, seq, record FROM outbox_status ORDER BY seq");
  if (!q) return q.error();
  std::vector<OutboxStatus> out;
  auto on_row = [&] {
    out.push_back({q->col_text(0), static_cast<uint64_t>(q->col_int(1)), q->col_text(2)});
  };
  if (auto st = sql::for_each_row(*q, on_row); !st)
    return st.error().WithContext("Failed to read the status outbox");
  return out;
}

Expected<std::vector<OutboxEvent>> Store::outbox_events() {
  auto q = db_.prepare("SELECT seq, record FROM outbox_events ORDER BY seq");
  if (!q) return q.error();
  std::vector<OutboxEvent> out;
  auto on_row = [&] { out.push_back({static_cast<uint64_t>(q->col_int(0)), q->col_text(1)}); };
  if (auto st = sql::for_each_row(*q, on_row); !st)
    return st.error().WithContext("Failed to read the event outbox");
  return out;
}

Status Store::delete_sent(const std::vector<std::pair<std::string, uint64_t>>& statuses,
                          const std::vector<uint64_t>& event_seqs) {
  auto fail = [](const Error& e) { return e.WithContext("Failed to delete sent outbox rows"); };
  sql::Tx tx(db_);
  if (!tx.begun()) return fail(tx.begun().error());
  auto del_status = db_.prepare("DELETE FROM outbox_status WHERE instance_id = ? AND seq = ?");
  if (!del_status) return fail(del_status.error());
  for (const auto& [id, seq] : statuses) {
    auto st = del_status->bind(1, id).bind(2, static_cast<int64_t>(seq)).run();
    if (!st) return fail(st.error());
  }
  auto del_event = db_.prepare("DELETE FROM outbox_events WHERE seq = ?");
  if (!del_event) return fail(del_event.error());
  for (uint64_t seq : event_seqs) {
    if (auto st = del_event->bind(1, static_cast<int64_t>(seq)).run(); !st) return fail(st.error());
  }
  if (auto st = tx.commit(); !st) return fail(st.error());
  return Ok();
}

}  // namespace flotilla::agent
