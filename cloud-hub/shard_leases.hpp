// ShardLeases: which shards this hub instance owns, when several instances share one PostgreSQL
// database (docs/multi-hub.md); the hub ticks it on its thread hub-leases (hub.cpp).
//
// Each shard has one row in flotilla_shard_leases: its owner, the expiry of the owner's lease and
// an epoch (the fencing token) that grows by one at every acquisition. Each instance keeps a
// heartbeat row in flotilla_hub_instances. Every expiry is computed and compared by the database's
// clock (now()), so the instances' clocks never need to agree. One tick():
//   1. refreshes the heartbeat (expires one lease period later);
//   2. renews the leases it holds; a lease no longer renewable (expired, then taken) is lost;
//   3. computes its quota from the live instances (heartbeat not expired), ordered by id: the
//      first (shards mod live) get ceil(shards / live), the others floor, so quotas add up to the
//      shard count exactly;
//   4. releases, gracefully, the leases above its quota (so a joining instance gets its share at
//      once instead of after an expiry), calling `before_release` for each shard first;
//   5. acquires free shards (released, or with an expired lease) up to its quota, in one UPDATE
//      whose WHERE re-checks the expiry on the row it locks: two instances never both acquire;
//   6. reads the leader: the holder of shard 0's lease, which drives the OTA rollouts
//      (UpdateRollouts::set_driving), and the API address its heartbeat gave.
// Call tick() at least three times per lease period (lease_period / 3 is the recommended
// interval). A killed instance's shards are free one lease period after its last tick and taken
// by the others at their next tick: within lease_period + tick interval.
//
// No double ownership, even across a paused process: a lease counts as owned locally only until
// (the local monotonic time just before the statement that granted or renewed it) + lease period,
// which is never later than the database's expiry. owned() and tick() drop what passed that
// deadline even when the database cannot be reached. Writes to shard state must still carry the
// epoch and be refused by the database when the shard's epoch moved on (fencing): an owner can
// lose its lease between checking owned() and its write landing.
//
// Instance ids must be unique among running instances (e.g. host name plus process id). A lease
// left by an earlier process with the same id is not adopted: it expires like a crashed one.
//
// Thread-safety: tick() and leave() from one thread; owned() from any thread.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <spdlog/logger.h>

#include "cloud-hub/pg.hpp"
#include "common/clock.hpp"
#include "common/expected.hpp"

namespace flotilla::hub {

struct ShardLeaseOptions {
  std::string conninfo;     // libpq URI or key=value string (the --store postgres://... value)
  std::string instance_id;  // unique among running instances
  uint32_t shards = 16;     // the same in every instance and agent
  Millis lease_period{10000};
  // Called in tick() before a lease above quota is released (not when one is lost): the place
  // to stop consuming the shard so the next owner starts after this one finished.
  std::function<void(uint32_t shard)> before_release;
};

struct Lease {
  uint32_t shard = 0;
  int64_t epoch = 0;  // fencing token: grows at every acquisition
  bool operator==(const Lease&) const = default;
};

// A lease as its holder sees it.
struct OwnedLease {
  int64_t epoch = 0;
  // Local monotonic time until which the lease counts as owned without a further renewal.
  TimePoint valid_until;
};

struct LeaseChanges {
  std::vector<Lease> acquired;
  std::vector<uint32_t> lost;  // released above quota, taken after expiry, or expired locally
  Status status;               // the database error that cut the tick short; Ok otherwise
};

// A live instance as the others see it.
struct InstanceInfo {
  std::string id;       // empty: none
  std::string api_url;  // where its REST API answers (set_api_url), e.g. http://10.0.0.5:8080
};

class ShardLeases {
 public:
  // Connects, creates the tables if missing (one instance at a time, under an advisory lock),
  // checks that the database's leases are for `options.shards` shards, and writes the first
  // heartbeat (the others count this instance from their next tick). Owns nothing before tick().
  static Expected<std::unique_ptr<ShardLeases>> create(ShardLeaseOptions options,
                                                       const Clock& clock);

  LeaseChanges tick();
  // Gracefully leaves: releases every lease (calling before_release for each) and removes the
  // heartbeat, so the others take the shards at their next tick. Returns the released shards.
  Expected<std::vector<uint32_t>> leave();

  // Every lease held and not past its local deadline, by shard.
  std::map<uint32_t, OwnedLease> owned() const;
  // The quota computed by the last successful tick (0 before).
  uint32_t quota() const;
  const std::string& instance_id() const { return options_.instance_id; }
  // This instance's API address, written with each heartbeat from the next tick on.
  void set_api_url(std::string url);
  // The holder of shard 0's lease as of the last successful tick (id empty: none or unknown).
  InstanceInfo leader() const;

 private:
  ShardLeases(ShardLeaseOptions options, const Clock& clock, pg::Conn conn);
  Status connect();
  void drop_expired(LeaseChanges& changes);  // mu_ held
  Status heartbeat();
  Status read_leader();
  Status renew(LeaseChanges& changes);
  Expected<uint32_t> compute_quota();
  // Calls before_release, forgets `shards` and frees their rows (held ones, by epoch).
  Status release(const std::vector<uint32_t>& shards);
  Status release_above(uint32_t quota, LeaseChanges& changes);
  Status acquire_up_to(uint32_t quota, LeaseChanges& changes);
  // '{3,7}' and '{12,4}' for the held shards and their epochs (in the same order).
  void held_arrays(const std::vector<uint32_t>& shards, std::string* shard_array,
                   std::string* epoch_array) const;  // mu_ held

  ShardLeaseOptions options_;
  const Clock& clock_;
  std::shared_ptr<spdlog::logger> log_;
  pg::Conn conn_;
  mutable std::mutex mu_;
  std::map<uint32_t, OwnedLease> held_;
  uint32_t quota_ = 0;
  std::string api_url_;
  InstanceInfo leader_;
};

}  // namespace flotilla::hub
