// Store: device twins and the twin outbox, and the hub keys the agent trusts. A twin is stored
// as its canonical desired and reported texts with their versions; the outbox row only names the
// device, so what is sent is always the newest reported state (offline reports coalesce).
#include "agent/store.hpp"

#include "common/ed25519.hpp"

namespace flotilla::agent {

Expected<std::map<std::string, twin::Twin>> Store::load_twins() {
  auto q = db_.prepare(
      "SELECT device, desired, desired_version, reported, reported_version, observed_desired "
      "FROM twins ORDER BY device");
  if (!q) return q.error();
  std::map<std::string, twin::Twin> out;
  auto on_row = [&]() -> Status {
    std::string device = q->col_text(0);
    auto t = twin::Twin::restore(q->col_text(1), static_cast<uint64_t>(q->col_int(2)),
                                 q->col_text(3), static_cast<uint64_t>(q->col_int(4)),
                                 static_cast<uint64_t>(q->col_int(5)));
    if (!t) return t.error().WithContext("Failed to load twin of '" + device + "'");
    out.emplace(std::move(device), std::move(*t));
    return Ok();
  };
  if (auto st = sql::for_each_row(*q, on_row); !st) return st.error();
  return out;
}

Status Store::put_twins(const std::vector<TwinWrite>& writes) {
  auto fail = [&](const Error& e) {
    return Error("Failed to store " + std::to_string(writes.size()) +
                 " twin change(s): " + e.message());
  };
  if (writes.empty()) return Ok();
  if (twin_seq_ == 0) {
    auto q = db_.prepare("SELECT COALESCE(MAX(seq), 0) FROM outbox_twins");
    if (!q) return fail(q.error());
    auto row = q->step();
    if (!row) return fail(row.error());
    twin_seq_ = static_cast<uint64_t>(q->col_int(0));
  }
  sql::Tx tx(db_);
  if (!tx.begun()) return fail(tx.begun().error());
  auto upsert = db_.prepare(
      "INSERT INTO twins (device, desired, desired_version, reported, reported_version, "
      "observed_desired) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(device) DO UPDATE SET "
      "desired = excluded.desired, desired_version = excluded.desired_version, "
      "reported = excluded.reported, reported_version = excluded.reported_version, "
      "observed_desired = excluded.observed_desired");
  auto remove = db_.prepare("DELETE FROM twins WHERE device = ?");
  auto unqueue = db_.prepare("DELETE FROM outbox_twins WHERE device = ?");
  auto queue = db_.prepare(
      "INSERT INTO outbox_twins (device, seq) VALUES (?, ?) "
      "ON CONFLICT(device) DO UPDATE SET seq = excluded.seq");
  for (auto* q : {&upsert, &remove, &unqueue, &queue})
    if (!*q) return fail(q->error());
  uint64_t seq = twin_seq_;
  bool queued = false;
  for (const auto& w : writes) {
    Status st;
    if (!w.twin) {
      st = remove->bind(1, w.device).run();
      if (st) st = unqueue->bind(1, w.device).run();
    } else {
      const twin::Twin& t = *w.twin;
      st = upsert->bind(1, w.device)
               .bind(2, twin::canonical(t.desired()))
               .bind(3, static_cast<int64_t>(t.desired_version()))
               .bind(4, twin::canonical(t.reported()))
               .bind(5, static_cast<int64_t>(t.reported_version()))
               .bind(6, static_cast<int64_t>(t.observed_desired()))
               .run();
      if (st && w.report) {
        st = queue->bind(1, w.device).bind(2, static_cast<int64_t>(++seq)).run();
        queued = true;
      }
    }
    if (!st) return fail(st.error());
  }
  if (auto st = tx.commit(); !st) return fail(st.error());
  twin_seq_ = seq;
  if (queued) ++twin_outbox_version_;
  return Ok();
}

Expected<std::vector<OutboxTwin>> Store::outbox_twins() {
  auto q = db_.prepare("SELECT device, seq FROM outbox_twins ORDER BY seq");
  if (!q) return q.error();
  std::vector<OutboxTwin> out;
  auto st = sql::for_each_row(*q, [&] {
    out.push_back({q->col_text(0), static_cast<uint64_t>(q->col_int(1))});
  });
  if (!st) return st.error().WithContext("Failed to read the twin outbox");
  return out;
}

Status Store::delete_sent_twins(const std::vector<OutboxTwin>& sent) {
  auto fail = [](const Error& e) { return e.WithContext("Failed to delete sent twin reports"); };
  sql::Tx tx(db_);
  if (!tx.begun()) return fail(tx.begun().error());
  auto del = db_.prepare("DELETE FROM outbox_twins WHERE device = ? AND seq = ?");
  if (!del) return fail(del.error());
  for (const auto& row : sent) {
    if (auto st = del->bind(1, row.device).bind(2, static_cast<int64_t>(row.seq)).run(); !st)
      return fail(st.error());
  }
  if (auto st = tx.commit(); !st) return fail(st.error());
  return Ok();
}

Expected<sync::HubKeyState> Store::load_hub_keys() {
  auto q = db_.prepare("SELECT key_id, public_key, trusted FROM hub_keys ORDER BY rowid");
  if (!q) return q.error();
  sync::HubKeyState state;
  auto on_row = [&]() {
    if (q->col_int(2) != 0) {
      state.trusted.push_back(q->col_text(1));
    } else {
      state.retired.insert(q->col_text(0));
    }
  };
  if (auto st = sql::for_each_row(*q, on_row); !st) {
    return Error("Failed to load hub keys: " + st.error().message());
  }
  return state;
}

Status Store::save_hub_keys(const sync::HubKeyState& state) {
  auto fail = [](const Error& e) { return Error("Failed to store hub keys: " + e.message()); };
  sql::Tx tx(db_);
  if (!tx.begun()) return fail(tx.begun().error());
  if (auto st = db_.exec("DELETE FROM hub_keys"); !st) return fail(st.error());
  auto insert =
      db_.prepare("INSERT OR REPLACE INTO hub_keys (key_id, public_key, trusted) VALUES (?, ?, ?)");
  if (!insert) return fail(insert.error());
  for (const auto& id : state.retired) {
    if (auto st = insert->bind(1, id).bind_blob(2, "").bind(3, int64_t{0}).run(); !st) {
      return fail(st.error());
    }
  }
  for (const auto& raw : state.trusted) {
    auto st = insert->bind(1, ed25519::key_id(raw)).bind_blob(2, raw).bind(3, int64_t{1}).run();
    if (!st) return fail(st.error());
  }
  return tx.commit();
}

}  // namespace flotilla::agent
