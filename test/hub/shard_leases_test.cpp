// Shard leases (cloud-hub/shard_leases.hpp): several instances over one real PostgreSQL, lease
// period 1 s, ticking every 250 ms. After every round of ticks the invariants are checked: no
// shard owned by two instances (dead and paused ones included: their owned() must lapse by
// itself), each (shard, epoch) belongs to one instance only, a new owner always has a higher epoch,
// and what an instance believes it owns is what the database says.
#include "cloud-hub/shard_leases.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <map>
#include <set>
#include <stdexcept>
#include <thread>

#include "test/support/postgres.hpp"

namespace flotilla::hub {
namespace {

using std::chrono::steady_clock;
using testing::Postgres;

constexpr Millis kPeriod{1000};
constexpr Millis kTick{250};
constexpr uint32_t kShards = 16;

struct Member {
  std::string label;  // id#n: tells incarnations with the same id apart
  std::unique_ptr<ShardLeases> leases;
  bool ticking = true;
  std::vector<uint32_t> released_by_hook;
};

class ShardLeasesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (auto why = Postgres::unavailable_reason(); !why.empty()) GTEST_SKIP() << why;
    auto st = server_.start();
    ASSERT_TRUE(st) << st.error().message();
    auto info = server_.create_database("leases");
    ASSERT_TRUE(info) << info.error().message();
    conninfo_ = *info;
    auto conn = pg::Conn::connect(conninfo_);
    ASSERT_TRUE(conn) << conn.error().message();
    db_ = std::move(*conn);
  }

  // A new instance (or a new incarnation of one, with the same id); ticks from now on.
  Member& join(const std::string& id) {
    auto m = std::make_unique<Member>();
    m->label = id + "#" + std::to_string(members_.size());
    ShardLeaseOptions options;
    options.conninfo = conninfo_;
    options.instance_id = id;
    options.shards = kShards;
    options.lease_period = kPeriod;
    Member* raw = m.get();
    options.before_release = [raw](uint32_t shard) { raw->released_by_hook.push_back(shard); };
    auto leases = ShardLeases::create(options, clock_);
    // Thrown: GoogleTest fails the test with the message instead of going on without it.
    if (!leases) throw std::runtime_error(leases.error().message());
    m->leases = std::move(*leases);
    members_.push_back(std::move(m));
    return *members_.back();
  }

  // One tick of every ticking member, the invariants checked, then a pause of kTick.
  void round() {
    for (auto& m : members_) {
      if (!m->ticking) continue;
      auto changes = m->leases->tick();
      EXPECT_TRUE(changes.status) << changes.status.error().message();
      lost_[m->label] += changes.lost.size();
    }
    check_invariants();
    std::this_thread::sleep_for(kTick);
  }

  // Rounds until `pred` holds; false after `timeout`.
  template <typename Pred>
  bool rounds_until(Pred pred, Millis timeout) {
    const auto deadline = steady_clock::now() + timeout;
    while (steady_clock::now() < deadline) {
      round();
      if (pred()) return true;
    }
    return pred();
  }

  // Only ticking members count: the shards each owns.
  std::map<Member*, size_t> shares() {
    std::map<Member*, size_t> out;
    for (auto& m : members_) {
      if (m->ticking) out[m.get()] = m->leases->owned().size();
    }
    return out;
  }

  // Every shard owned by a ticking member, and each of them holds floor or ceil of the average.
  bool balanced() {
    const auto s = shares();
    if (s.empty()) return false;
    const size_t lo = kShards / s.size();
    const size_t hi = lo + (kShards % s.size() != 0 ? 1 : 0);
    size_t total = 0;
    for (const auto& [m, n] : s) {
      if (n < lo || n > hi) return false;
      total += n;
    }
    return total == kShards;
  }

  void check_invariants() {
    // owned() of every member read first (no tick runs meanwhile, and owned() only shrinks with
    // time), then the database.
    std::map<uint32_t, std::string> owner;
    std::vector<std::tuple<std::string, uint32_t, int64_t>> beliefs;
    for (auto& m : members_) {
      for (const auto& [shard, lease] : m->leases->owned()) {
        beliefs.emplace_back(m->label, shard, lease.epoch);
        auto [it, fresh] = owner.emplace(shard, m->leases->instance_id());
        EXPECT_TRUE(fresh) << "shard " << shard << " owned by both " << it->second << " and "
                           << m->leases->instance_id();
        ++checks_;
      }
    }
    auto rows = db_.query("SELECT shard, owner, epoch FROM flotilla_shard_leases");
    ASSERT_TRUE(rows) << rows.error().message();
    std::map<uint32_t, std::pair<std::string, int64_t>> in_db;
    for (int i = 0; i < rows->rows(); ++i) {
      in_db[static_cast<uint32_t>(rows->int64(i, 0))] = {rows->text(i, 1), rows->int64(i, 2)};
    }
    for (const auto& [who, shard, epoch] : beliefs) {
      const std::string id = who.substr(0, who.find('#'));
      EXPECT_EQ(in_db[shard].first, id) << "shard " << shard;
      EXPECT_EQ(in_db[shard].second, epoch) << "shard " << shard;
      // One holder per (shard, epoch), and epochs only grow from one holder to the next.
      auto [it, fresh] = epoch_holder_.emplace(std::make_pair(shard, epoch), who);
      EXPECT_EQ(it->second, who) << "shard " << shard << " epoch " << epoch << " held twice";
      if (fresh) {
        EXPECT_GT(epoch, max_epoch_[shard]) << "shard " << shard << " went back in epoch";
        max_epoch_[shard] = epoch;
      }
    }
  }

  // A measured duration, in the test's XML properties and on stdout.
  void report(const std::string& key, steady_clock::duration d) {
    const auto ms = std::chrono::duration_cast<Millis>(d).count();
    RecordProperty(key, std::to_string(ms));
    std::printf("%s=%lld\n", key.c_str(), static_cast<long long>(ms));
  }

  std::set<uint32_t> owned_set(Member& m) {
    std::set<uint32_t> out;
    for (const auto& [shard, lease] : m.leases->owned()) out.insert(shard);
    return out;
  }

  SystemClock clock_;  // real time: the database's now() runs on it too
  Postgres server_;
  std::string conninfo_;
  pg::Conn db_;
  std::vector<std::unique_ptr<Member>> members_;
  std::map<std::pair<uint32_t, int64_t>, std::string> epoch_holder_;
  std::map<uint32_t, int64_t> max_epoch_;
  std::map<std::string, size_t> lost_;  // by label
  size_t checks_ = 0;
};

TEST_F(ShardLeasesTest, ThreeInstancesShareSixteenShardsEvenly) {
  join("hub-a");
  join("hub-b");
  join("hub-c");
  ASSERT_TRUE(rounds_until([&] { return balanced(); }, Millis(5000)));
  std::set<uint32_t> all;
  for (auto& m : members_) {
    const auto mine = owned_set(*m);
    EXPECT_TRUE(mine.size() == 5 || mine.size() == 6) << m->leases->instance_id();
    all.insert(mine.begin(), mine.end());
    EXPECT_EQ(m->leases->quota(), mine.size());
  }
  EXPECT_EQ(all.size(), kShards);
  // Stable: more rounds change nothing (no shard moves between balanced instances).
  const auto epochs_before = max_epoch_;
  for (int i = 0; i < 4; ++i) round();
  EXPECT_TRUE(balanced());
  EXPECT_EQ(max_epoch_, epochs_before);
  EXPECT_GT(checks_, 0u);
}

TEST_F(ShardLeasesTest, KilledInstanceShardsMoveWithinTwoLeasePeriodsAndItsRestartGetsAShare) {
  join("hub-a");
  Member& b = join("hub-b");
  join("hub-c");
  ASSERT_TRUE(rounds_until([&] { return balanced(); }, Millis(5000)));
  const auto b_shards = owned_set(b);
  ASSERT_FALSE(b_shards.empty());

  // kill -9: no more ticks, no release. Its object stays in the invariant checks: what it
  // believes it owns must lapse before anyone else takes the shard.
  b.ticking = false;
  const auto killed = steady_clock::now();
  ASSERT_TRUE(rounds_until([&] { return balanced(); }, 3 * kPeriod));
  const auto takeover = steady_clock::now() - killed;
  report("takeover_ms", takeover);
  EXPECT_LE(takeover, 2 * kPeriod)
      << "took " << std::chrono::duration_cast<Millis>(takeover).count() << " ms";
  EXPECT_TRUE(b.leases->owned().empty());
  for (auto& m : members_) {
    if (m.get() != &b) {
      EXPECT_EQ(owned_set(*m).size(), 8u);
    }
  }

  // The process restarts with the same id: a new incarnation, which gets its share again from
  // the others' graceful releases, without waiting for any expiry.
  Member& b2 = join("hub-b");
  const auto rejoined = steady_clock::now();
  ASSERT_TRUE(rounds_until([&] { return balanced(); }, 3 * kPeriod));
  report("rejoin_ms", steady_clock::now() - rejoined);
  EXPECT_LT(steady_clock::now() - rejoined, kPeriod);
  EXPECT_TRUE(owned_set(b2).size() == 5 || owned_set(b2).size() == 6);
  EXPECT_EQ(lost_[b2.label], 0u);  // the new incarnation lost nothing
}

TEST_F(ShardLeasesTest, PausedInstanceThatResumesFindsItsLeasesTakenAndRebalances) {
  Member& a = join("hub-a");
  Member& b = join("hub-b");
  ASSERT_TRUE(rounds_until([&] { return balanced(); }, Millis(5000)));
  const auto a_before = a.leases->owned();
  ASSERT_EQ(a_before.size(), 8u);

  a.ticking = false;  // SIGSTOP: the process is frozen, then continues where it was
  ASSERT_TRUE(rounds_until([&] { return owned_set(b).size() == kShards; }, 3 * kPeriod));
  EXPECT_TRUE(a.leases->owned().empty()) << "a paused owner must stop counting its leases";

  a.ticking = true;
  auto first = a.leases->tick();
  ASSERT_TRUE(first.status) << first.status.error().message();
  EXPECT_EQ(first.lost.size(), a_before.size());  // every lease reported lost exactly once
  ASSERT_TRUE(rounds_until([&] { return balanced(); }, 3 * kPeriod));
  for (const auto& [shard, lease] : a.leases->owned()) {
    // Taken back only through a new acquisition: a new epoch, never the old one resurrected.
    if (a_before.count(shard) != 0) {
      EXPECT_GT(lease.epoch, a_before.at(shard).epoch);
    }
  }
}

TEST_F(ShardLeasesTest, GracefulLeaveHandsShardsOverAtTheNextTick) {
  join("hub-a");
  Member& b = join("hub-b");
  join("hub-c");
  ASSERT_TRUE(rounds_until([&] { return balanced(); }, Millis(5000)));
  const auto b_shards = owned_set(b);

  b.released_by_hook.clear();
  auto released = b.leases->leave();
  ASSERT_TRUE(released) << released.error().message();
  b.ticking = false;
  EXPECT_EQ(std::set<uint32_t>(released->begin(), released->end()), b_shards);
  EXPECT_EQ(std::set<uint32_t>(b.released_by_hook.begin(), b.released_by_hook.end()), b_shards);
  EXPECT_TRUE(b.leases->owned().empty());

  const auto left = steady_clock::now();
  round();  // one tick each, long before any lease period passes
  report("handover_ms", steady_clock::now() - left);
  EXPECT_TRUE(balanced());
  EXPECT_LT(steady_clock::now() - left, kPeriod / 2);
}

TEST_F(ShardLeasesTest, JoiningInstanceGetsItsShareFromGracefulReleases) {
  Member& a = join("hub-a");
  ASSERT_TRUE(rounds_until([&] { return owned_set(a).size() == kShards; }, Millis(3000)));
  a.released_by_hook.clear();
  Member& b = join("hub-b");
  const auto joined = steady_clock::now();
  ASSERT_TRUE(rounds_until([&] { return balanced(); }, 3 * kPeriod));
  EXPECT_LT(steady_clock::now() - joined, kPeriod);
  EXPECT_EQ(owned_set(b).size(), 8u);
  // What a gave away went through before_release, and b has exactly that.
  EXPECT_EQ(std::set<uint32_t>(a.released_by_hook.begin(), a.released_by_hook.end()), owned_set(b));
}

TEST_F(ShardLeasesTest, UnreachableDatabaseLeasesLapseLocallyAndComeBackAfterReconnect) {
  Member& a = join("hub-a");
  ASSERT_TRUE(rounds_until([&] { return owned_set(a).size() == kShards; }, Millis(3000)));
  server_.stop();
  auto failed = a.leases->tick();
  ASSERT_FALSE(failed.status);
  EXPECT_NE(failed.status.error().message().find("hub-a"), std::string::npos)
      << failed.status.error().message();
  std::this_thread::sleep_for(kPeriod);
  EXPECT_TRUE(a.leases->owned().empty());  // no longer counted without a renewal
  auto lapsed = a.leases->tick();
  EXPECT_FALSE(lapsed.status);
  EXPECT_EQ(lapsed.lost.size(), kShards);

  ASSERT_TRUE(server_.start());
  auto conn = pg::Conn::connect(conninfo_);
  ASSERT_TRUE(conn) << conn.error().message();
  db_ = std::move(*conn);
  auto back = a.leases->tick();
  ASSERT_TRUE(back.status) << back.status.error().message();
  EXPECT_EQ(back.acquired.size(), kShards);
  EXPECT_EQ(owned_set(a).size(), kShards);
  check_invariants();
}

// Instances on their own threads, ticking concurrently at jittered intervals, each pausing once
// for longer than a lease period (its shards move to the others, then it comes back). Each
// thread records when it believed it owned what: from the return of the tick that gave it a shard
// to the shard's valid_until as last seen, or the start of the tick that dropped it, whichever
// comes first (both bounds err on the short side, so an overlap found is a real one). No two
// instances' beliefs about one shard may overlap in time.
TEST_F(ShardLeasesTest, ConcurrentInstancesWithPausesNeverOwnAShardTogether) {
  constexpr Millis kStressPeriod{500};
  constexpr int kInstances = 4;
  struct Belief {
    std::string who;
    uint32_t shard;
    int64_t epoch;
    TimePoint start;
    TimePoint end;
  };
  std::vector<std::vector<Belief>> beliefs(kInstances);
  std::vector<std::unique_ptr<ShardLeases>> instances;
  for (int i = 0; i < kInstances; ++i) {
    ShardLeaseOptions options;
    options.conninfo = conninfo_;
    options.instance_id = "hub-" + std::to_string(i);
    options.shards = kShards;
    options.lease_period = kStressPeriod;
    auto leases = ShardLeases::create(options, clock_);
    ASSERT_TRUE(leases) << leases.error().message();
    instances.push_back(std::move(*leases));
  }
  const auto begin = steady_clock::now();
  const auto stop = begin + Millis(5000);
  std::vector<std::thread> threads;
  for (int i = 0; i < kInstances; ++i) {
    threads.emplace_back([&, i] {
      ShardLeases& leases = *instances[i];
      std::map<uint32_t, std::pair<Belief, TimePoint>> open;  // belief, valid_until last seen
      const auto pause_at = begin + Millis(600 + 700 * i);
      bool paused = false;
      unsigned jitter = 17u * static_cast<unsigned>(i) + 1;
      while (steady_clock::now() < stop) {
        const auto before = steady_clock::now();
        (void)leases.tick();  // failures show as lapsed beliefs, which the check allows
        const auto now = steady_clock::now();
        const auto held = leases.owned();
        for (auto it = open.begin(); it != open.end();) {
          auto h = held.find(it->first);
          if (h == held.end() || h->second.epoch != it->second.first.epoch) {
            // Dropped somewhere in that tick (a graceful release lets another take the shard
            // before this tick returns): counted as ended when the tick began.
            it->second.first.end = std::min(it->second.second, before);
            beliefs[i].push_back(it->second.first);
            it = open.erase(it);
          } else {
            it->second.second = h->second.valid_until;
            ++it;
          }
        }
        for (const auto& [shard, lease] : held) {
          if (open.count(shard) == 0) {
            open[shard] = {Belief{leases.instance_id(), shard, lease.epoch, now, now},
                           lease.valid_until};
          }
        }
        if (!paused && now >= pause_at) {
          paused = true;
          std::this_thread::sleep_for(kStressPeriod + Millis(200));
        } else {
          jitter = jitter * 1103515245u + 12345u;
          std::this_thread::sleep_for(Millis(60 + (jitter >> 16) % 60));
        }
      }
      for (auto& [shard, b] : open) {
        b.first.end = std::min(b.second, steady_clock::now());
        beliefs[i].push_back(b.first);
      }
    });
  }
  for (auto& t : threads) t.join();

  std::map<uint32_t, std::vector<Belief>> by_shard;
  std::set<std::pair<uint32_t, int64_t>> grants;
  for (const auto& list : beliefs) {
    for (const auto& b : list) {
      by_shard[b.shard].push_back(b);
      grants.emplace(b.shard, b.epoch);
    }
  }
  size_t overlaps = 0;
  for (const auto& [shard, list] : by_shard) {
    for (size_t x = 0; x < list.size(); ++x) {
      for (size_t y = x + 1; y < list.size(); ++y) {
        const Belief& p = list[x];
        const Belief& q = list[y];
        if (p.who == q.who || !(p.start < q.end && q.start < p.end)) continue;
        ++overlaps;
        ADD_FAILURE() << "shard " << shard << " owned by " << p.who << " (epoch " << p.epoch
                      << ") and " << q.who << " (epoch " << q.epoch << ") at once for "
                      << std::chrono::duration_cast<Millis>(std::min(p.end, q.end) -
                                                            std::max(p.start, q.start))
                             .count()
                      << " ms";
      }
    }
  }
  EXPECT_EQ(overlaps, 0u);
  // Not vacuous: every shard was owned, and the pauses made shards change owner many times.
  EXPECT_EQ(by_shard.size(), kShards);
  EXPECT_GT(grants.size(), kShards + 8) << "too few changes of owner to prove anything";
  report("stress_grants", Millis(static_cast<int64_t>(grants.size())));
}

TEST_F(ShardLeasesTest, AnInstanceWithAnotherShardCountIsRefused) {
  join("hub-a");
  ShardLeaseOptions options;
  options.conninfo = conninfo_;
  options.instance_id = "hub-b";
  options.shards = 8;
  options.lease_period = kPeriod;
  auto other = ShardLeases::create(options, clock_);
  ASSERT_FALSE(other);
  EXPECT_NE(other.error().message().find("for 16 shards"), std::string::npos)
      << other.error().message();
  EXPECT_NE(other.error().message().find("--shards 8"), std::string::npos)
      << other.error().message();
}

TEST_F(ShardLeasesTest, BadOptionsAreRefused) {
  ShardLeaseOptions options;
  options.conninfo = conninfo_;
  options.shards = 16;
  auto no_id = ShardLeases::create(options, clock_);
  ASSERT_FALSE(no_id);
  EXPECT_NE(no_id.error().message().find("empty instance id"), std::string::npos);
  options.instance_id = "hub-a";
  options.lease_period = Millis(10);
  auto short_period = ShardLeases::create(options, clock_);
  ASSERT_FALSE(short_period);
  EXPECT_NE(short_period.error().message().find("below 100 ms"), std::string::npos);
}

}  // namespace
}  // namespace flotilla::hub
