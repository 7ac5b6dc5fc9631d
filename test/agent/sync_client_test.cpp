#include "agent/sync_client.hpp"

#include <gtest/gtest.h>

#include "common/sqlite.hpp"
#include "test/agent/agent_fixture.hpp"

namespace flotilla::agent {
namespace {

using testing::delta;
using testing::process_spec;
using testing::snapshot;

class SyncTest : public testing::AgentFixture {
 protected:
  // Reads the revision straight from the database file, as a restarted agent would.
  uint64_t persisted_revision() {
    auto db = sql::Db::open(dir_ / "agent.db");
    auto q = db->prepare("SELECT desired_revision FROM meta");
    EXPECT_TRUE(*q->step());
    return static_cast<uint64_t>(q->col_int(0));
  }
  void on_hub_message(const sync::Message& m) override {
    AgentFixture::on_hub_message(m);
    if (m.topic.find("/up/ack") != std::string::npos)
      revision_when_acked_.push_back(persisted_revision());
    if (m.topic.find("/up/status") != std::string::npos) {
      auto batch = sync::decode<v1::StatusBatch>(m.payload);
      if (batch.ok() && batch->has_acked_revision())
        revision_when_status_acked_.push_back(persisted_revision());
    }
  }
  // The hub of the agent's shard announces itself speaking `version`.
  void hub_online(uint32_t version, const std::string& epoch = "e1") {
    v1::HubOnline online;
    online.set_epoch(epoch);
    online.set_protocol_version(version);
    ASSERT_TRUE(hub_->publish_retained(sync::hub_online_topic(sync::shard_of(kNode, 16)),
                                       sync::encode(online))
                    .ok());
    agent_->run_once();
  }
  std::vector<uint64_t> ack_revisions() {
    std::vector<uint64_t> out;
    for (const auto& a : got<v1::Ack>("ack")) out.push_back(a.revision());
    return out;
  }
  std::vector<v1::StatusBatch> batches() { return got<v1::StatusBatch>("status"); }
  std::vector<uint64_t> revision_when_acked_;
  std::vector<uint64_t> revision_when_status_acked_;
};

TEST_F(SyncTest, TransportOptionsFollowTheProtocol) {
  auto opts = make_transport_options(config_, "b-9");
  EXPECT_EQ(opts.client_id, "flotilla-agent-edge-1");
  EXPECT_TRUE(opts.clean_session);
  EXPECT_EQ(opts.keepalive, std::chrono::seconds(10));
  ASSERT_TRUE(opts.will.has_value());
  EXPECT_EQ(opts.will->topic, sync::up_topic("edge-1", 16, "will"));
  auto offline = sync::decode<v1::Offline>(opts.will->payload);
  ASSERT_TRUE(offline.ok());
  EXPECT_EQ(offline->node(), "edge-1");
  EXPECT_EQ(offline->boot_id(), "b-9");
  config_.sync.heartbeat = Millis(300);
  EXPECT_EQ(make_transport_options(config_, "b").keepalive, std::chrono::seconds(2));
}

TEST_F(SyncTest, ConnectSendsHelloThenFullStatus) {
  ASSERT_TRUE(store_->apply_desired(true, {process_spec("web")}, {}, 3).ok());
  start_agent();
  ASSERT_GE(kinds().size(), 2u);
  EXPECT_EQ(kinds()[0], "hello");
  EXPECT_EQ(kinds()[1], "status");
  auto hello = got<v1::Hello>("hello").at(0);
  EXPECT_EQ(hello.node(), "edge-1");
  EXPECT_EQ(hello.protocol_version(), sync::kProtocolVersion);
  EXPECT_EQ(hello.min_protocol_version(), 1u);
  EXPECT_EQ(hello.acked_revision(), 3u);
  EXPECT_EQ(hello.boot_id(), "boot-1");
  EXPECT_EQ(hello.labels().at("zone"), "north");
  ASSERT_EQ(hello.taints_size(), 1);
  EXPECT_EQ(hello.taints(0).key(), "dedicated");
  EXPECT_EQ(hello.taints(0).value(), "gpu");
  EXPECT_EQ(hello.taints(0).effect(), "NoSchedule");
  EXPECT_EQ(hello.capacity().cpu_millis(), 4000);
  EXPECT_EQ(hello.capacity().memory_bytes(), 1 << 30);
  EXPECT_EQ(std::vector<std::string>(hello.runtimes().begin(), hello.runtimes().end()),
            std::vector<std::string>{"process"});
  EXPECT_FALSE(hello.arch().empty());
  auto full = batches().at(0);
  EXPECT_TRUE(full.full());
  ASSERT_EQ(full.instances_size(), 1);
  EXPECT_EQ(full.instances(0).instance_id(), "web-1");
  EXPECT_EQ(full.instances(0).phase(), v1::PHASE_RUNNING);
  // A restarted agent re-acks the revision it persisted (its ack may have been lost).
  EXPECT_EQ(ack_revisions(), std::vector<uint64_t>{3});
}

TEST_F(SyncTest, SnapshotIsPersistedBeforeItIsAcked) {
  start_agent();
  send_desired(snapshot(kNode, 5, {process_spec("web")}));
  EXPECT_EQ(ack_revisions(), std::vector<uint64_t>{5});
  EXPECT_EQ(revision_when_acked_, std::vector<uint64_t>{5});
  EXPECT_EQ(driver_.running(), std::vector<std::string>{"web-1"}) << "not reconciled at once";
}

// Protocol v3: to a hub that says it speaks v3, the ack rides on the status batch the apply
// causes (one message instead of two per node); an apply that starts nothing is acked alone, and
// to an older hub every ack goes alone, as before.
TEST_F(SyncTest, AV3HubTakesTheAckInTheStatusBatchThatFollowsTheApply) {
  start_agent();
  hub_online(3);  // answered with a hello and a full status, which carries revision 0
  received_.clear();
  revision_when_status_acked_.clear();
  send_desired(snapshot(kNode, 5, {process_spec("web")}));
  EXPECT_TRUE(ack_revisions().empty()) << "no Ack message of its own";
  auto sent = batches();
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(sent[0].acked_revision(), 5u);
  ASSERT_EQ(sent[0].instances_size(), 1);
  EXPECT_EQ(sent[0].instances(0).instance_id(), "web-1");
  EXPECT_EQ(revision_when_status_acked_, std::vector<uint64_t>{5}) << "persisted, then acked";

  // Nothing to report (the same workload again): the ack goes alone, in the same tick.
  received_.clear();
  send_desired(snapshot(kNode, 6, {process_spec("web")}));
  EXPECT_EQ(ack_revisions(), std::vector<uint64_t>{6});
  EXPECT_TRUE(batches().empty());

  // A hub one version behind (v2) gets an Ack for each apply, and batches it does not read
  // carry nothing new.
  hub_online(2, "e2");
  received_.clear();
  send_desired(delta(kNode, 6, 7, {process_spec("db")}, {}));
  EXPECT_EQ(ack_revisions(), std::vector<uint64_t>{7});
  EXPECT_EQ(revision_when_acked_.back(), 7u);
  for (const auto& b : batches()) EXPECT_FALSE(b.has_acked_revision());
}

TEST_F(SyncTest, DesiredStateInPartsIsAppliedOnlyWhenWholeAndAckedOnce) {
  start_agent();
  std::vector<v1::WorkloadSpec> specs;
  for (int i = 0; i < 30; ++i) {
    auto spec = process_spec("w" + std::to_string(i));
    (*spec.mutable_process()->mutable_env())["PAD"] = std::string(2000, 'x');
    specs.push_back(spec);
  }
  auto parts = sync::split_desired(snapshot(kNode, 4, specs), 8000);
  ASSERT_TRUE(parts.ok());
  ASSERT_GT(parts->size(), 3u);
  // Last part first, one repeated: nothing is applied or acked until every part is in.
  send_desired(parts->back());
  for (size_t i = 0; i + 1 < parts->size(); ++i) {
    send_desired(parts->at(i));
    if (i == 0) send_desired(parts->at(0));
    if (i + 2 < parts->size()) {
      EXPECT_EQ(store_->meta().desired_revision, 0u);
      EXPECT_TRUE(ack_revisions().empty());
    }
  }
  EXPECT_EQ(store_->meta().desired_revision, 4u);
  EXPECT_EQ(store_->load_desired()->size(), 30u);
  EXPECT_EQ(ack_revisions(), std::vector<uint64_t>{4});
  EXPECT_EQ(revision_when_acked_, std::vector<uint64_t>{4});
  // A part of what is already applied is a duplicate: re-acked, nothing collected.
  send_desired(parts->at(1));
  EXPECT_EQ(ack_revisions(), (std::vector<uint64_t>{4, 4}));
}

TEST_F(SyncTest, DeltaAppliesOnTopOfOurRevision) {
  start_agent();
  send_desired(snapshot(kNode, 1, {process_spec("web")}));
  send_desired(delta(kNode, 1, 2, {process_spec("db")}, {"web"}));
  EXPECT_EQ(store_->meta().desired_revision, 2u);
  auto desired = *store_->load_desired();
  ASSERT_EQ(desired.size(), 1u);
  EXPECT_EQ(desired.count("db"), 1u);
  EXPECT_EQ(ack_revisions(), (std::vector<uint64_t>{1, 2}));
  step();
  EXPECT_EQ(driver_.running(), std::vector<std::string>{"db-2"});
}

TEST_F(SyncTest, OverlappingDeltaFromAnOlderAckedRevisionApplies) {
  // The hub sends every change from the last revision we *acked*; while our ack of 2 is on
  // its way, it sends 1->3 (all changes since 1). We are at 2: apply, no Hello, no gap.
  start_agent();
  send_desired(snapshot(kNode, 1, {process_spec("web")}));
  send_desired(delta(kNode, 1, 2, {process_spec("db")}));
  size_t hellos = got<v1::Hello>("hello").size();
  send_desired(delta(kNode, 1, 3, {process_spec("db"), process_spec("cache")}, {"web"}));
  EXPECT_EQ(store_->meta().desired_revision, 3u);
  auto desired = *store_->load_desired();
  EXPECT_EQ(desired.size(), 2u);
  EXPECT_EQ(desired.count("web"), 0u);
  EXPECT_EQ(desired.count("cache"), 1u);
  EXPECT_EQ(got<v1::Hello>("hello").size(), hellos);
  EXPECT_EQ(agent_->sync_client().counters().gaps, 0u);
  EXPECT_EQ(ack_revisions(), (std::vector<uint64_t>{1, 2, 3}));
}

TEST_F(SyncTest, DuplicatesChangeNothingAndAreReacked) {
  start_agent();
  send_desired(snapshot(kNode, 2, {process_spec("web")}));
  send_desired(snapshot(kNode, 2, {process_spec("other")}));       // replayed revision
  send_desired(delta(kNode, 1, 2, {process_spec("x")}, {"web"}));  // old delta
  send_desired(snapshot(kNode, 1, {}));                            // reordered, older
  auto desired = *store_->load_desired();
  ASSERT_EQ(desired.size(), 1u);
  EXPECT_EQ(desired.count("web"), 1u);
  EXPECT_EQ(store_->meta().desired_revision, 2u);
  EXPECT_EQ(ack_revisions(), (std::vector<uint64_t>{2, 2, 2, 2}));
  EXPECT_EQ(agent_->sync_client().counters().duplicates, 3u);
  EXPECT_EQ(driver_.launches.size(), 1u);
}

TEST_F(SyncTest, GapIsIgnoredAndHelloResent) {
  start_agent();
  send_desired(snapshot(kNode, 1, {process_spec("web")}));
  size_t hellos = got<v1::Hello>("hello").size();
  send_desired(delta(kNode, 3, 4, {process_spec("db")}));
  EXPECT_EQ(store_->meta().desired_revision, 1u);
  EXPECT_EQ(store_->load_desired()->count("db"), 0u);
  auto all = got<v1::Hello>("hello");
  ASSERT_EQ(all.size(), hellos + 1);
  EXPECT_EQ(all.back().acked_revision(), 1u);
  EXPECT_EQ(ack_revisions(), std::vector<uint64_t>{1});
  EXPECT_EQ(agent_->sync_client().counters().gaps, 1u);
}

TEST_F(SyncTest, MalformedAndOversizedMessagesAreDropped) {
  start_agent();
  send_desired(snapshot(kNode, 1, {process_spec("web")}));
  send("desired", std::string("\xff\xff\xff\xff garbage", 13));
  send("desired", std::string(sync::kMaxMessageBytes + 1, '\0'));
  send("resync", std::string("\x0a\xff", 2));
  send("bogus", "");
  EXPECT_EQ(agent_->sync_client().counters().rejected_messages, 4u);
  EXPECT_EQ(store_->meta().desired_revision, 1u);
  EXPECT_EQ(store_->load_desired()->size(), 1u);
  EXPECT_EQ(ack_revisions(), std::vector<uint64_t>{1});
}

TEST_F(SyncTest, MessageForAnotherNodeIsRejected) {
  start_agent();
  send_desired(snapshot("edge-2", 1, {process_spec("web")}));
  EXPECT_EQ(agent_->sync_client().counters().rejected_messages, 1u);
  EXPECT_EQ(store_->meta().desired_revision, 0u);
  EXPECT_TRUE(ack_revisions().empty());
  EXPECT_TRUE(driver_.launches.empty());
}

TEST_F(SyncTest, OneBadSpecRejectsTheWholeMessage) {
  start_agent();
  auto bad = process_spec("bad");
  bad.mutable_process()->clear_command();
  send_desired(snapshot(kNode, 1, {process_spec("good"), bad}));
  auto unnamed = process_spec("");
  send_desired(delta(kNode, 0, 1, {unnamed}));
  EXPECT_EQ(agent_->sync_client().counters().rejected_messages, 2u);
  EXPECT_TRUE(store_->load_desired()->empty());
  EXPECT_TRUE(driver_.launches.empty());
}

TEST_F(SyncTest, OutboxRowsLeaveOnlyAfterTheBrokerAcked) {
  start_agent();
  transport_->hold = true;
  send_desired(snapshot(kNode, 1, {process_spec("web")}));
  step();
  ASSERT_FALSE(batches().empty());
  EXPECT_FALSE(store_->outbox_statuses()->empty()) << "deleted before the broker acked";
  EXPECT_FALSE(store_->outbox_events()->empty());
  transport_->release_all();
  step();
  EXPECT_TRUE(store_->outbox_statuses()->empty());
  EXPECT_TRUE(store_->outbox_events()->empty());
}

TEST_F(SyncTest, AckOfAnOlderRecordKeepsTheNewerOne) {
  config_.sync.max_inflight_batches = 1;
  start_agent();
  send_desired(snapshot(kNode, 1, {process_spec("web")}));
  step();
  transport_->hold = true;
  driver_.crash("web-1", 9);
  step();  // BACKOFF record sent and in flight
  ASSERT_EQ(transport_->held.size(), 1u);
  step(1000);  // restarted: a newer RUNNING record replaces it in the outbox
  transport_->release_one();
  step();
  auto rows = *store_->outbox_statuses();
  ASSERT_EQ(rows.size(), 1u);
  v1::InstanceStatus newest;
  newest.ParseFromString(rows[0].record);
  EXPECT_EQ(newest.phase(), v1::PHASE_RUNNING);
  transport_->release_all();
  step();
  EXPECT_TRUE(store_->outbox_statuses()->empty());
  EXPECT_EQ(batches().back().instances(0).phase(), v1::PHASE_RUNNING);
}

TEST_F(SyncTest, InFlightBatchesAreResentAfterReconnect) {
  start_agent();
  send_desired(snapshot(kNode, 1, {process_spec("web")}));
  step();
  transport_->hold = true;
  driver_.crash("web-1", 9);
  step();
  ASSERT_FALSE(transport_->held.empty());
  transport_->inner().drop();
  step();
  received_.clear();
  transport_->hold = false;
  transport_->inner().reconnect();
  step();
  EXPECT_EQ(kinds().at(0), "hello");
  auto sent = batches();
  ASSERT_FALSE(sent.empty());
  EXPECT_TRUE(sent[0].full());
  EXPECT_EQ(sent[0].instances(0).phase(), v1::PHASE_BACKOFF);
  transport_->release_all(/*fail=*/true);  // the old connection's batches never made it
  step();
  EXPECT_TRUE(store_->outbox_statuses()->empty());
  EXPECT_TRUE(store_->outbox_events()->empty());
}

TEST_F(SyncTest, StatusWaitsInTheOutboxWhileOfflineThenFlowsInBatches) {
  start_agent();
  send_desired(snapshot(kNode, 1, {process_spec("web")}));
  step();
  broker_.set_up(false);
  step();
  received_.clear();
  for (int i = 0; i < 20; ++i) {
    driver_.crash("web-1", 9);
    step();
    step(60'000);
  }
  EXPECT_TRUE(received_.empty());
  EXPECT_GE(store_->outbox_events()->size(), 40u);
  broker_.set_up(true);
  step();
  step();
  EXPECT_LE(batches().size(), 3u) << "records were sent one by one";
  EXPECT_TRUE(store_->outbox_events()->empty());
  EXPECT_TRUE(store_->outbox_statuses()->empty());
}

TEST_F(SyncTest, BatchesStayUnderTheSizeCap) {
  start_agent();
  InstanceRecord rec;
  rec.workload = "noisy";
  rec.spec_hash = "h";
  rec.phase = v1::PHASE_FAILED;
  ASSERT_TRUE(store_->create_instance(rec, {"noisy", "Created", "", 0}).ok());
  for (int i = 0; i < 999; ++i) {
    ASSERT_TRUE(store_->save_instance(rec, {"noisy", "Spam", std::string(1000, 'x'), 0}).ok());
  }
  for (int i = 0; i < 20 && !store_->outbox_events()->empty(); ++i) step();
  EXPECT_TRUE(store_->outbox_events()->empty());
  size_t events = 0;
  for (const auto& m : received_) {
    if (m.topic.find("/up/status") == std::string::npos) continue;
    EXPECT_LE(m.payload.size(), sync::kMaxMessageBytes);
    events += static_cast<size_t>(sync::decode<v1::StatusBatch>(m.payload)->events_size());
  }
  EXPECT_EQ(events, 1000u);
  EXPECT_GE(batches().size(), 4u);
}

TEST_F(SyncTest, ResyncSendsHelloAndFullStatus) {
  start_agent();
  received_.clear();
  v1::Resync resync;
  resync.set_reason("missing seq");
  send("resync", sync::encode(resync));
  ASSERT_GE(kinds().size(), 2u);
  EXPECT_EQ(kinds()[0], "hello");
  EXPECT_TRUE(batches().at(0).full());
}

TEST_F(SyncTest, NewHubEpochGetsHelloAndFullStatusOnce) {
  start_agent();
  received_.clear();
  v1::HubOnline online;
  online.set_epoch("e1");
  std::string topic = sync::hub_online_topic(sync::shard_of(kNode, 16));
  // A hub that (re)connected after us missed our Hello: it announces itself, we answer.
  ASSERT_TRUE(hub_->publish_retained(topic, sync::encode(online)).ok());
  agent_->run_once();
  ASSERT_GE(kinds().size(), 2u);
  EXPECT_EQ(kinds()[0], "hello");
  EXPECT_TRUE(batches().at(0).full());
  // The same epoch again (a replay, or the retained copy after our own reconnect) is ignored.
  received_.clear();
  ASSERT_TRUE(hub_->publish_retained(topic, sync::encode(online)).ok());
  agent_->run_once();
  EXPECT_TRUE(got<v1::Hello>("hello").empty());
  // Garbage on the topic changes nothing.
  ASSERT_TRUE(hub_->publish_retained(topic, std::string("\xff\xff\xff", 3)).ok());
  agent_->run_once();
  EXPECT_TRUE(got<v1::Hello>("hello").empty());
}

TEST_F(SyncTest, TheRetainedEpochAtConnectNeedsNoSecondHello) {
  v1::HubOnline online;
  online.set_epoch("e1");
  std::string topic = sync::hub_online_topic(sync::shard_of(kNode, 16));
  // The hub announced before the agent connected: the broker holds the retained copy.
  ASSERT_TRUE(hub_->publish_retained(topic, sync::encode(online)).ok());
  start_agent();
  agent_->run_once();
  EXPECT_EQ(got<v1::Hello>("hello").size(), 1u) << "the connect's hello reaches that hub";
  EXPECT_EQ(batches().size(), 1u);
  // A later announcement (the hub reconnected after us) is answered.
  received_.clear();
  online.set_epoch("e2");
  ASSERT_TRUE(hub_->publish_retained(topic, sync::encode(online)).ok());
  agent_->run_once();
  EXPECT_EQ(got<v1::Hello>("hello").size(), 1u);
}

TEST_F(SyncTest, HeartbeatEveryPeriod) {
  start_agent();
  send_desired(snapshot(kNode, 7, {process_spec("web")}));
  EXPECT_TRUE(got<v1::Heartbeat>("heartbeat").empty());
  step(4999);
  EXPECT_TRUE(got<v1::Heartbeat>("heartbeat").empty());
  step(1);
  auto hbs = got<v1::Heartbeat>("heartbeat");
  ASSERT_EQ(hbs.size(), 1u);
  EXPECT_EQ(hbs[0].acked_revision(), 7u);
  EXPECT_EQ(hbs[0].status_seq(), store_->meta().status_seq);
  EXPECT_EQ(hbs[0].instances_running(), 1u);
  EXPECT_EQ(hbs[0].boot_id(), "boot-1");
  step(5000);
  EXPECT_EQ(got<v1::Heartbeat>("heartbeat").size(), 2u);
}

TEST_F(SyncTest, ShutdownSaysOfflineAndLeavesWorkloadsRunning) {
  start_agent();
  send_desired(snapshot(kNode, 1, {process_spec("web")}));
  agent_->shutdown();
  auto offline = got<v1::Offline>("will");
  ASSERT_EQ(offline.size(), 1u);
  EXPECT_EQ(offline[0].boot_id(), "boot-1");
  EXPECT_EQ(driver_.running(), std::vector<std::string>{"web-1"});
  agent_.reset();
}

TEST_F(SyncTest, DesiredStateSurvivesRestartWithoutTheHub) {
  start_agent();
  send_desired(snapshot(kNode, 4, {process_spec("web")}));
  agent_->shutdown();
  agent_.reset();
  store_.reset();
  broker_.set_up(false);
  driver_.instances.clear();  // the node rebooted, no network
  auto reopened = Store::open(dir_ / "agent.db", kNode);
  ASSERT_TRUE(reopened.ok());
  store_ = std::move(*reopened);
  start_agent();
  step(1000);
  EXPECT_EQ(driver_.running().size(), 1u);
}

}  // namespace
}  // namespace flotilla::agent
