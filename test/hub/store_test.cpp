// The store's tests, each on SQLite and on PostgreSQL (one server for the whole binary, a database
// per test; skipped, saying why, only where no PostgreSQL is installed).
#include "cloud-hub/store.hpp"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test/support/temp_dir.hpp"
#ifdef FLOTILLA_TEST_PG
#include "cloud-hub/hub_stores.hpp"
#include "cloud-hub/pg.hpp"
#include "cloud-hub/store_pg.hpp"
#include "test/support/peers.hpp"
#include "test/support/postgres.hpp"
#endif

namespace flotilla::hub {
namespace {

namespace pb = flotilla::v1;

std::string spec(const std::string& name, const std::string& hash = "h1") {
  pb::WorkloadSpec s;
  s.set_name(name);
  s.set_type("process");
  s.set_spec_hash(hash);
  return s.SerializeAsString();
}

std::vector<std::string> names(const pb::DesiredState& d) {
  std::vector<std::string> out;
  for (const auto& u : d.upserts()) out.push_back(u.name());
  return out;
}

#ifdef FLOTILLA_TEST_PG
// The binary's PostgreSQL server, started at first use (initdb takes seconds: one for all tests)
// and stopped at exit. Null with `why` when none can run here; a server that is installed but
// does not start is a failure, not a skip.
testing::Postgres* shared_postgres(std::string* why) {
  static std::unique_ptr<testing::Postgres> server;
  static std::string unavailable = testing::Postgres::unavailable_reason();
  static Status started = [] {
    if (!unavailable.empty()) return Status(Ok());
    server = std::make_unique<testing::Postgres>();
    return server->start();
  }();
  *why = unavailable;
  if (!unavailable.empty()) return nullptr;
  if (!started) {
    *why = started.error().message();
    return nullptr;
  }
  return server.get();
}

// A fresh database on the shared server: its connection string, or a skip/failure reason.
Expected<std::string> fresh_database(bool* skip) {
  static int count = 0;
  std::string why;
  testing::Postgres* server = shared_postgres(&why);
  *skip = server == nullptr && !testing::Postgres::unavailable_reason().empty();
  if (server == nullptr) return Error(why);
  return server->create_database("store_test_" + std::to_string(++count));
}
#endif

// GetParam(): "sqlite" or "postgres".
class HubStoreTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (GetParam() == "postgres") {
#ifdef FLOTILLA_TEST_PG
      bool skip = false;
      auto conninfo = fresh_database(&skip);
      if (skip) GTEST_SKIP() << "PostgreSQL: " << conninfo.error().message();
      ASSERT_TRUE(conninfo.ok()) << conninfo.error().message();
      conninfo_ = *conninfo;
#else
      GTEST_SKIP() << "built without PostgreSQL (libpq)";
#endif
    }
    open();
  }
  // The test's store on its backend, opened again (as after a restart).
  Expected<std::unique_ptr<Store>> open_store(StoreOptions options = {}) {
#ifdef FLOTILLA_TEST_PG
    if (!conninfo_.empty()) {
      auto conn = db::open_postgres(conninfo_, "shard_03");
      if (!conn) return conn.error();
      return Store::open(std::move(*conn), options);
    }
#endif
    return Store::open(dir_ / "hub.db", options);
  }
  void open(StoreOptions options = {}) {
    store_.reset();
    auto s = open_store(options);
    ASSERT_TRUE(s.ok()) << s.error().message();
    store_ = std::move(*s);
  }
  void add_node(const std::string& name) {
    NodeRecord n;
    n.name = name;
    n.labels = {{"zone", "east"}};
    n.runtimes = {"process"};
    ASSERT_TRUE(store_->put_node(n).ok());
  }
  NodeRecord node(const std::string& name) { return **store_->get_node(name); }

  testing::TempDir dir_;
  std::string conninfo_;  // PostgreSQL's, empty on SQLite
  std::unique_ptr<Store> store_;
};

INSTANTIATE_TEST_SUITE_P(Backends, HubStoreTest, ::testing::Values("sqlite", "postgres"),
                         [](const auto& p) { return p.param; });

TEST_P(HubStoreTest, NodesAndWorkloadsSurviveReopen) {
  add_node("n1");
  WorkloadRecord w{"web", "{}", "hash", 2, 10, 20, 1, "0/1 nodes"};
  ASSERT_TRUE(store_->put_workload(w).ok());
  open();
  auto n = node("n1");
  EXPECT_EQ(n.labels.at("zone"), "east");
  EXPECT_EQ(n.runtimes, std::vector<std::string>{"process"});
  auto got = store_->get_workload("web");
  ASSERT_TRUE(got.ok() && got->has_value());
  EXPECT_EQ((*got)->generation, 2);
  EXPECT_EQ((*got)->pending_reason, "0/1 nodes");
  EXPECT_FALSE(store_->get_workload("nope")->has_value());
}

TEST_P(HubStoreTest, NodeTaintsSurviveReopenAndOldRowsHaveNone) {
  add_node("n1");
  add_node("n2");
  NodeRecord n = node("n1");
  n.taints = {{"dedicated", "gpu", "NoSchedule"}, {"maintenance", "", "NoExecute"}};
  ASSERT_TRUE(store_->put_node(n).ok());
  open();
  EXPECT_EQ(node("n1").taints, n.taints);
  EXPECT_TRUE(node("n2").taints.empty());
}

TEST_P(HubStoreTest, NodeProgressWritesOnlyTheProtocolsFieldsOfAnExistingNode) {
  add_node("n1");
  NodeRecord n = node("n1");
  n.ready = true;
  n.last_seen_ms = 1234;
  n.revision = 7;
  n.acked_revision = 6;
  n.compacted_floor = 2;
  n.status_seq = 99;
  n.labels = {{"zone", "west"}};  // not a progress field: stays as stored
  n.arch = "arm64";
  ASSERT_TRUE(store_->put_node_progress(n).ok());
  open();
  NodeRecord got = node("n1");
  EXPECT_TRUE(got.ready);
  EXPECT_EQ(got.last_seen_ms, 1234);
  EXPECT_EQ(got.revision, 7u);
  EXPECT_EQ(got.acked_revision, 6u);
  EXPECT_EQ(got.compacted_floor, 2u);
  EXPECT_EQ(got.status_seq, 99u);
  EXPECT_EQ(got.labels.at("zone"), "east");
  EXPECT_EQ(got.runtimes, std::vector<std::string>{"process"});
  EXPECT_NE(got.arch, "arm64");
  // A node that is not stored is an error, and nothing appears.
  NodeRecord ghost;
  ghost.name = "ghost";
  EXPECT_FALSE(store_->put_node_progress(ghost).ok());
  EXPECT_FALSE(store_->get_node("ghost")->has_value());
}

TEST_P(HubStoreTest, FailedTransactionLeavesNothing) {
  add_node("n1");
  Status st = store_->transaction([&]() -> Status {
    EXPECT_TRUE(store_->put_workload({"web", "{}", "h", 1, 0, 0, 0, ""}).ok());
    EXPECT_TRUE(store_->update_node_desired("n1", {{"web", spec("web")}}, {}).ok());
    return Error("simulated failure after the writes");
  });
  EXPECT_FALSE(st.ok());
  open();  // as after a crash
  EXPECT_FALSE(store_->get_workload("web")->has_value());
  EXPECT_EQ(node("n1").revision, 0u);
  EXPECT_TRUE(store_->desired_for_node("n1")->empty());
}

TEST_P(HubStoreTest, EachChangeSetBumpsTheRevisionOnce) {
  add_node("n1");
  EXPECT_EQ(*store_->update_node_desired("n1", {{"a", spec("a")}, {"b", spec("b")}}, {}), 1u);
  EXPECT_EQ(*store_->update_node_desired("n1", {}, {}), 1u);  // nothing to do
  EXPECT_EQ(*store_->update_node_desired("n1", {}, {"a"}), 2u);
  EXPECT_EQ(node("n1").revision, 2u);
  auto placements = *store_->placements();
  EXPECT_EQ(placements.count("a"), 0u);
  EXPECT_EQ(placements["b"], std::set<std::string>{"n1"});
  EXPECT_FALSE(store_->update_node_desired("ghost", {{"a", spec("a")}}, {}).ok());
}

TEST_P(HubStoreTest, DeltaHoldsOnlyWhatChangedSinceAcked) {
  add_node("n1");
  ASSERT_TRUE(store_->update_node_desired("n1", {{"a", spec("a")}, {"b", spec("b")}}, {}).ok());
  ASSERT_TRUE(store_->update_node_desired("n1", {{"c", spec("c")}}, {"a"}).ok());
  ASSERT_TRUE(store_->update_node_desired("n1", {{"b", spec("b", "h2")}}, {}).ok());
  NodeRecord n = node("n1");
  n.acked_revision = 1;
  auto d = store_->desired_message(n);
  ASSERT_TRUE(d.ok()) << d.error().message();
  EXPECT_FALSE(d->snapshot());
  EXPECT_EQ(d->from_revision(), 1u);
  EXPECT_EQ(d->to_revision(), 3u);
  EXPECT_EQ(names(*d), (std::vector<std::string>{"b", "c"}));
  EXPECT_EQ(d->deletes_size(), 1);
  EXPECT_EQ(d->deletes(0), "a");
  n.acked_revision = 2;
  d = store_->desired_message(n);
  EXPECT_EQ(names(*d), std::vector<std::string>{"b"});
  EXPECT_EQ(d->deletes_size(), 0);
}

TEST_P(HubStoreTest, ReAddingRemovesTheTombstone) {
  add_node("n1");
  ASSERT_TRUE(store_->update_node_desired("n1", {{"a", spec("a")}}, {}).ok());
  ASSERT_TRUE(store_->update_node_desired("n1", {}, {"a"}).ok());
  ASSERT_TRUE(store_->update_node_desired("n1", {{"a", spec("a")}}, {}).ok());
  NodeRecord n = node("n1");
  n.acked_revision = 1;
  auto d = store_->desired_message(n);
  EXPECT_EQ(names(*d), std::vector<std::string>{"a"});
  EXPECT_EQ(d->deletes_size(), 0);
}

TEST_P(HubStoreTest, SnapshotForNewAgentsAndUnknownRevisions) {
  add_node("n1");
  ASSERT_TRUE(store_->update_node_desired("n1", {{"a", spec("a")}}, {}).ok());
  ASSERT_TRUE(store_->update_node_desired("n1", {{"b", spec("b")}}, {}).ok());
  NodeRecord n = node("n1");
  n.acked_revision = 0;
  auto d = store_->desired_message(n);
  EXPECT_TRUE(d->snapshot());
  EXPECT_EQ(names(*d), (std::vector<std::string>{"a", "b"}));
  n.acked_revision = 9;  // more than this store ever issued
  EXPECT_TRUE(store_->desired_message(n)->snapshot());
  // skip_revision_past moves the node beyond the claim, and forces a snapshot.
  ASSERT_TRUE(store_->skip_revision_past("n1", 9).ok());
  n = node("n1");
  EXPECT_EQ(n.revision, 10u);
  n.acked_revision = 9;
  d = store_->desired_message(n);
  EXPECT_TRUE(d->snapshot());
  EXPECT_EQ(d->to_revision(), 10u);
}

TEST_P(HubStoreTest, CompactedTombstonesForceSnapshotsBelowTheFloor) {
  StoreOptions options;
  options.tombstone_retention = 2;
  open(options);
  add_node("n1");
  ASSERT_TRUE(store_->update_node_desired("n1", {{"a", spec("a")}, {"b", spec("b")}}, {}).ok());
  auto del = store_->update_node_desired("n1", {}, {"a"});  // rev 2: tombstone a
  ASSERT_TRUE(del.ok()) << del.error().message();
  ASSERT_TRUE(store_->update_node_desired("n1", {{"c", spec("c")}}, {}).ok());  // rev 3
  EXPECT_EQ(node("n1").compacted_floor, 0u);
  ASSERT_TRUE(store_->update_node_desired("n1", {{"d", spec("d")}}, {}).ok());  // rev 4
  // Tombstone of rev 2 is now older than 2 revisions: compacted, floor raised to 2.
  NodeRecord n = node("n1");
  EXPECT_EQ(n.compacted_floor, 2u);
  n.acked_revision = 1;  // needs the delete of a, which is gone
  auto d = store_->desired_message(n);
  EXPECT_TRUE(d->snapshot());
  EXPECT_EQ(names(*d), (std::vector<std::string>{"b", "c", "d"}));
  n.acked_revision = 2;  // at the floor: a delta is still complete
  d = store_->desired_message(n);
  EXPECT_FALSE(d->snapshot());
  EXPECT_EQ(names(*d), (std::vector<std::string>{"c", "d"}));
}

TEST_P(HubStoreTest, CountsByPhaseIncludingRowsWrittenBeforeThePhaseColumn) {
  add_node("n1");
  add_node("n2");
  NodeRecord ready = *store_->get_node("n2").value();
  ready.ready = true;
  ASSERT_TRUE(store_->put_node(ready).ok());
  InstanceRecord rec;
  rec.node = "n1";
  rec.status.set_workload("web");
  rec.status.set_seq(1);
  for (auto [id, phase] :
       {std::pair{"a", pb::PHASE_RUNNING}, {"b", pb::PHASE_RUNNING}, {"c", pb::PHASE_FAILED}}) {
    rec.status.set_instance_id(id);
    rec.status.set_phase(phase);
    ASSERT_TRUE(store_->put_instance(rec).ok());
  }
  // As a store from before schema step 2 would have them: no phase column value.
  ASSERT_TRUE(store_->db().exec("UPDATE instances SET phase = NULL").ok());
  open();
  auto c = store_->counts();
  ASSERT_TRUE(c.ok()) << c.error().message();
  EXPECT_EQ(c->nodes, 2);
  EXPECT_EQ(c->ready_nodes, 1);
  EXPECT_EQ(c->instances_by_phase[pb::PHASE_RUNNING], 2);
  EXPECT_EQ(c->instances_by_phase[pb::PHASE_FAILED], 1);
  EXPECT_EQ(c->instances_by_phase.count(0), 0u);
}

TEST_P(HubStoreTest, InstancesKeepTheLatestRecordAndCanBeRetained) {
  InstanceRecord rec;
  rec.node = "n1";
  rec.status.set_workload("web");
  rec.status.set_instance_id("web-1");
  rec.status.set_seq(5);
  rec.status.set_phase(pb::PHASE_RUNNING);
  ASSERT_TRUE(store_->put_instance(rec).ok());
  rec.status.set_instance_id("web-2");
  ASSERT_TRUE(store_->put_instance(rec).ok());
  auto got = store_->get_instance("n1", "web-1");
  ASSERT_TRUE(got.ok() && got->has_value());
  EXPECT_EQ((*got)->status.seq(), 5u);
  // An older or repeated record, or the removal of an older one, changes nothing.
  InstanceRecord older = rec;
  older.status.set_instance_id("web-1");
  older.status.set_seq(4);
  older.status.set_phase(pb::PHASE_FAILED);
  ASSERT_TRUE(store_->put_instance(older).ok());
  older.status.set_seq(5);
  ASSERT_TRUE(store_->put_instance(older).ok());
  InstanceRecord removal = older;  // a removal no newer than the stored record
  removal.status.set_removed(true);
  ASSERT_TRUE(store_->put_instance(removal).ok());
  got = store_->get_instance("n1", "web-1");
  ASSERT_TRUE(got.ok() && got->has_value());
  EXPECT_EQ((*got)->status.phase(), pb::PHASE_RUNNING);
  // A newer one replaces it.
  older.status.set_seq(6);
  ASSERT_TRUE(store_->put_instance(older).ok());
  EXPECT_EQ((*store_->get_instance("n1", "web-1"))->status.phase(), pb::PHASE_FAILED);
  older.status.set_seq(5);
  older.status.set_phase(pb::PHASE_RUNNING);
  ASSERT_TRUE(store_->put_instance(older).ok());
  ASSERT_TRUE(store_->reset_instance_seqs("n1").ok());
  EXPECT_EQ((*store_->get_instance("n1", "web-1"))->status.seq(), 0u);
  ASSERT_TRUE(store_->retain_instances("n1", {"web-2"}).ok());
  // web-1 stays as a removed instance: its seq still guards, the list leaves it out.
  auto gone = store_->get_instance("n1", "web-1");
  ASSERT_TRUE(gone.ok() && gone->has_value());
  EXPECT_TRUE((*gone)->status.removed());
  EXPECT_EQ(store_->list_instances()->size(), 1u);
  // A set taken before web-2's record (seq 5) cannot have listed it: web-2 stays.
  ASSERT_TRUE(store_->put_instance(rec).ok());
  ASSERT_TRUE(store_->retain_instances("n1", {}, 4).ok());
  EXPECT_EQ(store_->list_instances()->size(), 1u);
  ASSERT_TRUE(store_->retain_instances("n1", {}, 5).ok());
  EXPECT_TRUE(store_->list_instances()->empty());
}

TEST_P(HubStoreTest, EventsAreBoundedAndFiltered) {
  StoreOptions options;
  options.max_events = 5;
  open(options);
  for (int i = 0; i < 8; ++i) {
    EventRecord e;
    e.hub_ms = i;
    e.node = i % 2 == 0 ? "n1" : "n2";
    e.object = "workload/web";
    e.reason = "R" + std::to_string(i);
    e.message = "m";
    ASSERT_TRUE(store_->add_event(e).ok());
  }
  auto all = store_->list_events({});
  ASSERT_EQ(all->size(), 5u);
  EXPECT_EQ(all->front().reason, "R3");  // oldest kept, oldest first
  EXPECT_EQ(all->back().reason, "R7");
  EventFilter f;
  f.node = "n1";
  EXPECT_EQ(store_->list_events(f)->size(), 2u);
  EventRecord agent_event;
  agent_event.node = "n1";
  agent_event.object = "web/web-abc";  // how agents name an instance's events
  agent_event.reason = "Started";
  ASSERT_TRUE(store_->add_event(agent_event).ok());
  agent_event.object = "webber/webber-1";  // another workload sharing the prefix "web"
  ASSERT_TRUE(store_->add_event(agent_event).ok());
  f = {};
  f.workload = "web";
  f.limit = 3;
  auto last = store_->list_events(f);
  ASSERT_EQ(last->size(), 3u);
  EXPECT_EQ((*last)[1].reason, "R7");
  EXPECT_EQ(last->back().object, "web/web-abc");
}

// A hub killed (-9) inside a transaction leaves the old state; killed right after the commit, the
// new one. The writes happen in a child process that kills itself.
TEST_P(HubStoreTest, Kill9InsideATransactionLeavesTheOldStateAndAfterItTheNew) {
  add_node("n1");
  store_.reset();
  for (bool commit : {false, true}) {
    const pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      auto s = open_store();
      if (!s) ::_exit(2);
      Store& store = **s;
      (void)store.transaction([&]() -> Status {
        if (!store.put_workload({"web", "{}", "h", 1, 0, 0, 0, ""})) ::_exit(3);
        if (!store.update_node_desired("n1", {{"web", spec("web")}}, {})) ::_exit(3);
        if (!commit) ::raise(SIGKILL);
        return Ok();
      });
      ::raise(SIGKILL);
      ::_exit(4);
    }
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << "child status " << status;
    open();
    EXPECT_EQ(store_->get_workload("web")->has_value(), commit) << "commit " << commit;
    EXPECT_EQ(node("n1").revision, commit ? 1u : 0u);
    EXPECT_EQ(store_->desired_for_node("n1")->size(), commit ? 1u : 0u);
    store_.reset();
  }
  open();
}

// The commit check (the hook for fencing by lease epoch) runs once per outermost transaction; a
// refusal rolls all of it back. A failed savepoint rolls back only its own part.
TEST_P(HubStoreTest, CommitCheckRefusesTheTransactionAndSavepointsRollBackAlone) {
  add_node("n1");
  int checks = 0;
  bool allow = false;
  store_->set_commit_check([&]() -> Status {
    ++checks;
    return allow ? Ok() : Error("the lease epoch moved on");
  });
  auto change = [&]() -> Status {
    if (auto st = store_->put_workload({"web", "{}", "h", 1, 0, 0, 0, ""}); !st) return st;
    Status inner = store_->transaction([&]() -> Status {
      if (auto st = store_->put_workload({"db", "{}", "h", 1, 0, 0, 0, ""}); !st) return st;
      return Error("the inner change fails");
    });
    EXPECT_FALSE(inner.ok());
    Status kept = store_->transaction([&]() -> Status {
      auto rev = store_->update_node_desired("n1", {{"web", spec("web")}}, {});
      return rev ? Ok() : Status(rev.error());
    });
    EXPECT_TRUE(kept.ok()) << kept.error().message();
    return Ok();
  };
  Status refused = store_->transaction(change);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.error().message().find("the lease epoch moved on"), std::string::npos);
  EXPECT_EQ(checks, 1);  // savepoints do not check
  EXPECT_FALSE(store_->get_workload("web")->has_value());
  EXPECT_EQ(node("n1").revision, 0u);
  // The store goes on working after a refusal.
  allow = true;
  ASSERT_TRUE(store_->transaction(change).ok());
  EXPECT_EQ(checks, 2);
  open();
  EXPECT_TRUE(store_->get_workload("web")->has_value());
  EXPECT_FALSE(store_->get_workload("db")->has_value());
  EXPECT_EQ(node("n1").revision, 1u);
}

#ifdef FLOTILLA_TEST_PG
class PostgresStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    bool skip = false;
    auto conninfo = fresh_database(&skip);
    if (skip) GTEST_SKIP() << "PostgreSQL: " << conninfo.error().message();
    ASSERT_TRUE(conninfo.ok()) << conninfo.error().message();
    conninfo_ = *conninfo;
  }
  std::string conninfo_;
};

TEST(PostgresPlaceholders, BecomeDollarParamsOutsideQuotes) {
  auto [sql, n] = db::to_dollar_params("a = ? AND b = '?''?' AND \"c?\" = ? OR d = ?1");
  EXPECT_EQ(sql, "a = $1 AND b = '?''?' AND \"c?\" = $2 OR d = $1");
  EXPECT_EQ(n, 2);
}

TEST_F(PostgresStoreTest, ErrorsNameTheStatementAndTheServer) {
  auto conn = db::open_postgres(conninfo_, "control");
  ASSERT_TRUE(conn.ok()) << conn.error().message();
  auto bad = (*conn)->prepare("SELECT no_such_column FROM no_such_table WHERE x = ?");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message().find("SELECT no_such_column FROM no_such_table WHERE x = $1"),
            std::string::npos)
      << bad.error().message();
  EXPECT_NE(bad.error().message().find("no_such_table"), std::string::npos);
  const int port = testing::free_port();
  auto down = db::open_postgres(
      "host=127.0.0.1 port=" + std::to_string(port) + " user=flotilla dbname=x connect_timeout=2",
      "control");
  ASSERT_FALSE(down.ok());
  EXPECT_NE(down.error().message().find("127.0.0.1:" + std::to_string(port)), std::string::npos)
      << down.error().message();
  EXPECT_FALSE(db::open_postgres(conninfo_, "Robert'); DROP TABLE x").ok());
}

TEST_F(PostgresStoreTest, AConnectionCutOutsideATransactionIsOpenedAgain) {
  auto conn = db::open_postgres(conninfo_, "shard_00");
  ASSERT_TRUE(conn.ok()) << conn.error().message();
  auto store = Store::open(std::move(*conn));
  ASSERT_TRUE(store.ok()) << store.error().message();
  NodeRecord n;
  n.name = "n1";
  ASSERT_TRUE((*store)->put_node(n).ok());
  auto admin = pg::Conn::connect(conninfo_);
  ASSERT_TRUE(admin.ok());
  auto killed = admin->query(
      "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() "
      "AND pid <> pg_backend_pid()");
  ASSERT_TRUE(killed.ok()) << killed.error().message();
  ASSERT_EQ(killed->rows(), 1);
  // The first statement finds the connection cut; the next ones run on a new one.
  (void)(*store)->get_node("n1");
  auto got = (*store)->get_node("n1");
  ASSERT_TRUE(got.ok()) << got.error().message();
  EXPECT_TRUE(got->has_value());
  EXPECT_TRUE((*store)->transaction([&] { return (*store)->put_node(n); }).ok());
}

TEST_F(PostgresStoreTest, HubStoresAreSchemasALostOneIsRebuiltAndMoreShardsAreRefused) {
  {
    auto stores = open_postgres_hub_stores(conninfo_, 4, {});
    ASSERT_TRUE(stores.ok()) << stores.error().message();
    EXPECT_TRUE(stores->rebuilt.empty());  // a new database: nothing was lost
    ASSERT_EQ(stores->shards.size(), 4u);
    NodeRecord n;
    n.name = "n2";
    ASSERT_TRUE(stores->shards[2]->put_node(n).ok());
    ASSERT_TRUE(stores->control->put_workload({"web", "{}", "h", 1, 0, 0, 0, ""}).ok());
  }
  auto admin = pg::Conn::connect(conninfo_);
  ASSERT_TRUE(admin.ok());
  ASSERT_TRUE(admin->exec("DROP SCHEMA shard_01 CASCADE").ok());
  {
    auto stores = open_postgres_hub_stores(conninfo_, 4, {});
    ASSERT_TRUE(stores.ok()) << stores.error().message();
    EXPECT_EQ(stores->rebuilt, std::set<uint32_t>{1});
    EXPECT_TRUE(stores->shards[2]->get_node("n2")->has_value());
    EXPECT_FALSE(stores->shards[1]->get_node("n2")->has_value());
    EXPECT_TRUE(stores->control->get_workload("web")->has_value());
  }
  auto fewer = open_postgres_hub_stores(conninfo_, 2, {});
  ASSERT_FALSE(fewer.ok());
  EXPECT_NE(fewer.error().message().find("shard_03"), std::string::npos) << fewer.error().message();
  EXPECT_NE(fewer.error().message().find("--shards 2"), std::string::npos);
}
#endif

}  // namespace
}  // namespace flotilla::hub
