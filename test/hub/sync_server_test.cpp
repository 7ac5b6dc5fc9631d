// The hub side of the sync protocol, end to end over the in-memory broker with a fake clock.
#include <gtest/gtest.h>

#include "sync/desired_parts.hpp"

#include "test/hub/fake_agent.hpp"
#include "test/support/temp_dir.hpp"

namespace flotilla::hub {
namespace {

using testing::FakeAgent;
using testing::HubHarness;
using testing::instance;
using testing::process_workload;
namespace pb = flotilla::v1;

std::vector<std::string> upserts(const pb::DesiredState& d) {
  std::vector<std::string> out;
  for (const auto& u : d.upserts()) out.push_back(u.name());
  return out;
}

std::vector<std::string> deletes(const pb::DesiredState& d) {
  return {d.deletes().begin(), d.deletes().end()};
}

TEST(SyncServerTest, HelloRegistersTheNodeAndGetsASnapshot) {
  HubHarness hub;
  hub.apply(process_workload("hello", "placement: {everyNode: true}"));
  FakeAgent agent(hub.broker, "n1");
  agent.hello(0, {{"zone", "east"}});
  NodeRecord n = hub.node("n1");
  EXPECT_TRUE(n.ready);
  EXPECT_EQ(n.labels.at("zone"), "east");
  EXPECT_EQ(n.revision, 1u);
  ASSERT_EQ(agent.desired.size(), 1u);
  const auto& d = agent.desired[0];
  EXPECT_TRUE(d.snapshot());
  EXPECT_EQ(d.node(), "n1");
  EXPECT_EQ(d.to_revision(), 1u);
  EXPECT_EQ(upserts(d), std::vector<std::string>{"hello"});
  EXPECT_EQ(d.upserts(0).process().command(0), "/bin/sleep");
  EXPECT_EQ(hub.metrics.value("flotilla_hub_messages_received_total", {{"kind", "hello"}}), 1u);
}

TEST(SyncServerTest, DeltasStartAtTheAckedRevision) {
  HubHarness hub;
  FakeAgent agent(hub.broker, "n1");
  agent.hello(0);
  EXPECT_TRUE(agent.desired.empty());  // nothing to run yet: revision 0 == acked 0
  hub.apply(process_workload("a", "placement: {everyNode: true}"));
  ASSERT_EQ(agent.desired.size(), 1u);
  agent.ack_last();
  EXPECT_EQ(hub.node("n1").acked_revision, 1u);

  hub.apply(process_workload("b", "replicas: 1"));
  ASSERT_EQ(agent.desired.size(), 2u);
  EXPECT_FALSE(agent.desired[1].snapshot());
  EXPECT_EQ(agent.desired[1].from_revision(), 1u);
  EXPECT_EQ(agent.desired[1].to_revision(), 2u);
  EXPECT_EQ(upserts(agent.desired[1]), std::vector<std::string>{"b"});
  // The agent misses that message and the next (it acks nothing); a hello catches it up.
  ASSERT_TRUE(hub.controller->delete_workload("a").ok());
  agent.desired.clear();
  agent.hello(1);
  ASSERT_EQ(agent.desired.size(), 1u);
  const auto& d = agent.desired[0];
  EXPECT_FALSE(d.snapshot());
  EXPECT_EQ(d.from_revision(), 1u);
  EXPECT_EQ(d.to_revision(), 3u);
  EXPECT_EQ(upserts(d), std::vector<std::string>{"b"});
  EXPECT_EQ(deletes(d), std::vector<std::string>{"a"});
}

TEST(SyncServerTest, DuplicateAndStaleAcksChangeNothing) {
  HubHarness hub;
  hub.apply(process_workload("a", "placement: {everyNode: true}"));
  FakeAgent agent(hub.broker, "n1");
  agent.hello(0);
  agent.ack(1);
  size_t sent = agent.desired.size();
  agent.ack(1);
  agent.ack(0);
  EXPECT_EQ(hub.node("n1").acked_revision, 1u);
  EXPECT_EQ(agent.desired.size(), sent);
  EXPECT_EQ(hub.metrics.value("flotilla_hub_acks_ignored_total", {{"reason", "duplicate"}}), 2u);
  agent.ack(7);  // never issued
  EXPECT_EQ(hub.node("n1").acked_revision, 1u);
}

// Protocol v3: a status batch's acked_revision is an ack. Every batch of a v3 agent carries it,
// so one that is not newer is not counted as a duplicate ack; one never issued changes nothing.
TEST(SyncServerTest, AStatusBatchCarryingAnAckedRevisionAcksIt) {
  HubHarness hub;
  hub.apply(process_workload("a", "placement: {everyNode: true}"));
  FakeAgent agent(hub.broker, "n1");
  agent.hello(0);
  ASSERT_EQ(agent.desired.size(), 1u);
  pb::StatusBatch b;
  b.set_node("n1");
  *b.add_instances() = instance("a", "a-1", pb::PHASE_RUNNING, 1);
  b.set_acked_revision(1);
  agent.send("status", b);
  EXPECT_EQ(hub.node("n1").acked_revision, 1u);
  EXPECT_EQ(hub.store->get_instance("n1", "a-1")->value().status.phase(), pb::PHASE_RUNNING);

  b.clear_instances();
  agent.send("status", b);  // the same revision again, as every later batch carries it
  b.set_acked_revision(7);  // never issued
  agent.send("status", b);
  EXPECT_EQ(hub.node("n1").acked_revision, 1u);
  EXPECT_EQ(hub.metrics.value("flotilla_hub_acks_ignored_total", {{"reason", "duplicate"}}), 0u);
  EXPECT_EQ(hub.metrics.value("flotilla_hub_acks_ignored_total", {{"reason", "unknown_revision"}}),
            1u);

  // Still behind after the ack it carries: the rest is sent, as after an Ack.
  hub.apply(process_workload("b", "placement: {everyNode: true}"));
  hub.apply(process_workload("c", "placement: {everyNode: true}"));
  ASSERT_EQ(agent.desired.back().to_revision(), 3u);
  agent.desired.clear();
  hub.clock.advance(Millis(30000));  // past the resend interval
  b.set_acked_revision(2);
  agent.send("status", b);
  EXPECT_EQ(hub.node("n1").acked_revision, 2u);
  ASSERT_EQ(agent.desired.size(), 1u);
  EXPECT_EQ(agent.desired[0].from_revision(), 2u);
  EXPECT_EQ(agent.desired[0].to_revision(), 3u);
}

TEST(SyncServerTest, AgentAheadOfTheHubGetsASnapshotPastItsRevision) {
  HubHarness hub;
  hub.apply(process_workload("a", "placement: {everyNode: true}"));
  FakeAgent agent(hub.broker, "n1");
  agent.hello(0);
  agent.ack_last();
  agent.desired.clear();
  // As if the hub had lost its store: the agent claims revision 40.
  agent.hello(40);
  ASSERT_EQ(agent.desired.size(), 1u);
  EXPECT_TRUE(agent.desired[0].snapshot());
  EXPECT_EQ(agent.desired[0].to_revision(), 41u);
  EXPECT_EQ(upserts(agent.desired[0]), std::vector<std::string>{"a"});
  agent.ack_last();
  EXPECT_EQ(hub.node("n1").acked_revision, 41u);
  EXPECT_EQ(hub.node("n1").revision, 41u);
}

TEST(SyncServerTest, NotReadyAfterTimeoutAndBackOnHeartbeat) {
  HubHarness hub;
  FakeAgent agent(hub.broker, "n1");
  agent.hello(0);
  hub.clock.advance(Millis(10000));
  agent.heartbeat(0);
  hub.clock.advance(Millis(14000));
  hub.controller->tick();
  EXPECT_TRUE(hub.node("n1").ready);  // 14 s since the heartbeat
  hub.clock.advance(Millis(2000));
  hub.controller->tick();
  EXPECT_FALSE(hub.node("n1").ready);  // 16 s > 15 s timeout
  agent.heartbeat(0);
  EXPECT_TRUE(hub.node("n1").ready);
}

TEST(SyncServerTest, LastWillMarksNotReadyAtOnceUnlessStale) {
  HubHarness hub;
  FakeAgent agent(hub.broker, "n1");
  agent.hello(0, {}, "boot-2");
  agent.will("boot-1");  // an older process's will, delivered late
  EXPECT_TRUE(hub.node("n1").ready);
  agent.will("boot-2");
  EXPECT_FALSE(hub.node("n1").ready);
}

TEST(SyncServerTest, NotReadyNodesKeepWorkloadsAndCatchUpOnReturn) {
  HubHarness hub;
  FakeAgent n1(hub.broker, "n1");
  FakeAgent n2(hub.broker, "n2");
  n1.hello(0);
  n2.hello(0);
  hub.apply(process_workload("one", "replicas: 1"));
  n1.ack_last();
  EXPECT_EQ(hub.node("n1").revision, 1u);  // "one" went to n1 (first by name)
  n1.will();
  ASSERT_FALSE(hub.node("n1").ready);
  // Nothing moves off the NotReady node; new work goes elsewhere.
  hub.apply(process_workload("two", "replicas: 2"));
  EXPECT_EQ(hub.node("n1").revision, 1u);
  EXPECT_EQ(hub.node("n2").revision, 1u);
  auto placements = *hub.store->placements();
  EXPECT_EQ(placements["one"], std::set<std::string>{"n1"});
  EXPECT_EQ(placements["two"], std::set<std::string>{"n2"});
  // When n1 returns it gets the second replica.
  n1.desired.clear();
  n1.hello(1);
  EXPECT_EQ(hub.store->placements()->at("two"), (std::set<std::string>{"n1", "n2"}));
  ASSERT_EQ(n1.desired.size(), 1u);
  EXPECT_EQ(n1.desired[0].from_revision(), 1u);
  EXPECT_EQ(upserts(n1.desired[0]), std::vector<std::string>{"two"});
}

TEST(SyncServerTest, HeartbeatResendsWhenBehindButNotTooOften) {
  HubHarness hub;
  FakeAgent agent(hub.broker, "n1");
  agent.hello(0);
  hub.apply(process_workload("a", "placement: {everyNode: true}"));
  ASSERT_EQ(agent.desired.size(), 1u);
  // The agent lost that message: its heartbeats still say revision 0.
  agent.heartbeat(0);
  EXPECT_EQ(agent.desired.size(), 1u);  // just sent; wait a period
  hub.clock.advance(Millis(5000));
  agent.heartbeat(0);
  ASSERT_EQ(agent.desired.size(), 2u);
  EXPECT_EQ(agent.desired[1].to_revision(), 1u);
  agent.ack_last();
  hub.clock.advance(Millis(5000));
  agent.heartbeat(1);
  EXPECT_EQ(agent.desired.size(), 2u);  // up to date: nothing more
}

// The QoS each desired-state publish went out at, in order.
std::vector<int> desired_qos(const sync::FakeBroker& broker) {
  std::vector<int> out;
  auto log = broker.log();
  auto qos = broker.log_qos();
  for (size_t i = 0; i < log.size(); ++i) {
    if (log[i].topic.ends_with("/down/desired")) out.push_back(qos[i]);
  }
  return out;
}

TEST(SyncServerTest, DesiredStateGoesAtQos0UnlessConfiguredAndOtherMessagesAtQos1) {
  {
    HubHarness hub;
    FakeAgent agent(hub.broker, "n1");
    agent.hello(0);
    hub.apply(process_workload("a", "placement: {everyNode: true}"));
    ASSERT_EQ(agent.desired.size(), 1u);
    EXPECT_EQ(desired_qos(hub.broker), std::vector<int>{0});
    // A heartbeat of an unknown node gets a resync, which stays at QoS 1.
    FakeAgent stranger(hub.broker, "n2");
    stranger.heartbeat(0);
    auto log = hub.broker.log();
    auto qos = hub.broker.log_qos();
    ASSERT_EQ(log.size(), qos.size());
    bool resync = false;
    for (size_t i = 0; i < log.size(); ++i) {
      if (log[i].topic.ends_with("/down/resync")) {
        resync = true;
        EXPECT_EQ(qos[i], 1) << log[i].topic;
      }
    }
    EXPECT_TRUE(resync);
  }
  {
    ControllerOptions options;
    options.desired_qos = 1;
    HubHarness hub(":memory:", options);
    FakeAgent agent(hub.broker, "n1");
    agent.hello(0);
    hub.apply(process_workload("a", "placement: {everyNode: true}"));
    ASSERT_EQ(agent.desired.size(), 1u);
    EXPECT_EQ(desired_qos(hub.broker), std::vector<int>{1});
  }
}

TEST(SyncServerTest, NoResendWhileTheTransportStillHoldsUnsentMessages) {
  HubHarness hub;
  FakeAgent agent(hub.broker, "n1");
  agent.hello(0);
  hub.apply(process_workload("a", "placement: {everyNode: true}"));
  ASSERT_EQ(agent.desired.size(), 1u);
  // The hub's client still has a queue to send: the first message is likely in it.
  hub.hub_transport->set_backlog(5000);
  hub.clock.advance(Millis(5000));
  agent.heartbeat(0);
  EXPECT_EQ(agent.desired.size(), 1u);
  // Long overdue: sent anyway.
  hub.clock.advance(Millis(55000));
  agent.heartbeat(0);
  EXPECT_EQ(agent.desired.size(), 2u);
  // Queue drained: the usual period applies.
  hub.hub_transport->set_backlog(0);
  hub.clock.advance(Millis(5000));
  agent.heartbeat(0);
  EXPECT_EQ(agent.desired.size(), 3u);
}

TEST(SyncServerTest, StatusNewestSeqWinsAndRemovedDeletes) {
  HubHarness hub;
  hub.apply(process_workload("web", "placement: {everyNode: true}"));
  FakeAgent agent(hub.broker, "n1");
  agent.hello(0);
  agent.status({instance("web", "web-1", pb::PHASE_RUNNING, 5)});
  agent.status({instance("web", "web-1", pb::PHASE_FAILED, 3)});  // older: ignored
  auto got = hub.store->get_instance("n1", "web-1");
  ASSERT_TRUE(got.ok() && got->has_value());
  EXPECT_EQ((*got)->status.phase(), pb::PHASE_RUNNING);
  EXPECT_EQ(hub.node("n1").status_seq, 5u);
  auto view = *hub.controller->workload_view("web");
  EXPECT_EQ((*view)["status"]["readyInstances"], 1);
  agent.status({instance("web", "web-1", pb::PHASE_TERMINATING, 6, true)});
  EXPECT_TRUE((*hub.store->get_instance("n1", "web-1"))->status.removed());
  EXPECT_TRUE(hub.store->list_instances()->empty());
  // An older record of the removed instance, duplicated or replayed, does not bring it back.
  agent.status({instance("web", "web-1", pb::PHASE_RUNNING, 5)});
  EXPECT_TRUE(hub.store->list_instances()->empty());
}

TEST(SyncServerTest, FullStatusForgetsUnlistedInstances) {
  HubHarness hub;
  FakeAgent agent(hub.broker, "n1");
  agent.hello(0);
  agent.status(
      {instance("a", "a-1", pb::PHASE_RUNNING, 1), instance("b", "b-1", pb::PHASE_RUNNING, 2)});
  agent.status({instance("a", "a-1", pb::PHASE_RUNNING, 1)}, /*full=*/true);
  auto listed = *hub.store->list_instances();
  ASSERT_EQ(listed.size(), 1u);
  EXPECT_EQ(listed[0].status.instance_id(), "a-1");
}

TEST(SyncServerTest, OldFullStatusKeepsInstancesReportedAfterIt) {
  HubHarness hub;
  FakeAgent agent(hub.broker, "n1");
  agent.hello(0);
  agent.status({instance("a", "a-1", pb::PHASE_RUNNING, 1)}, /*full=*/true, /*as_of=*/1);
  agent.status({instance("b", "b-1", pb::PHASE_RUNNING, 2)});
  // The same full status again (duplicated, delayed or replayed): b-1 came after it.
  agent.status({instance("a", "a-1", pb::PHASE_RUNNING, 1)}, /*full=*/true, /*as_of=*/1);
  EXPECT_EQ(hub.store->list_instances()->size(), 2u);
  // A full status taken after b-1's record, without it: b-1 is gone.
  agent.status({instance("a", "a-1", pb::PHASE_RUNNING, 1)}, /*full=*/true, /*as_of=*/3);
  EXPECT_EQ(hub.store->list_instances()->size(), 1u);
}

TEST(SyncServerTest, BadMessagesAreDroppedAndCounted) {
  HubHarness hub;
  FakeAgent agent(hub.broker, "n1");
  agent.raw("hello", "\xff\xff\xff not protobuf");
  pb::Hello other;
  other.set_node("n2");  // on n1's topic
  agent.send("hello", other);
  agent.raw("status", std::string(sync::kMaxMessageBytes + 1, 'x'));
  // A topic on the wrong shard.
  sync::Topic t{(sync::shard_of("n1", 16) + 1) % 16, "n1", sync::Direction::kUp, "hello"};
  auto stray = hub.broker.connect("stray");
  ASSERT_TRUE(stray->start().ok());
  pb::Hello h;
  h.set_node("n1");
  ASSERT_TRUE(stray->publish(sync::make_topic(t), sync::encode(h), 1).ok());
  hub.sync_server->handle({"flotilla/v1/s/0/n/BAD NODE/up/hello", sync::encode(h)});

  EXPECT_FALSE(hub.store->get_node("n1")->has_value());
  EXPECT_FALSE(hub.store->get_node("n2")->has_value());
  auto dropped = [&](const std::string& kind, const std::string& reason) {
    return hub.metrics.value("flotilla_hub_messages_dropped_total",
                             {{"kind", kind}, {"reason", reason}});
  };
  EXPECT_EQ(dropped("hello", "malformed"), 1u);
  EXPECT_EQ(dropped("hello", "node_mismatch"), 1u);
  EXPECT_EQ(dropped("status", "too_large"), 1u);
  EXPECT_EQ(dropped("hello", "wrong_shard"), 1u);
  EXPECT_EQ(dropped("unknown", "bad_topic"), 1u);
  EXPECT_NE(hub.metrics.render().find("flotilla_hub_messages_dropped_total{kind=\"hello\""),
            std::string::npos);
}

TEST(SyncServerTest, ResyncWhenStatusIsStillMissingAHeartbeatLater) {
  HubHarness hub;
  FakeAgent agent(hub.broker, "n1");
  agent.hello(0);
  agent.heartbeat(0, 10);  // records up to 10 may be in flight
  EXPECT_EQ(agent.resyncs, 0);
  agent.status({instance("a", "a-1", pb::PHASE_RUNNING, 10)});
  agent.heartbeat(0, 12);
  EXPECT_EQ(agent.resyncs, 0);
  agent.heartbeat(0, 12);  // 11..12 never came
  EXPECT_EQ(agent.resyncs, 1);
  // An old heartbeat of the same agent process (duplicated, delayed, replayed) changes nothing.
  agent.heartbeat(0, 2);
  EXPECT_EQ(agent.resyncs, 1);
  agent.status({instance("a", "a-1", pb::PHASE_FAILED, 2)});
  EXPECT_EQ((*hub.store->get_instance("n1", "a-1"))->status.phase(), pb::PHASE_RUNNING);
  // A counter that went backwards in a new agent process (it lost its store) resets the guard
  // and resyncs.
  agent.hello(0, {}, "boot-2");
  agent.heartbeat(0, 2, "boot-2");
  EXPECT_EQ(agent.resyncs, 2);
  agent.status({instance("a", "a-1", pb::PHASE_FAILED, 2)});
  EXPECT_EQ((*hub.store->get_instance("n1", "a-1"))->status.phase(), pb::PHASE_FAILED);
}

TEST(SyncServerTest, UnknownNodeIsAskedToSayHello) {
  HubHarness hub;
  FakeAgent agent(hub.broker, "n1");
  agent.heartbeat(3);
  EXPECT_EQ(agent.resyncs, 1);
  EXPECT_FALSE(hub.store->get_node("n1")->has_value());
}

TEST(SyncServerTest, LabelChangeReschedules) {
  HubHarness hub;
  hub.apply(process_workload("east", "replicas: 1", "  selector: {matchLabels: {zone: east}}\n"));
  FakeAgent agent(hub.broker, "n1");
  agent.hello(0, {{"zone", "west"}});
  EXPECT_TRUE(agent.desired.empty());
  EXPECT_EQ((**hub.store->get_workload("east")).pending, 1);
  agent.hello(0, {{"zone", "east"}});
  ASSERT_EQ(agent.desired.size(), 1u);
  EXPECT_EQ(upserts(agent.desired[0]), std::vector<std::string>{"east"});
  EXPECT_EQ((**hub.store->get_workload("east")).pending, 0);
}

TEST(SyncServerTest, EvictAfterMovesInstancesOffALongNotReadyNode) {
  HubHarness hub;
  FakeAgent n1(hub.broker, "n1");
  FakeAgent n2(hub.broker, "n2");
  n1.hello(0);
  n2.hello(0);
  hub.apply(process_workload("moves", "replicas: 1", "  evictAfterSeconds: 30\n"));
  hub.apply(process_workload("stays", "replicas: 1"));
  EXPECT_EQ(hub.store->placements()->at("moves"), std::set<std::string>{"n1"});
  EXPECT_EQ(hub.store->placements()->at("stays"), std::set<std::string>{"n2"});
  n1.ack_last();
  n2.ack_last();
  n1.will();
  ASSERT_FALSE(hub.node("n1").ready);
  hub.clock.advance(Millis(30000));
  n2.heartbeat(1);
  hub.controller->tick();
  EXPECT_EQ(hub.store->placements()->at("moves"), std::set<std::string>{"n1"}) << "not yet";
  hub.clock.advance(Millis(1000));
  n2.heartbeat(1);
  n2.desired.clear();
  hub.controller->tick();
  EXPECT_EQ(hub.store->placements()->at("moves"), std::set<std::string>{"n2"});
  ASSERT_EQ(n2.desired.size(), 1u);
  EXPECT_EQ(upserts(n2.desired[0]), std::vector<std::string>{"moves"});
  // The workload without evictAfterSeconds never moves; n1 learns of the eviction on return.
  EXPECT_EQ(hub.store->placements()->at("stays"), std::set<std::string>{"n2"});
  n1.desired.clear();
  n1.hello(1);
  ASSERT_EQ(n1.desired.size(), 1u);
  ASSERT_EQ(n1.desired[0].deletes_size(), 1);
  EXPECT_EQ(n1.desired[0].deletes(0), "moves");
  EXPECT_EQ(hub.store->placements()->at("moves"), std::set<std::string>{"n2"}) << "stable";
}

TEST(SyncServerTest, DeletedNodesLoseTheirPlacementsAtOnce) {
  HubHarness hub;
  FakeAgent n1(hub.broker, "n1");
  FakeAgent n2(hub.broker, "n2");
  n1.hello(0);
  n2.hello(0);
  hub.apply(process_workload("one", "replicas: 1"));
  n1.ack_last();
  n1.status({instance("one", "one-1", pb::PHASE_RUNNING, 1)});
  n1.will();
  auto deleted = hub.controller->delete_node("n1");
  ASSERT_TRUE(deleted.ok());
  EXPECT_TRUE(*deleted);
  EXPECT_FALSE(hub.store->get_node("n1")->has_value());
  EXPECT_EQ(hub.store->placements()->at("one"), std::set<std::string>{"n2"});
  ASSERT_EQ(n2.desired.size(), 1u);
  EXPECT_TRUE(hub.store->list_instances()->empty());
  EXPECT_FALSE(*hub.controller->delete_node("n1"));
  // Its agent, back, registers anew and gets an empty desired state... and nothing moves back.
  n1.hello(1);
  EXPECT_TRUE(hub.node("n1").ready);
  EXPECT_EQ(hub.store->placements()->at("one"), std::set<std::string>{"n2"});
}

TEST(SyncServerTest, TaintsComeWithHelloAndKeepUntoleratingWorkloadsAway) {
  HubHarness hub;
  hub.apply(process_workload("plain", "placement: {everyNode: true}"));
  hub.apply(process_workload("gpu", "placement: {everyNode: true}",
                             "  tolerations: [{key: dedicated, operator: Exists}]\n"));
  FakeAgent tainted(hub.broker, "n1");
  tainted.taints = {{"dedicated", "gpu", "NoSchedule"}};
  tainted.hello(0);
  FakeAgent plain(hub.broker, "n2");
  plain.hello(0);
  EXPECT_EQ(hub.node("n1").taints, tainted.taints);
  ASSERT_EQ(tainted.desired.size(), 1u);
  EXPECT_EQ(upserts(tainted.desired[0]), std::vector<std::string>{"gpu"});
  ASSERT_EQ(plain.desired.size(), 1u);
  EXPECT_EQ(upserts(plain.desired[0]), (std::vector<std::string>{"gpu", "plain"}));
  tainted.ack_last();
  plain.ack_last();
  auto view = hub.controller->node_view("n1");
  ASSERT_TRUE(view.ok() && view->has_value());
  EXPECT_EQ((**view)["taints"],
            nlohmann::json::parse(R"([{"key":"dedicated","value":"gpu","effect":"NoSchedule"}])"));

  // A NoSchedule taint leaves what runs; turning it into NoExecute removes what does not
  // tolerate it, and the workload that does stays.
  hub.apply(process_workload("late", "replicas: 2"));
  EXPECT_EQ((**hub.store->get_workload("late")).pending_reason,
            "1/2 nodes: 1 taint dedicated=gpu:NoSchedule not tolerated");
  plain.ack_last();
  tainted.taints = {{"dedicated", "gpu", "NoExecute"}};
  tainted.hello(1);
  EXPECT_EQ(tainted.desired.size(), 1u) << "the gpu workload tolerates any effect";
  tainted.taints = {{"dedicated", "gpu", "NoExecute"}, {"flaky", "", "NoExecute"}};
  tainted.hello(1);
  ASSERT_EQ(tainted.desired.size(), 2u);
  EXPECT_EQ(tainted.desired[1].deletes_size(), 1);
  EXPECT_EQ(tainted.desired[1].deletes(0), "gpu");
}

TEST(SyncServerTest, VmsGoOnlyToNodesWithTheVmRuntimeAndRoomForGuestPlusQemu) {
  HubHarness hub;
  hub.apply(R"(apiVersion: flotilla/v1
kind: Workload
metadata: {name: appliance}
spec:
  type: vm
  placement: {everyNode: true}
  vm: {image: /img/disk.raw, memory: 256Mi}
)");
  FakeAgent no_vm(hub.broker, "plain");
  no_vm.hello(0, {}, "boot-1", {"process", "container"}, 4LL << 30);
  FakeAgent small(hub.broker, "small");  // 300Mi: the guest fits, guest plus QEMU does not
  small.hello(0, {}, "boot-1", {"process", "vm"}, 300LL << 20);
  static_assert((256LL << 20) + kVmMemoryOverheadBytes > (300LL << 20));
  FakeAgent big(hub.broker, "big");
  big.hello(0, {}, "boot-1", {"process", "vm"}, 1LL << 30);
  EXPECT_TRUE(no_vm.desired.empty());
  EXPECT_TRUE(small.desired.empty());
  ASSERT_EQ(big.desired.size(), 1u);
  EXPECT_EQ(big.desired[0].upserts(0).vm().memory_bytes(), 256LL << 20);
  WorkloadRecord w = **hub.store->get_workload("appliance");
  EXPECT_EQ(w.pending, 1);  // the Ready vm node without room
  EXPECT_NE(w.pending_reason.find("1 insufficient memory"), std::string::npos) << w.pending_reason;
  EXPECT_NE(w.pending_reason.find("1 no vm runtime"), std::string::npos) << w.pending_reason;
}

TEST(SyncServerTest, ReplicaChangeDoesNotTouchUnaffectedNodes) {
  HubHarness hub;
  FakeAgent n1(hub.broker, "n1");
  FakeAgent n2(hub.broker, "n2");
  n1.hello(0);
  n2.hello(0);
  hub.apply(process_workload("w", "replicas: 1"));
  EXPECT_EQ(hub.node("n1").revision, 1u);
  EXPECT_EQ(hub.node("n2").revision, 0u);
  hub.apply(process_workload("w", "replicas: 2"));
  EXPECT_EQ(hub.node("n1").revision, 1u);  // same spec there: no new revision, no message
  EXPECT_EQ(hub.node("n2").revision, 1u);
  EXPECT_EQ(n1.desired.size(), 1u);
  // A new command reaches both, with a new spec hash.
  std::string old_hash = n1.desired[0].upserts(0).spec_hash();
  std::string changed = process_workload("w", "replicas: 2");
  changed.replace(changed.find("'1000'"), 6, "'2000'");
  hub.apply(changed);
  EXPECT_EQ(hub.node("n1").revision, 2u);
  EXPECT_EQ(hub.node("n2").revision, 2u);
  ASSERT_EQ(n1.desired.size(), 2u);
  EXPECT_NE(n1.desired[1].upserts(0).spec_hash(), old_hash);
  EXPECT_EQ(n1.desired[1].upserts(0).generation(), 3);
}

TEST(SyncServerTest, StateSurvivesAHubRestart) {
  flotilla::testing::TempDir dir;
  {
    HubHarness hub(dir / "hub.db");
    hub.apply(process_workload("a", "placement: {everyNode: true}"));
    FakeAgent agent(hub.broker, "n1");
    agent.hello(0);
    agent.ack_last();
  }
  HubHarness hub(dir / "hub.db");
  EXPECT_EQ(hub.node("n1").acked_revision, 1u);
  // Applying the same manifest again changes nothing; the agent hears nothing new.
  auto r = hub.controller->apply(
      testing::manifests(process_workload("a", "placement: {everyNode: true}")));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->results.front().action, "unchanged");
  FakeAgent agent(hub.broker, "n1");
  agent.hello(1);
  EXPECT_TRUE(agent.desired.empty());
}

pb::Hello hello_speaking(const std::string& node, uint32_t version, uint32_t min_version) {
  pb::Hello h;
  h.set_node(node);
  h.set_protocol_version(version);
  h.set_min_protocol_version(min_version);
  h.set_boot_id("boot-1");
  h.add_runtimes("process");
  return h;
}

// Workloads whose desired state cannot fit one message (256 KiB): 12 of ~30 KB each.
std::string big_workloads() {
  std::string yaml;
  for (int i = 0; i < 12; ++i) {
    yaml += "---\napiVersion: flotilla/v1\nkind: Workload\nmetadata: {name: big" +
            std::to_string(i) +
            "}\nspec:\n  type: process\n  placement: {everyNode: true}\n  process:\n"
            "    command: [/bin/sleep, '1000']\n    env: {PAD: " +
            std::string(30000, 'x') + "}\n";
  }
  return yaml;
}

TEST(SyncServerTest, VersionIsNegotiatedAndOnlyV2AgentsGetDesiredStateInParts) {
  HubHarness hub;
  hub.apply(big_workloads());
  FakeAgent v2(hub.broker, "n2");
  FakeAgent v1(hub.broker, "n1");
  v2.send("hello", hello_speaking("n2", 2, 1));
  v1.send("hello", hello_speaking("n1", 1, 0));  // v1 agents leave min_protocol_version unset
  EXPECT_EQ(hub.node("n2").protocol_version, 2u);
  EXPECT_EQ(hub.node("n1").protocol_version, 1u);

  // v2: parts, each within the cap, that reassemble into all 12 workloads.
  ASSERT_GT(v2.desired.size(), 1u);
  sync::DesiredAssembler assembler;
  std::optional<pb::DesiredState> whole;
  for (const auto& part : v2.desired) {
    EXPECT_LE(part.ByteSizeLong(), sync::kMaxMessageBytes);
    auto r = assembler.add(part);
    ASSERT_TRUE(r.ok()) << r.error().message();
    if (*r) whole = **r;
  }
  ASSERT_TRUE(whole.has_value());
  EXPECT_EQ(whole->upserts_size(), 12);
  EXPECT_EQ(hub.metrics.value("flotilla_hub_desired_parts_total"), v2.desired.size());

  // v1 cannot take parts: nothing is sent, and the hub says why.
  EXPECT_TRUE(v1.desired.empty());
  EXPECT_EQ(hub.metrics.value("flotilla_hub_desired_too_large_total"), 1u);

  // No version in common: dropped, counted, not registered.
  FakeAgent future(hub.broker, "n3");
  future.send("hello", hello_speaking("n3", 9, 7));
  EXPECT_EQ(hub.metrics.value("flotilla_hub_messages_dropped_total",
                              {{"kind", "hello"}, {"reason", "unsupported_version"}}),
            1u);
  EXPECT_FALSE(hub.store->get_node("n3")->has_value());
}

// A node whose hello is refused (no version in common) answers each Resync with a hello and a
// full status, which the hub does not know either: it is asked again at most once per resend
// interval, not at network speed without end.
TEST(SyncServerTest, AnUnknownNodeIsAskedToResyncAtMostOncePerResendInterval) {
  HubHarness hub;
  FakeAgent future(hub.broker, "n3");
  for (int i = 0; i < 5; ++i) {
    future.send("hello", hello_speaking("n3", 9, 7));
    future.status({}, true);
  }
  EXPECT_FALSE(hub.store->get_node("n3")->has_value());
  EXPECT_EQ(future.resyncs, 1);
  EXPECT_EQ(hub.metrics.value("flotilla_hub_resyncs_suppressed_total"), 4u);
  hub.clock.advance(Millis(5000));
  future.heartbeat(0);
  future.status({}, true);
  EXPECT_EQ(future.resyncs, 2);
  // Once it says a hello the hub takes, it is known and hears nothing more of this.
  future.hello(0);
  future.status({}, true);
  EXPECT_TRUE(hub.store->get_node("n3")->has_value());
  EXPECT_EQ(future.resyncs, 2);
}

}  // namespace
}  // namespace flotilla::hub

namespace flotilla::hub {
namespace {

// Every (re)connect announces the hub on each shard's retained hub/online topic with a fresh
// epoch, so agents that connected before the hub know to say hello again.
TEST(SyncServerTest, AnnouncesAFreshEpochOnEveryShardAtEachConnect) {
  HubHarness hub;
  auto watcher = hub.broker.connect("watcher");
  std::vector<sync::Message> seen;
  watcher->set_handlers([&](sync::Message m) { seen.push_back(std::move(m)); }, [](bool) {});
  ASSERT_TRUE(watcher->start().ok());
  // Subscribing after the announcement still delivers it: it is retained.
  ASSERT_TRUE(watcher->subscribe("flotilla/v1/s/+/hub/online", 1).ok());
  ASSERT_EQ(seen.size(), sync::kDefaultShards);
  auto first = sync::decode<v1::HubOnline>(seen[0].payload);
  ASSERT_TRUE(first.ok());
  EXPECT_FALSE(first->epoch().empty());
  EXPECT_EQ(first->protocol_version(), sync::kProtocolVersion);

  seen.clear();
  hub.hub_transport->drop();
  hub.hub_transport->reconnect();
  ASSERT_EQ(seen.size(), sync::kDefaultShards);
  auto second = sync::decode<v1::HubOnline>(seen[0].payload);
  ASSERT_TRUE(second.ok());
  EXPECT_NE(second->epoch(), first->epoch());
}

}  // namespace
}  // namespace flotilla::hub
