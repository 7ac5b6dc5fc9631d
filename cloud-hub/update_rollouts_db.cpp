// UpdateRollouts' database (rollouts.db) and JSON views.
#include <algorithm>

#include "cloud-hub/update_rollouts.hpp"

namespace flotilla::hub {
namespace {

using json = nlohmann::json;

const std::vector<std::string> kMigrations = {R"(
CREATE TABLE rollouts (
  name TEXT PRIMARY KEY,
  spec TEXT NOT NULL,          -- canonical JSON of the Rollout manifest
  manifest TEXT NOT NULL,      -- the artifact's manifest, exactly as signed
  signature BLOB NOT NULL,
  has_delta INTEGER NOT NULL,
  phase TEXT NOT NULL,         -- Progressing | Paused | Completed | Aborted
  paused_reason TEXT NOT NULL,
  current_wave INTEGER NOT NULL,
  soak_until_ms INTEGER,       -- NULL: not soaking
  accepted_failed INTEGER NOT NULL,
  created_ms INTEGER NOT NULL,
  updated_ms INTEGER NOT NULL
);
CREATE TABLE rollout_nodes (
  rollout TEXT NOT NULL,
  node TEXT NOT NULL,
  wave INTEGER NOT NULL,
  first_generation INTEGER NOT NULL,  -- 0: not assigned yet
  generation INTEGER NOT NULL,
  assigned_ms INTEGER NOT NULL,
  result TEXT NOT NULL,               -- '' | succeeded | failed | aborted
  phase TEXT NOT NULL,
  message TEXT NOT NULL,
  attempts INTEGER NOT NULL,
  seq INTEGER NOT NULL,
  updated_ms INTEGER NOT NULL,
  PRIMARY KEY (rollout, node)
);
-- The latest generation sent to each node, across rollouts (never handed out twice).
CREATE TABLE node_generations (node TEXT PRIMARY KEY, generation INTEGER NOT NULL);
)"};

// PostgreSQL: 64-bit integers and BYTEA; otherwise the same tables.
std::vector<std::string> postgres_migrations() {
  std::vector<std::string> steps;
  for (std::string step : kMigrations) {
    for (auto [from, to] :
         {std::pair<std::string, std::string>{" INTEGER", " BIGINT"}, {" BLOB", " BYTEA"}}) {
      for (size_t at = step.find(from); at != std::string::npos; at = step.find(from, at)) {
        step.replace(at, from.size(), to);
        at += to.size();
      }
    }
    steps.push_back(std::move(step));
  }
  return steps;
}

constexpr const char* kRolloutColumns =
    "name, spec, manifest, signature, has_delta, phase, paused_reason, current_wave, "
    "soak_until_ms, accepted_failed, created_ms, updated_ms";
constexpr const char* kNodeColumns =
    "rollout, node, wave, first_generation, generation, assigned_ms, result, phase, message, "
    "attempts, seq, updated_ms";

}  // namespace

Status UpdateRollouts::open() {
  auto db = db::open_sqlite(options_.db_path);
  if (!db) return db.error().WithContext("Failed to open '" + options_.db_path + "'");
  return open(std::move(*db));
}

Status UpdateRollouts::open(std::unique_ptr<db::Conn> db) {
  std::lock_guard lock(mu_);
  db_ = std::move(db);
  static const std::vector<std::string> kPostgres = postgres_migrations();
  const bool sqlite = db_->backend() == db::Backend::kSqlite;
  if (auto st = db_->migrate(sqlite ? kMigrations : kPostgres); !st) {
    return st.error().WithContext("Failed to migrate the rollouts' database " + db_->name());
  }
  if (!driving_) return Ok();
  auto st = load_locked();
  loaded_ = static_cast<bool>(st);
  return st;
}

Status UpdateRollouts::load_locked() {
  rollouts_.clear();
  generations_.clear();
  auto rows = db_->prepare(std::string("SELECT ") + kRolloutColumns + " FROM rollouts");
  if (!rows) return rows.error();
  Status st = db::for_each_row(*rows, [&]() -> Status {
    Rollout r;
    const std::string name = rows->col_text(0);
    r.spec_json = rows->col_text(1);
    auto parsed = parse_all_manifests(r.spec_json, "rollout '" + name + "' in the database");
    if (!parsed) return parsed.error();
    if (parsed->rollouts.size() != 1)
      return Error("rollout '" + name + "': stored spec unreadable");
    r.spec = parsed->rollouts.front();
    r.manifest_text = rows->col_text(2);
    r.signature = rows->col_text(3);
    r.has_delta = rows->col_int(4) != 0;
    r.phase = rows->col_text(5);
    r.paused_reason = rows->col_text(6);
    r.current_wave = static_cast<int>(rows->col_int(7));
    if (!rows->col_null(8)) r.soak_until_ms = rows->col_int(8);
    r.accepted_failed = rows->col_int(9);
    r.created_ms = rows->col_int(10);
    r.updated_ms = rows->col_int(11);
    rollouts_.emplace(name, std::move(r));
    return Ok();
  });
  if (!st) return st;
  auto nodes = db_->prepare(std::string("SELECT ") + kNodeColumns +
                            " FROM rollout_nodes ORDER BY rollout, node");
  if (!nodes) return nodes.error();
  st = db::for_each_row(*nodes, [&]() -> Status {
    auto it = rollouts_.find(nodes->col_text(0));
    if (it == rollouts_.end()) return Ok();
    NodeState n;
    n.node = nodes->col_text(1);
    n.wave = static_cast<int>(nodes->col_int(2));
    n.first_generation = static_cast<uint64_t>(nodes->col_int(3));
    n.generation = static_cast<uint64_t>(nodes->col_int(4));
    n.assigned_ms = nodes->col_int(5);
    n.result = nodes->col_text(6);
    n.phase = nodes->col_text(7);
    n.message = nodes->col_text(8);
    n.attempts = static_cast<uint32_t>(nodes->col_int(9));
    n.seq = static_cast<uint64_t>(nodes->col_int(10));
    n.updated_ms = nodes->col_int(11);
    it->second.index[n.node] = it->second.nodes.size();
    it->second.nodes.push_back(std::move(n));
    return Ok();
  });
  if (!st) return st;
  auto gens = db_->prepare("SELECT node, generation FROM node_generations");
  if (!gens) return gens.error();
  return db::for_each_row(
      *gens, [&] { generations_[gens->col_text(0)] = static_cast<uint64_t>(gens->col_int(1)); });
}

Status UpdateRollouts::save_locked(Rollout& r, Outbox& out) {
  auto write = [&]() -> Status {
    db::Tx tx(*db_);
    if (auto st = tx.begun(); !st) return st;
    if (fence_) {
      if (auto st = fence_(*db_); !st) return st;
    }
    static const std::string kUpsertRollout = db::upsert_sql("rollouts", kRolloutColumns, 1);
    auto row = db_->prepare(kUpsertRollout);
    if (!row) return row.error();
    row->bind(1, r.spec.name)
        .bind(2, r.spec_json)
        .bind(3, r.manifest_text)
        .bind_blob(4, r.signature)
        .bind(5, int64_t{r.has_delta})
        .bind(6, r.phase)
        .bind(7, r.paused_reason)
        .bind(8, int64_t{r.current_wave})
        .bind(10, r.accepted_failed)
        .bind(11, r.created_ms)
        .bind(12, r.updated_ms);
    if (r.soak_until_ms) {
      row->bind(9, *r.soak_until_ms);
    } else {
      row->bind_null(9);
    }
    if (auto st = row->run(); !st) return st;
    for (size_t i : r.dirty) {
      const NodeState& n = r.nodes[i];
      static const std::string kUpsertNode = db::upsert_sql("rollout_nodes", kNodeColumns, 2);
      auto node = db_->prepare(kUpsertNode);
      if (!node) return node.error();
      node->bind(1, r.spec.name)
          .bind(2, n.node)
          .bind(3, int64_t{n.wave})
          .bind(4, static_cast<int64_t>(n.first_generation))
          .bind(5, static_cast<int64_t>(n.generation))
          .bind(6, n.assigned_ms)
          .bind(7, n.result)
          .bind(8, n.phase)
          .bind(9, n.message)
          .bind(10, int64_t{n.attempts})
          .bind(11, static_cast<int64_t>(n.seq))
          .bind(12, n.updated_ms);
      if (auto st = node->run(); !st) return st;
      if (n.generation == 0) continue;
      auto gen = db_->prepare(
          "INSERT INTO node_generations (node, generation) VALUES (?, ?) ON CONFLICT (node) DO "
          "UPDATE SET generation = CASE WHEN node_generations.generation > excluded.generation "
          "THEN node_generations.generation ELSE excluded.generation END");
      if (!gen) return gen.error();
      if (auto st = gen->bind(1, n.node).bind(2, static_cast<int64_t>(n.generation)).run(); !st) {
        return st;
      }
    }
    return tx.commit();
  };
  Status st = write();
  const bool nodes_changed = !r.dirty.empty();
  r.dirty.clear();
  if (st) {
    // Watchers hear of what a view shows, not of every save (tick() saves each second): a
    // node's change, or the rollout's phase, reason, wave, soak or accepted failures.
    std::string noted = r.phase + '\n' + r.paused_reason + '\n' + std::to_string(r.current_wave) +
                        '\n' + std::to_string(r.soak_until_ms.value_or(-1)) + '\n' +
                        std::to_string(r.accepted_failed) + '\n' + std::to_string(r.updated_ms);
    if (nodes_changed || noted != r.noted) {
      r.noted = std::move(noted);
      note_changed_locked(r.spec.name);
    }
    return st;
  }
  // Memory goes back to what is stored; nothing is sent about what was not kept.
  out.clear();
  const std::string name = r.spec.name;
  if (auto reloaded = load_locked(); !reloaded) {
    log_->error("Failed to reload rollouts after a failed write: {}", reloaded.error().message());
  }
  return st.error().WithContext("Failed to save rollout '" + name + "'");
}

void UpdateRollouts::note_changed_locked(const std::string& name) {
  if (listener_) listener_({Change{Change::Kind::kRollout, name}});
}

json UpdateRollouts::view_locked(const Rollout& r, bool summary) const {
  const int64_t now = clock_.wall_ms();
  int64_t pending = 0, in_progress = 0, succeeded = 0, failed = 0, aborted = 0;
  json nodes = json::array();
  for (const auto& n : r.nodes) {
    if (n.first_generation == 0) {
      ++pending;
    } else if (n.result.empty()) {
      ++in_progress;
    } else if (n.result == "succeeded") {
      ++succeeded;
    } else if (n.result == "failed") {
      ++failed;
    } else {
      ++aborted;
    }
    if (summary) continue;
    nodes.push_back({{"node", n.node},
                     {"wave", n.wave + 1},
                     {"phase", n.phase},
                     {"result", n.result},
                     {"message", n.message},
                     {"attempts", n.attempts},
                     {"generation", n.generation},
                     {"updated", format_time(n.updated_ms)}});
  }
  json status = {
      {"phase", r.phase},
      {"pausedReason", r.paused_reason},
      {"currentWave", r.current_wave + 1},
      {"waves", r.spec.waves.size()},
      {"soakRemainingSeconds",
       r.soak_until_ms ? std::max<int64_t>(0, (*r.soak_until_ms - now + 999) / 1000) : 0},
      {"acceptedFailures", r.accepted_failed},
      {"counts",
       {{"nodes", r.nodes.size()},
        {"pending", pending},
        {"inProgress", in_progress},
        {"succeeded", succeeded},
        {"failed", failed},
        {"aborted", aborted}}},
      {"updatedAt", format_time(r.updated_ms)}};
  if (!summary) status["nodes"] = std::move(nodes);
  json doc = json::parse(r.spec_json, nullptr, false);
  if (!doc.is_object()) doc = to_json(r.spec);
  doc["metadata"]["creationTimestamp"] = format_time(r.created_ms);
  doc["status"] = std::move(status);
  return doc;
}

json UpdateRollouts::list_view(bool summary) {
  std::lock_guard lock(mu_);
  json items = json::array();
  for (const auto& [name, r] : rollouts_) items.push_back(view_locked(r, summary));
  return json{{"items", items}};
}

std::optional<json> UpdateRollouts::view(const std::string& name, bool summary) {
  std::lock_guard lock(mu_);
  auto it = rollouts_.find(name);
  if (it == rollouts_.end()) return std::nullopt;
  return view_locked(it->second, summary);
}

}  // namespace flotilla::hub
