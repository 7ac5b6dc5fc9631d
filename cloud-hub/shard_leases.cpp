#include "cloud-hub/shard_leases.hpp"

#include <algorithm>

#include "common/log.hpp"

namespace flotilla::hub {
namespace {

// Serialises schema creation among instances starting together (CREATE TABLE IF NOT EXISTS is
// not safe against a concurrent twin). Any constant works; this one spells "flot".
constexpr int64_t kSchemaLockKey = 0x666c6f74;

constexpr const char* kSchema = R"(
CREATE TABLE IF NOT EXISTS flotilla_lease_config (
  key text PRIMARY KEY,
  value text NOT NULL);
CREATE TABLE IF NOT EXISTS flotilla_shard_leases (
  shard integer PRIMARY KEY,
  owner text,
  epoch bigint NOT NULL DEFAULT 0,
  expires_at timestamptz NOT NULL DEFAULT '-infinity',
  acquired_at timestamptz);
CREATE TABLE IF NOT EXISTS flotilla_hub_instances (
  id text PRIMARY KEY,
  expires_at timestamptz NOT NULL,
  started_at timestamptz NOT NULL DEFAULT now());
ALTER TABLE flotilla_hub_instances ADD COLUMN IF NOT EXISTS api_url text NOT NULL DEFAULT '';
)";

std::string join_ids(const std::vector<uint32_t>& shards) {
  std::string out;
  for (uint32_t s : shards) out += (out.empty() ? "" : ",") + std::to_string(s);
  return out;
}

}  // namespace

Expected<std::unique_ptr<ShardLeases>> ShardLeases::create(ShardLeaseOptions options,
                                                           const Clock& clock) {
  if (options.instance_id.empty()) return Error("Failed to start shard leases: empty instance id");
  if (options.shards == 0) return Error("Failed to start shard leases: shard count is 0");
  if (options.lease_period < Millis(100)) {
    return Error("Failed to start shard leases: lease period " +
                 std::to_string(options.lease_period.count()) + " ms is below 100 ms");
  }
  std::unique_ptr<ShardLeases> leases(new ShardLeases(std::move(options), clock, pg::Conn()));
  if (auto st = leases->connect(); !st) return st.error();
  pg::Conn& conn = leases->conn_;
  const uint32_t shards = leases->options_.shards;
  pg::Tx tx(conn);
  if (!tx.begun()) return tx.begun().error();
  if (auto r = conn.query("SELECT pg_advisory_xact_lock($1)", {int64_t{kSchemaLockKey}}); !r) {
    return r.error();
  }
  if (auto st = conn.exec(kSchema); !st) return st.error();
  if (auto r = conn.query("INSERT INTO flotilla_lease_config(key, value) VALUES ('shards', $1) "
                          "ON CONFLICT (key) DO NOTHING",
                          {shards});
      !r) {
    return r.error();
  }
  auto stored = conn.query("SELECT value FROM flotilla_lease_config WHERE key = 'shards'");
  if (!stored) return stored.error();
  if (stored->rows() != 1 || stored->text(0, 0) != std::to_string(shards)) {
    return Error(
        "Failed to join the hub instances sharing the database: its shard leases are for " +
        (stored->rows() == 1 ? stored->text(0, 0) : std::string("?")) +
        " shards, this instance runs with --shards " + std::to_string(shards) +
        "; every hub instance and agent must use the same shard count");
  }
  if (auto r = conn.query(
          "INSERT INTO flotilla_shard_leases(shard) SELECT generate_series(0, $1::integer - 1) "
          "ON CONFLICT (shard) DO NOTHING",
          {shards});
      !r) {
    return r.error();
  }
  if (auto st = tx.commit(); !st) return st.error();
  // Counted among the live instances from now on, so the others start making room at once.
  if (auto st = leases->heartbeat(); !st) return st.error();
  return leases;
}

ShardLeases::ShardLeases(ShardLeaseOptions options, const Clock& clock, pg::Conn conn)
    : options_(std::move(options)),
      clock_(clock),
      log_(log::get("leases")),
      conn_(std::move(conn)) {}

Status ShardLeases::connect() {
  pg::ConnectOptions co;
  co.connect_timeout_s = std::max<int>(2, static_cast<int>(options_.lease_period.count() / 1000));
  // A statement stuck longer than a lease period is worth nothing: its leases are gone anyway.
  co.statement_timeout = options_.lease_period;
  auto conn = pg::Conn::connect(options_.conninfo, co);
  if (!conn) return conn.error();
  // The lease tables live in "public", where the stores' fencing check looks for them
  // (Store::check_lease), whatever schemas the role's default search path would name first.
  if (auto st = conn->exec("SET search_path TO public"); !st) return st;
  conn_ = std::move(*conn);
  return Ok();
}

std::map<uint32_t, OwnedLease> ShardLeases::owned() const {
  const TimePoint now = clock_.now();
  std::lock_guard lock(mu_);
  std::map<uint32_t, OwnedLease> out;
  for (const auto& [shard, held] : held_) {
    if (held.valid_until > now) out[shard] = held;
  }
  return out;
}

uint32_t ShardLeases::quota() const {
  std::lock_guard lock(mu_);
  return quota_;
}

void ShardLeases::drop_expired(LeaseChanges& changes) {
  const TimePoint now = clock_.now();
  std::vector<uint32_t> expired;
  for (auto it = held_.begin(); it != held_.end();) {
    if (it->second.valid_until <= now) {
      expired.push_back(it->first);
      it = held_.erase(it);
    } else {
      ++it;
    }
  }
  if (expired.empty()) return;
  log_->warn("leases expired before renewal shards={} instance={}", join_ids(expired),
             options_.instance_id);
  changes.lost.insert(changes.lost.end(), expired.begin(), expired.end());
}

void ShardLeases::held_arrays(const std::vector<uint32_t>& shards, std::string* shard_array,
                              std::string* epoch_array) const {
  std::vector<uint32_t> kept;
  std::string epochs;
  for (uint32_t s : shards) {
    auto it = held_.find(s);
    if (it == held_.end()) continue;
    kept.push_back(s);
    epochs += (epochs.empty() ? "" : ",") + std::to_string(it->second.epoch);
  }
  *shard_array = "{" + join_ids(kept) + "}";
  *epoch_array = "{" + epochs + "}";
}

Status ShardLeases::heartbeat() {
  std::string api_url;
  {
    std::lock_guard lock(mu_);
    api_url = api_url_;
  }
  auto r = conn_.query(
      "INSERT INTO flotilla_hub_instances(id, expires_at, api_url) "
      "VALUES ($1, now() + $2::bigint * interval '1 millisecond', $3) "
      "ON CONFLICT (id) DO UPDATE SET expires_at = EXCLUDED.expires_at, api_url = $3",
      {options_.instance_id, int64_t{options_.lease_period.count()}, api_url});
  if (!r) return r.error();
  // Instances gone for long only clutter the table.
  auto gone = conn_.query(
      "DELETE FROM flotilla_hub_instances WHERE expires_at < now() - interval '1 hour'");
  if (!gone) return gone.error();
  return Ok();
}

Status ShardLeases::renew(LeaseChanges& changes) {
  std::string shard_array, epoch_array;
  std::vector<uint32_t> mine;
  {
    std::lock_guard lock(mu_);
    if (held_.empty()) return Ok();
    for (const auto& [shard, held] : held_) mine.push_back(shard);
    held_arrays(mine, &shard_array, &epoch_array);
  }
  const TimePoint sent = clock_.now();
  auto r = conn_.query(
      "UPDATE flotilla_shard_leases SET expires_at = now() + $4::bigint * interval '1 millisecond' "
      "WHERE owner = $1 AND expires_at > now() "
      "AND (shard, epoch) IN (SELECT * FROM unnest($2::integer[], $3::bigint[])) "
      "RETURNING shard, epoch",
      {options_.instance_id, shard_array, epoch_array, int64_t{options_.lease_period.count()}});
  if (!r) return r.error();
  std::map<uint32_t, int64_t> renewed;
  for (int i = 0; i < r->rows(); ++i) {
    renewed[static_cast<uint32_t>(r->int64(i, 0))] = r->int64(i, 1);
  }
  std::vector<uint32_t> lost;
  std::lock_guard lock(mu_);
  for (auto it = held_.begin(); it != held_.end();) {
    if (renewed.count(it->first) != 0) {
      it->second.valid_until = sent + options_.lease_period;
      ++it;
    } else {
      lost.push_back(it->first);
      it = held_.erase(it);
    }
  }
  if (!lost.empty()) {
    log_->warn("leases lost (expired in the database) shards={} instance={}", join_ids(lost),
               options_.instance_id);
    changes.lost.insert(changes.lost.end(), lost.begin(), lost.end());
  }
  return Ok();
}

Expected<uint32_t> ShardLeases::compute_quota() {
  auto r =
      conn_.query("SELECT id FROM flotilla_hub_instances WHERE expires_at > now() ORDER BY id");
  if (!r) return r.error();
  const uint32_t live = static_cast<uint32_t>(r->rows());
  uint32_t rank = live;
  for (int i = 0; i < r->rows(); ++i) {
    if (r->text(i, 0) == options_.instance_id) rank = static_cast<uint32_t>(i);
  }
  if (rank == live) {
    return Error("Failed to compute the shard quota of '" + options_.instance_id +
                 "': its heartbeat is not among the live instances");
  }
  const uint32_t shards = options_.shards;
  return shards / live + (rank < shards % live ? 1 : 0);
}

Status ShardLeases::release(const std::vector<uint32_t>& shards) {
  if (options_.before_release) {
    for (uint32_t s : shards) options_.before_release(s);
  }
  std::string shard_array, epoch_array;
  {
    std::lock_guard lock(mu_);
    held_arrays(shards, &shard_array, &epoch_array);
    // Gone from held_ whatever happens next: released now, or left to expire if this fails.
    for (uint32_t s : shards) held_.erase(s);
  }
  if (conn_.broken()) {
    if (auto st = connect(); !st) return st;
  }
  auto r = conn_.query(
      "UPDATE flotilla_shard_leases SET owner = NULL, expires_at = '-infinity' "
      "WHERE owner = $1 AND (shard, epoch) IN (SELECT * FROM unnest($2::integer[], $3::bigint[]))",
      {options_.instance_id, shard_array, epoch_array});
  if (!r) return r.error();
  return Ok();
}

Status ShardLeases::release_above(uint32_t quota, LeaseChanges& changes) {
  std::vector<uint32_t> excess;
  {
    std::lock_guard lock(mu_);
    if (held_.size() <= quota) return Ok();
    // The highest-numbered shards go; which ones does not matter for balance.
    auto it = held_.rbegin();
    for (size_t n = held_.size() - quota; n > 0; --n, ++it) excess.push_back(it->first);
  }
  log_->info("releasing leases above quota shards={} quota={} instance={}", join_ids(excess), quota,
             options_.instance_id);
  changes.lost.insert(changes.lost.end(), excess.begin(), excess.end());
  return release(excess);
}

Status ShardLeases::acquire_up_to(uint32_t quota, LeaseChanges& changes) {
  size_t held = 0;
  {
    std::lock_guard lock(mu_);
    held = held_.size();
  }
  if (held >= quota) return Ok();
  const TimePoint sent = clock_.now();
  // SKIP LOCKED: instances acquiring together take different rows instead of queueing; the outer
  // WHERE re-checks the expiry on the row as locked, so a lease renewed or taken meanwhile stays.
  auto r = conn_.query(
      "UPDATE flotilla_shard_leases SET owner = $1, epoch = epoch + 1, "
      "expires_at = now() + $3::bigint * interval '1 millisecond', acquired_at = now() "
      "WHERE shard IN (SELECT shard FROM flotilla_shard_leases WHERE expires_at <= now() "
      "ORDER BY shard LIMIT $2 FOR UPDATE SKIP LOCKED) AND expires_at <= now() "
      "RETURNING shard, epoch",
      {options_.instance_id, static_cast<int64_t>(quota - held),
       int64_t{options_.lease_period.count()}});
  if (!r) return r.error();
  std::vector<uint32_t> shards;
  std::string epochs;
  std::lock_guard lock(mu_);
  for (int i = 0; i < r->rows(); ++i) {
    const Lease lease{static_cast<uint32_t>(r->int64(i, 0)), r->int64(i, 1)};
    held_[lease.shard] = OwnedLease{lease.epoch, sent + options_.lease_period};
    changes.acquired.push_back(lease);
    shards.push_back(lease.shard);
    epochs += (epochs.empty() ? "" : ",") + std::to_string(lease.epoch);
  }
  if (!shards.empty()) {
    log_->info("leases acquired shards={} epochs={} quota={} instance={}", join_ids(shards), epochs,
               quota, options_.instance_id);
  }
  return Ok();
}

LeaseChanges ShardLeases::tick() {
  LeaseChanges changes;
  {
    std::lock_guard lock(mu_);
    drop_expired(changes);
  }
  auto fail = [&](const Error& error) {
    changes.status =
        error.WithContext("Failed to renew the shard leases of '" + options_.instance_id + "'");
    log_->warn("{}", changes.status.error().message());
    return changes;
  };
  if (conn_.broken()) {
    if (auto st = connect(); !st) return fail(st.error());
    log_->info("reconnected to the database instance={}", options_.instance_id);
  }
  if (auto st = heartbeat(); !st) return fail(st.error());
  if (auto st = renew(changes); !st) return fail(st.error());
  auto quota = compute_quota();
  if (!quota) return fail(quota.error());
  {
    std::lock_guard lock(mu_);
    quota_ = *quota;
  }
  if (auto st = release_above(*quota, changes); !st) return fail(st.error());
  if (auto st = acquire_up_to(*quota, changes); !st) return fail(st.error());
  if (auto st = read_leader(); !st) return fail(st.error());
  return changes;
}

Status ShardLeases::read_leader() {
  auto r = conn_.query(
      "SELECT l.owner, i.api_url FROM flotilla_shard_leases l JOIN flotilla_hub_instances i "
      "ON i.id = l.owner WHERE l.shard = 0 AND l.expires_at > now()");
  if (!r) return r.error();
  std::lock_guard lock(mu_);
  leader_ = r->rows() == 0 ? InstanceInfo{} : InstanceInfo{r->text(0, 0), r->text(0, 1)};
  return Ok();
}

void ShardLeases::set_api_url(std::string url) {
  std::lock_guard lock(mu_);
  api_url_ = std::move(url);
}

InstanceInfo ShardLeases::leader() const {
  std::lock_guard lock(mu_);
  return leader_;
}

Expected<std::vector<uint32_t>> ShardLeases::leave() {
  std::vector<uint32_t> released;
  {
    std::lock_guard lock(mu_);
    for (const auto& [shard, held] : held_) released.push_back(shard);
    quota_ = 0;
  }
  if (auto st = release(released); !st) return st.error().WithContext("Failed to leave");
  auto gone =
      conn_.query("DELETE FROM flotilla_hub_instances WHERE id = $1", {options_.instance_id});
  if (!gone) return gone.error().WithContext("Failed to leave");
  log_->info("left shards={} instance={}", join_ids(released), options_.instance_id);
  return released;
}

}  // namespace flotilla::hub
