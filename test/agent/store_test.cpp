#include "agent/store.hpp"

#include <gtest/gtest.h>

#include <fstream>

#include "common/sqlite.hpp"
#include "test/agent/specs.hpp"
#include "test/support/temp_dir.hpp"

namespace flotilla::agent {
namespace {

using testing::process_spec;

EventRecord event(const std::string& reason) { return {"obj", reason, "msg", 1}; }

InstanceRecord running(const std::string& workload) {
  InstanceRecord rec;
  rec.workload = workload;
  rec.spec_hash = "h1";
  rec.phase = v1::PHASE_RUNNING;
  rec.pid = 42;
  rec.start_ticks = 777;
  return rec;
}

class StoreTest : public ::testing::Test {
 protected:
  std::unique_ptr<Store> open(const std::string& node = "edge-1") {
    auto s = Store::open(dir_ / "agent.db", node);
    EXPECT_TRUE(s.ok()) << (s.ok() ? "" : s.error().message());
    return s.ok() ? std::move(*s) : nullptr;
  }
  flotilla::testing::TempDir dir_;
};

TEST_F(StoreTest, FreshStoreClaimsNodeAndStartsEmpty) {
  auto store = open();
  EXPECT_EQ(store->meta().node, "edge-1");
  EXPECT_EQ(store->meta().desired_revision, 0u);
  EXPECT_EQ(store->meta().status_seq, 0u);
  EXPECT_TRUE(store->load_desired()->empty());
  EXPECT_TRUE(store->load_instances()->empty());
  EXPECT_TRUE(store->outbox_statuses()->empty());
}

TEST_F(StoreTest, ReopenKeepsEverythingAndSchemaVersion) {
  {
    auto store = open();
    ASSERT_TRUE(store->apply_desired(true, {process_spec("web")}, {}, 5).ok());
    InstanceRecord rec = running("web");
    rec.reason = "OOMKilled";
    rec.ready = true;
    ASSERT_TRUE(store->create_instance(rec, event("Started")).ok());
    ASSERT_TRUE(store->set_boot_id("b1").ok());
  }
  auto store = open();
  EXPECT_EQ(store->meta().desired_revision, 5u);
  EXPECT_EQ(store->meta().boot_id, "b1");
  ASSERT_EQ(store->load_desired()->count("web"), 1u);
  auto instances = store->load_instances();
  ASSERT_EQ(instances->size(), 1u);
  EXPECT_EQ((*instances)[0].instance_id, "web-1");
  EXPECT_EQ((*instances)[0].pid, 42);
  EXPECT_EQ((*instances)[0].start_ticks, 777u);
  EXPECT_EQ((*instances)[0].phase, v1::PHASE_RUNNING);
  EXPECT_EQ((*instances)[0].reason, "OOMKilled");
  EXPECT_TRUE((*instances)[0].ready);
  v1::InstanceStatus status = to_status((*instances)[0]);
  EXPECT_EQ(status.reason(), "OOMKilled");
  EXPECT_TRUE(status.ready());

  auto db = sql::Db::open(dir_ / "agent.db");
  auto q = db->prepare("PRAGMA user_version");
  ASSERT_TRUE(*q->step());
  EXPECT_EQ(q->col_int(0), 4);  // schema steps applied (v4: hub_keys)
}

TEST_F(StoreTest, RefusesStoreOfAnotherNode) {
  open("edge-1");
  auto other = Store::open(dir_ / "agent.db", "edge-2");
  ASSERT_FALSE(other.ok());
  EXPECT_NE(other.error().message().find("belongs to node 'edge-1', not 'edge-2'"),
            std::string::npos)
      << other.error().message();
}

TEST_F(StoreTest, RefusesCorruptFile) {
  std::ofstream(dir_ / "agent.db") << std::string(8192, 'x');
  auto store = Store::open(dir_ / "agent.db", "edge-1");
  ASSERT_FALSE(store.ok());
  EXPECT_NE(store.error().message().find("Failed to open agent store"), std::string::npos);
}

TEST_F(StoreTest, SnapshotReplacesDeltaUpsertsAndDeletes) {
  auto store = open();
  ASSERT_TRUE(store->apply_desired(true, {process_spec("a"), process_spec("b")}, {}, 1).ok());
  ASSERT_TRUE(
      store->apply_desired(false, {process_spec("c"), process_spec("a", "h2")}, {"b"}, 2).ok());
  auto desired = store->load_desired();
  ASSERT_EQ(desired->size(), 2u);
  EXPECT_EQ(desired->at("a").spec_hash(), "h2");
  EXPECT_EQ(desired->count("c"), 1u);
  ASSERT_TRUE(store->apply_desired(true, {process_spec("z")}, {}, 3).ok());
  desired = store->load_desired();
  ASSERT_EQ(desired->size(), 1u);
  EXPECT_EQ(desired->count("z"), 1u);
  EXPECT_EQ(store->meta().desired_revision, 3u);
}

TEST_F(StoreTest, FailedApplyRollsBackWhole) {
  auto store = open();
  ASSERT_TRUE(store->apply_desired(true, {process_spec("a")}, {}, 1).ok());
  // A trigger makes the second insert of the snapshot fail after the first change was made.
  auto other = sql::Db::open(dir_ / "agent.db");
  ASSERT_TRUE(other
                  ->exec("CREATE TRIGGER poison BEFORE INSERT ON desired "
                         "WHEN NEW.name = 'poison' BEGIN SELECT RAISE(ABORT, 'disk on fire'); "
                         "END")
                  .ok());
  auto st = store->apply_desired(true, {process_spec("b"), process_spec("poison")}, {}, 2);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.error().message().find("Failed to store desired revision 2"), std::string::npos);
  EXPECT_EQ(store->meta().desired_revision, 1u);
  auto desired = store->load_desired();
  ASSERT_EQ(desired->size(), 1u);
  EXPECT_EQ(desired->count("a"), 1u);
  store.reset();
  EXPECT_EQ(open()->meta().desired_revision, 1u);
}

TEST_F(StoreTest, SeqOnlyGrowsAcrossReopen) {
  uint64_t last = 0;
  {
    auto store = open();
    InstanceRecord rec = running("a");
    ASSERT_TRUE(store->create_instance(rec, event("Started")).ok());
    rec.phase = v1::PHASE_BACKOFF;
    ASSERT_TRUE(store->save_instance(rec, event("BackOff")).ok());
    last = rec.seq;
    EXPECT_GT(last, 0u);
  }
  auto store = open();
  EXPECT_GE(store->meta().status_seq, last);
  InstanceRecord rec = (*store->load_instances())[0];
  ASSERT_TRUE(store->save_instance(rec, event("Again")).ok());
  EXPECT_GT(rec.seq, store->meta().status_seq - 2);
  EXPECT_GT(rec.seq, last);
}

TEST_F(StoreTest, OutboxKeepsOnlyLatestStatusPerInstance) {
  auto store = open();
  InstanceRecord a = running("a");
  InstanceRecord b = running("b");
  ASSERT_TRUE(store->create_instance(a, event("Started")).ok());
  ASSERT_TRUE(store->create_instance(b, event("Started")).ok());
  a.phase = v1::PHASE_BACKOFF;
  ASSERT_TRUE(store->save_instance(a, event("BackOff")).ok());
  auto rows = store->outbox_statuses();
  ASSERT_EQ(rows->size(), 2u);
  EXPECT_EQ((*rows)[1].instance_id, a.instance_id);  // oldest first by seq
  v1::InstanceStatus st;
  ASSERT_TRUE(st.ParseFromString((*rows)[1].record));
  EXPECT_EQ(st.phase(), v1::PHASE_BACKOFF);
  EXPECT_EQ(st.seq(), a.seq);
  EXPECT_EQ(store->outbox_events()->size(), 3u);
}

TEST_F(StoreTest, DeleteSentKeepsRowsThatWereSuperseded) {
  auto store = open();
  InstanceRecord a = running("a");
  ASSERT_TRUE(store->create_instance(a, event("Started")).ok());
  uint64_t sent_seq = a.seq;
  a.phase = v1::PHASE_BACKOFF;
  ASSERT_TRUE(store->save_instance(a, event("BackOff")).ok());  // newer record while in flight
  auto events = store->outbox_events();
  ASSERT_TRUE(store->delete_sent({{a.instance_id, sent_seq}}, {(*events)[0].seq}).ok());
  auto rows = store->outbox_statuses();
  ASSERT_EQ(rows->size(), 1u);
  EXPECT_EQ((*rows)[0].seq, a.seq);
  EXPECT_EQ(store->outbox_events()->size(), 1u);
  ASSERT_TRUE(store->delete_sent({{a.instance_id, a.seq}}, {}).ok());
  EXPECT_TRUE(store->outbox_statuses()->empty());
}

TEST_F(StoreTest, EventsAreBoundedAndDropsCounted) {
  auto store = open();
  InstanceRecord a = running("a");
  ASSERT_TRUE(store->create_instance(a, event("e0")).ok());
  for (int i = 1; i < kMaxEvents + 25; ++i) {
    ASSERT_TRUE(store->save_instance(a, event("e" + std::to_string(i))).ok());
  }
  auto events = store->outbox_events();
  ASSERT_EQ(static_cast<int64_t>(events->size()), kMaxEvents);
  EXPECT_EQ(store->meta().dropped_events, 25u);
  v1::Event oldest;
  ASSERT_TRUE(oldest.ParseFromString(events->front().record));
  EXPECT_EQ(oldest.reason(), "e25");
  store.reset();
  EXPECT_EQ(open()->meta().dropped_events, 25u);
}

TEST_F(StoreTest, RemoveInstanceQueuesRemovedStatus) {
  auto store = open();
  InstanceRecord a = running("a");
  ASSERT_TRUE(store->create_instance(a, event("Started")).ok());
  ASSERT_TRUE(store->remove_instance(a, event("Removed")).ok());
  EXPECT_TRUE(store->load_instances()->empty());
  auto rows = store->outbox_statuses();
  ASSERT_EQ(rows->size(), 1u);
  v1::InstanceStatus st;
  ASSERT_TRUE(st.ParseFromString((*rows)[0].record));
  EXPECT_TRUE(st.removed());
  EXPECT_EQ(st.instance_id(), a.instance_id);
}

TEST_F(StoreTest, SavingUnknownInstanceFailsAndChangesNothing) {
  auto store = open();
  InstanceRecord ghost = running("ghost");
  ghost.instance_id = "ghost-9";
  uint64_t seq = store->meta().status_seq;
  auto st = store->save_instance(ghost, event("X"));
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.error().message().find("Failed to record state of instance 'ghost-9'"),
            std::string::npos);
  EXPECT_EQ(store->meta().status_seq, seq);
  EXPECT_TRUE(store->outbox_statuses()->empty());
  EXPECT_TRUE(store->outbox_events()->empty());
}

}  // namespace
}  // namespace flotilla::agent
