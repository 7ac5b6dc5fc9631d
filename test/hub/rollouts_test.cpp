// OTA rollouts (UpdateRollouts) over the fake broker with fake agents and a fake clock: waves,
// soak, success only at COMMITTED, the failure threshold, abort, timeouts, idempotent verbs,
// stale reports and a hub restart.
#include <gtest/gtest.h>

#include <atomic>
#include <set>
#include <thread>

#include "cloud-hub/watch.hpp"
#include "cloud-hub/watch_feeder.hpp"
#include "test/hub/ota_harness.hpp"

namespace flotilla::hub::testing {
namespace {

using json = nlohmann::json;
using Code = RolloutOutcome::Code;

RolloutManifest rollout(const std::string& spec, const std::string& name = "fw-2") {
  auto all =
      parse_all_manifests("apiVersion: flotilla/v1\nkind: Rollout\nmetadata: {name: " + name +
                              "}\nspec:\n  artifact: {name: fw, version: '2.0'}\n" + spec,
                          "test.yaml");
  if (!all || all->rollouts.size() != 1) {
    ADD_FAILURE() << (all ? "not one rollout" : all.error().message());
    return {};
  }
  return all->rollouts.front();
}

std::string parse_error(const std::string& spec) {
  auto all = parse_all_manifests(
      "apiVersion: flotilla/v1\nkind: Rollout\nmetadata: {name: r}\nspec:\n" + spec, "r.yaml");
  return all ? "" : all.error().message();
}

class RolloutsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    artifact = ota.upload("fw", "2.0");
    // n1, n2 canary; n3..n6 main.
    for (int i = 1; i <= 6; ++i) {
      agents.push_back(std::make_unique<FakeAgent>(ota.hub.broker, "n" + std::to_string(i)));
      agents.back()->hello(0, {{"ring", i <= 2 ? "canary" : "main"}});
    }
  }
  FakeAgent& agent(int i) { return *agents[static_cast<size_t>(i - 1)]; }
  size_t assigned(int i) { return agent(i).assignments.size(); }
  json status(const std::string& name = "fw-2") {
    auto v = ota.rollouts->view(name);
    EXPECT_TRUE(v.has_value());
    return v ? (*v)["status"] : json();
  }
  json node_status(int i, const std::string& name = "fw-2") {
    const json st = status(name);
    for (const auto& n : st["nodes"]) {
      if (n["node"] == "n" + std::to_string(i)) return n;
    }
    return json();
  }
  void advance(int seconds) {
    ota.hub.clock.advance(std::chrono::seconds(seconds));
    ota.rollouts->tick();
  }
  std::vector<std::string> event_reasons() {
    EventFilter f;
    f.workload = "rollout/fw-2";
    auto v = ota.hub.controller->events_view(f);
    std::vector<std::string> out;
    if (v) {
      for (const auto& e : (*v)["items"]) out.push_back(e["reason"]);
    }
    return out;
  }

  OtaHarness ota;
  TestArtifact artifact;
  std::vector<std::unique_ptr<FakeAgent>> agents;
};

TEST_F(RolloutsTest, WavesOpenInOrderAfterSoakAndSucceedOnlyAtCommitted) {
  auto done = ota.rollouts->apply(
      rollout("  waves: [{count: 1}, {percent: 50}, {percent: 100}]\n  soakSeconds: 30\n"));
  ASSERT_EQ(done.code, Code::kCreated) << done.message;
  // Wave 1: the first node by name only.
  ASSERT_EQ(assigned(1), 1u);
  for (int i = 2; i <= 6; ++i) EXPECT_EQ(assigned(i), 0u) << "n" << i;
  const auto& a = agent(1).assignments.back();
  EXPECT_EQ(a.rollout(), "fw-2");
  EXPECT_EQ(a.manifest(), artifact.manifest);
  EXPECT_EQ(base64_encode(a.signature()), artifact.signature);
  EXPECT_EQ(a.payload_url(), "http://hub.test:8080/api/v1/artifacts/fw/2.0/payload");
  EXPECT_EQ(a.delta_url(), "");
  EXPECT_FALSE(a.abort());
  EXPECT_GT(a.generation(), 0u);

  // Downloading, then running the new version but not yet proved healthy: still in progress.
  agent(1).update_report(pb::UPDATE_DOWNLOADING);
  agent(1).update_report(pb::UPDATE_HEALTH_CHECK);
  advance(120);
  EXPECT_EQ(status()["counts"]["inProgress"], 1);
  EXPECT_EQ(status()["counts"]["succeeded"], 0);
  EXPECT_EQ(node_status(1)["phase"], "HealthCheck");
  EXPECT_EQ(assigned(2), 0u);

  agent(1).update_report(pb::UPDATE_COMMITTED);
  EXPECT_EQ(status()["counts"]["succeeded"], 1);
  EXPECT_EQ(status()["currentWave"], 1);  // soaking
  advance(29);
  EXPECT_EQ(assigned(2), 0u);
  advance(1);
  // Wave 2: 50% of 6 nodes in all, so n2 and n3.
  EXPECT_EQ(status()["currentWave"], 2);
  EXPECT_EQ(assigned(2), 1u);
  EXPECT_EQ(assigned(3), 1u);
  EXPECT_EQ(assigned(4), 0u);
  agent(2).update_report(pb::UPDATE_COMMITTED);
  agent(3).update_report(pb::UPDATE_COMMITTED);
  advance(30);
  for (int i = 4; i <= 6; ++i) {
    ASSERT_EQ(assigned(i), 1u) << "n" << i;
    agent(i).update_report(pb::UPDATE_COMMITTED);
  }
  EXPECT_EQ(status()["phase"], "Completed");
  EXPECT_EQ(status()["counts"]["succeeded"], 6);
  advance(1);  // writes the queued events
  auto reasons = event_reasons();
  EXPECT_NE(std::find(reasons.begin(), reasons.end(), "WaveSoaking"), reasons.end());
  EXPECT_NE(std::find(reasons.begin(), reasons.end(), "WaveStarted"), reasons.end());
  EXPECT_NE(std::find(reasons.begin(), reasons.end(), "RolloutCompleted"), reasons.end());
}

TEST_F(RolloutsTest, BadArtifactPausesAtTheFirstWaveAndNeverReachesTheRest) {
  auto done = ota.rollouts->apply(rollout(
      "  waves: [{count: 2}, {percent: 100}]\n  failureThreshold: {percent: 50, minCount: 2}\n"));
  ASSERT_EQ(done.code, Code::kCreated) << done.message;
  agent(1).update_report(pb::UPDATE_FAILED, "signature does not match the pinned key");
  EXPECT_EQ(status()["phase"], "Progressing");  // 1 failure < minCount 2
  agent(2).update_report(pb::UPDATE_HEALTH_CHECK);
  agent(2).update_report(pb::UPDATE_ROLLED_BACK, "health check failed");
  EXPECT_EQ(status()["phase"], "Paused");
  EXPECT_NE(status()["pausedReason"].get<std::string>().find("failure threshold reached: 2 of 2"),
            std::string::npos)
      << status()["pausedReason"];
  EXPECT_EQ(node_status(2)["result"], "failed");
  EXPECT_EQ(node_status(2)["message"], "health check failed");
  advance(3600);
  for (int i = 3; i <= 6; ++i) EXPECT_EQ(assigned(i), 0u) << "n" << i;
  auto reasons = event_reasons();
  EXPECT_NE(std::find(reasons.begin(), reasons.end(), "RolloutPaused"), reasons.end());
}

TEST_F(RolloutsTest, ThresholdBelowPercentKeepsGoing) {
  auto done = ota.rollouts->apply(
      rollout("  waves: [{percent: 50}, {percent: 100}]\n  failureThreshold: {percent: 50}\n"));
  ASSERT_EQ(done.code, Code::kCreated) << done.message;
  agent(1).update_report(pb::UPDATE_FAILED);  // 1 of 3 assigned: 33% < 50%
  agent(2).update_report(pb::UPDATE_COMMITTED);
  agent(3).update_report(pb::UPDATE_COMMITTED);
  EXPECT_EQ(status()["phase"], "Progressing");
  EXPECT_EQ(assigned(4), 1u);
}

TEST_F(RolloutsTest, AbortStopsNewAssignmentsAndSendsAbortToUnfinishedNodes) {
  auto done = ota.rollouts->apply(rollout("  waves: [{count: 2}, {percent: 100}]\n"));
  ASSERT_EQ(done.code, Code::kCreated) << done.message;
  agent(1).update_report(pb::UPDATE_COMMITTED);
  agent(2).update_report(pb::UPDATE_DOWNLOADING);
  const uint64_t gen = agent(2).assignments.back().generation();
  auto aborted = ota.rollouts->abort("fw-2");
  ASSERT_EQ(aborted.code, Code::kOk) << aborted.message;
  EXPECT_EQ(aborted.action, "aborted");
  EXPECT_EQ(status()["phase"], "Aborted");
  ASSERT_EQ(assigned(2), 2u);
  EXPECT_TRUE(agent(2).assignments.back().abort());
  EXPECT_GT(agent(2).assignments.back().generation(), gen);
  EXPECT_EQ(assigned(1), 1u);  // finished: left alone
  agent(2).update_report(pb::UPDATE_ABORTED);
  EXPECT_EQ(node_status(2)["result"], "aborted");
  advance(3600);
  for (int i = 3; i <= 6; ++i) EXPECT_EQ(assigned(i), 0u) << "n" << i;
  // Idempotent; resuming or pausing an aborted rollout is refused with a reason.
  EXPECT_EQ(ota.rollouts->abort("fw-2").action, "unchanged");
  auto resumed = ota.rollouts->resume("fw-2");
  EXPECT_EQ(resumed.code, Code::kConflict);
  EXPECT_NE(resumed.message.find("it is Aborted"), std::string::npos) << resumed.message;
  EXPECT_EQ(ota.rollouts->pause("fw-2").code, Code::kConflict);
}

TEST_F(RolloutsTest, AbortedNodeGetsTheAbortAgainAfterHello) {
  ASSERT_EQ(ota.rollouts->apply(rollout("  waves: [{count: 1}, {percent: 100}]\n")).code,
            Code::kCreated);
  ASSERT_EQ(ota.rollouts->abort("fw-2").code, Code::kOk);
  const auto last = agent(1).assignments.back();
  agent(1).hello(0, {{"ring", "canary"}});
  ASSERT_EQ(assigned(1), 3u);
  EXPECT_TRUE(agent(1).assignments.back().abort());
  EXPECT_EQ(agent(1).assignments.back().generation(), last.generation());
}

TEST_F(RolloutsTest, NodeThatNeverReportsFailsByTimeout) {
  auto done = ota.rollouts->apply(
      rollout("  waves: [{count: 1}, {percent: 100}]\n  progressTimeoutSeconds: 60\n"));
  ASSERT_EQ(done.code, Code::kCreated) << done.message;
  agent(1).update_report(pb::UPDATE_DOWNLOADING);  // progress is not a terminal state
  advance(59);
  EXPECT_EQ(status()["counts"]["inProgress"], 1);
  advance(1);
  EXPECT_EQ(node_status(1)["result"], "failed");
  EXPECT_NE(node_status(1)["message"].get<std::string>().find("progress timeout of 60s"),
            std::string::npos);
  EXPECT_EQ(status()["phase"], "Paused");
  EXPECT_EQ(assigned(2), 0u);
  // A late report after the timeout is recorded, but the outcome stays.
  agent(1).update_report(pb::UPDATE_COMMITTED);
  EXPECT_EQ(node_status(1)["phase"], "Committed");
  EXPECT_EQ(node_status(1)["result"], "failed");
}

TEST_F(RolloutsTest, ResumeAcceptsTheFailuresSoFarAndCountsOnlyNewOnes) {
  auto done = ota.rollouts->apply(rollout("  waves: [{count: 1}, {percent: 100}]\n"));
  ASSERT_EQ(done.code, Code::kCreated) << done.message;
  agent(1).update_report(pb::UPDATE_FAILED);
  ASSERT_EQ(status()["phase"], "Paused");
  auto resumed = ota.rollouts->resume("fw-2");
  ASSERT_EQ(resumed.code, Code::kOk) << resumed.message;
  EXPECT_EQ(resumed.action, "resumed");
  EXPECT_EQ(status()["phase"], "Progressing");
  EXPECT_EQ(status()["acceptedFailures"], 1);
  for (int i = 2; i <= 6; ++i) ASSERT_EQ(assigned(i), 1u) << "n" << i;
  agent(2).update_report(pb::UPDATE_COMMITTED);
  EXPECT_EQ(status()["phase"], "Progressing");
  agent(3).update_report(pb::UPDATE_ROLLED_BACK);  // a new failure: minCount 1 again
  EXPECT_EQ(status()["phase"], "Paused");
  EXPECT_NE(status()["pausedReason"].get<std::string>().find("1 of 5"), std::string::npos)
      << status()["pausedReason"];
}

TEST_F(RolloutsTest, NodesTimingOutWhilePausedAreAcceptedByTheResume) {
  ASSERT_EQ(ota.rollouts
                ->apply(rollout("  waves: [{count: 1}, {percent: 100}]\n"
                                "  progressTimeoutSeconds: 60\n"))
                .code,
            Code::kCreated);
  ASSERT_EQ(ota.rollouts->pause("fw-2").action, "paused");
  advance(61);
  EXPECT_EQ(node_status(1)["result"], "failed");
  ASSERT_EQ(ota.rollouts->resume("fw-2").action, "resumed");
  EXPECT_EQ(status()["phase"], "Progressing");
  EXPECT_EQ(status()["acceptedFailures"], 1);
  EXPECT_EQ(assigned(2), 1u);
}

TEST_F(RolloutsTest, PauseResumeAbortAreIdempotentUnderConcurrency) {
  ASSERT_EQ(ota.rollouts->apply(rollout("  waves: [{count: 1}, {percent: 100}]\n")).code,
            Code::kCreated);
  auto race = [&](const std::function<RolloutOutcome()>& verb, const std::string& did) {
    std::atomic<int> changed{0};
    std::atomic<int> ok{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 8; ++t) {
      threads.emplace_back([&] {
        auto r = verb();
        if (r.code == Code::kOk) ++ok;
        if (r.action == did) ++changed;
      });
    }
    for (auto& t : threads) t.join();
    EXPECT_EQ(ok.load(), 8) << did;
    EXPECT_EQ(changed.load(), 1) << did;
  };
  race([&] { return ota.rollouts->pause("fw-2"); }, "paused");
  EXPECT_EQ(status()["phase"], "Paused");
  EXPECT_EQ(status()["pausedReason"], "paused by the operator");
  advance(60);  // within the progress timeout
  EXPECT_EQ(assigned(1), 1u);
  EXPECT_EQ(assigned(2), 0u);
  race([&] { return ota.rollouts->resume("fw-2"); }, "resumed");
  EXPECT_EQ(status()["phase"], "Progressing");
  race([&] { return ota.rollouts->abort("fw-2"); }, "aborted");
  EXPECT_EQ(status()["phase"], "Aborted");
  advance(1);
  auto reasons = event_reasons();
  EXPECT_EQ(std::count(reasons.begin(), reasons.end(), "RolloutPaused"), 1);
  EXPECT_EQ(std::count(reasons.begin(), reasons.end(), "RolloutAborted"), 1);
  EXPECT_EQ(ota.rollouts->pause("nope").code, Code::kNotFound);
}

TEST_F(RolloutsTest, DuplicateOlderAndForeignReportsChangeNothing) {
  ASSERT_EQ(ota.rollouts->apply(rollout("  waves: [{count: 1}, {percent: 100}]\n")).code,
            Code::kCreated);
  const uint64_t gen = agent(1).assignments.back().generation();
  agent(1).update_report(pb::UPDATE_HEALTH_CHECK, "", 10);
  agent(1).update_report(pb::UPDATE_FAILED, "old news", 9);    // older seq
  agent(1).update_report(pb::UPDATE_FAILED, "dup", 10);        // same seq
  agent(1).update_report(pb::UPDATE_FAILED, "", 11, gen + 7);  // a generation never sent
  EXPECT_EQ(node_status(1)["phase"], "HealthCheck");
  EXPECT_EQ(status()["phase"], "Progressing");
  // Another rollout's name, and a node outside this one.
  pb::UpdateReport foreign;
  foreign.set_node("n1");
  foreign.set_rollout("other");
  foreign.set_generation(gen);
  foreign.set_phase(pb::UPDATE_FAILED);
  foreign.set_seq(50);
  agent(1).send("ota", foreign);
  EXPECT_EQ(status()["counts"]["failed"], 0);
  agent(1).update_report(pb::UPDATE_COMMITTED, "", 12);
  agent(1).update_report(pb::UPDATE_COMMITTED, "", 12);
  EXPECT_EQ(status()["counts"]["succeeded"], 1);
}

TEST_F(RolloutsTest, HelloSendsTheSameUnfinishedAssignmentAgain) {
  ASSERT_EQ(ota.rollouts->apply(rollout("  waves: [{count: 1}, {percent: 100}]\n")).code,
            Code::kCreated);
  ASSERT_EQ(assigned(1), 1u);
  const uint64_t gen = agent(1).assignments.back().generation();
  agent(1).hello(0, {{"ring", "canary"}});
  ASSERT_EQ(assigned(1), 2u);
  EXPECT_EQ(agent(1).assignments.back().generation(), gen);
  EXPECT_FALSE(agent(1).assignments.back().abort());
  agent(1).update_report(pb::UPDATE_COMMITTED);
  agent(1).hello(0, {{"ring", "canary"}});
  EXPECT_EQ(assigned(1), 2u);  // finished: nothing more
}

TEST_F(RolloutsTest, HubRestartKeepsTheRolloutState) {
  ASSERT_EQ(ota.rollouts
                ->apply(rollout("  selector: {matchLabels: {ring: canary}}\n"
                                "  waves: [{count: 1}, {percent: 100}]\n  soakSeconds: 60\n"))
                .code,
            Code::kCreated);
  EXPECT_EQ(status()["counts"]["nodes"], 2);  // the canary ring only
  agent(1).update_report(pb::UPDATE_COMMITTED, "", 5);
  const uint64_t gen1 = agent(1).assignments.back().generation();
  ota.reopen();
  EXPECT_EQ(status()["phase"], "Progressing");
  EXPECT_EQ(status()["counts"]["succeeded"], 1);
  EXPECT_EQ(node_status(1)["result"], "succeeded");
  // The soak started before the restart goes on from where it was.
  advance(59);
  EXPECT_EQ(assigned(2), 0u);
  advance(1);
  ASSERT_EQ(assigned(2), 1u);
  // A stale report replayed after the restart is still ignored.
  agent(1).update_report(pb::UPDATE_FAILED, "", 5, gen1);
  EXPECT_EQ(node_status(1)["result"], "succeeded");
  agent(2).update_report(pb::UPDATE_COMMITTED);
  EXPECT_EQ(status()["phase"], "Completed");
  // Generations are never handed out twice, across rollouts and restarts.
  ASSERT_EQ(ota.rollouts->remove("fw-2").code, Code::kOk);
  ota.reopen();
  ASSERT_EQ(ota.rollouts->apply(rollout("  selector: {matchLabels: {ring: canary}}\n")).code,
            Code::kCreated);
  EXPECT_GT(agent(1).assignments.back().generation(), gen1);
}

// Several hub instances: one drives the rollouts (the holder of shard 0's lease). Not driving,
// an instance ignores the fleet and refuses changes; taking over, it loads the rollouts and
// asks every node with an unfinished assignment where it stands; a fenced save changes nothing.
TEST_F(RolloutsTest, OnlyTheDriverActsAndTakingOverAsksTheUnfinishedNodesAgain) {
  ASSERT_EQ(ota.rollouts->apply(rollout("  selector: {matchLabels: {ring: canary}}\n")).code,
            Code::kCreated);
  ASSERT_EQ(assigned(1), 1u);
  ASSERT_EQ(assigned(2), 1u);
  const uint64_t gen2 = agent(2).assignments.back().generation();
  agent(1).update_report(pb::UPDATE_COMMITTED);

  ota.rollouts->set_driving(false);
  EXPECT_FALSE(ota.rollouts->driving());
  EXPECT_FALSE(ota.rollouts->view("fw-2").has_value());
  EXPECT_EQ(ota.rollouts->pause("fw-2").code, Code::kFailed);
  EXPECT_EQ(ota.rollouts->apply(rollout("  selector: {matchLabels: {ring: main}}\n", "r2")).code,
            Code::kFailed);
  agent(2).update_report(pb::UPDATE_COMMITTED);  // the driver is gone: nobody hears it
  agent(2).hello(0, {{"ring", "canary"}});
  advance(700);  // past the progress timeout (600 s): nothing times out where nothing drives
  EXPECT_EQ(assigned(2), 1u);

  ota.rollouts->set_driving(true);
  ASSERT_TRUE(ota.rollouts->view("fw-2").has_value());
  EXPECT_EQ(status()["counts"]["succeeded"], 1);
  EXPECT_EQ(node_status(2)["result"], "");
  EXPECT_EQ(assigned(1), 1u);  // finished: not asked
  ASSERT_EQ(assigned(2), 2u);  // the same assignment again
  EXPECT_EQ(agent(2).assignments.back().generation(), gen2);

  // A driver whose lease moved on: its save is refused and memory goes back to the database.
  bool fenced = true;
  ota.rollouts->set_driving(true, [&fenced](db::Conn&) -> Status {
    if (fenced) return Error("lease lost");
    return Ok();
  });
  agent(2).update_report(pb::UPDATE_COMMITTED);
  EXPECT_EQ(node_status(2)["result"], "");
  EXPECT_EQ(status()["phase"], "Progressing");
  fenced = false;
  agent(2).update_report(pb::UPDATE_COMMITTED);
  EXPECT_EQ(node_status(2)["result"], "succeeded");
  EXPECT_EQ(status()["phase"], "Completed");
  ota.reopen();  // what it saved is what the next driver loads
  EXPECT_EQ(status()["phase"], "Completed");
}

TEST_F(RolloutsTest, ApplyValidatesAndIsIdempotent) {
  auto unknown = ota.rollouts->apply(rollout("", "r1"));
  ASSERT_EQ(unknown.code, Code::kCreated) << unknown.message;  // fw 2.0 exists
  RolloutManifest missing = rollout("", "r2");
  missing.artifact_version = "9.9";
  auto r = ota.rollouts->apply(missing);
  EXPECT_EQ(r.code, Code::kInvalid);
  EXPECT_EQ(r.message,
            "Failed to create rollout 'r2': artifact 'fw' version '9.9' not found (upload it "
            "first)");
  TestArtifact bare = make_artifact(ota.key, "fw", "3.0", "x");
  ASSERT_EQ(ota.artifacts->put_manifest("fw", "3.0", bare.manifest, bare.signature).code,
            ArtifactOutcome::Code::kCreated);
  RolloutManifest not_ready = rollout("", "r3");
  not_ready.artifact_version = "3.0";
  r = ota.rollouts->apply(not_ready);
  EXPECT_EQ(r.code, Code::kInvalid);
  EXPECT_NE(r.message.find("is not ready: its payload is not uploaded"), std::string::npos);
  r = ota.rollouts->apply(rollout("  selector: {matchLabels: {ring: nowhere}}\n", "r4"));
  EXPECT_EQ(r.code, Code::kInvalid);
  EXPECT_NE(r.message.find("matches no registered node"), std::string::npos);
  // The same spec again changes nothing; another spec under the name is refused.
  r = ota.rollouts->apply(rollout("", "r1"));
  EXPECT_EQ(r.code, Code::kOk);
  EXPECT_EQ(r.action, "unchanged");
  EXPECT_EQ(ota.rollouts->apply(rollout("  soakSeconds: 5\n", "r1")).code, Code::kConflict);
  // r1 holds every node while unfinished.
  r = ota.rollouts->apply(rollout("", "r5"));
  EXPECT_EQ(r.code, Code::kConflict);
  EXPECT_NE(r.message.find("is in unfinished rollout 'r1'"), std::string::npos) << r.message;
  EXPECT_EQ(ota.rollouts->list_view()["items"].size(), 1u);
}

TEST_F(RolloutsTest, DeletingAnUnfinishedRolloutAbortsIt) {
  ASSERT_EQ(ota.rollouts->apply(rollout("  waves: [{count: 1}, {percent: 100}]\n")).code,
            Code::kCreated);
  auto blocked = ota.rollouts->delete_artifact("fw", "2.0");
  EXPECT_EQ(blocked.code, ArtifactOutcome::Code::kConflict);
  EXPECT_NE(blocked.message.find("unfinished rollout 'fw-2'"), std::string::npos);
  ASSERT_EQ(ota.rollouts->remove("fw-2").code, Code::kOk);
  ASSERT_EQ(assigned(1), 2u);
  EXPECT_TRUE(agent(1).assignments.back().abort());
  EXPECT_FALSE(ota.rollouts->view("fw-2").has_value());
  EXPECT_EQ(ota.rollouts->remove("fw-2").code, Code::kNotFound);
  EXPECT_EQ(ota.rollouts->delete_artifact("fw", "2.0").code, ArtifactOutcome::Code::kOk);
}

TEST_F(RolloutsTest, WatchersSeeRolloutChangesAsSummariesButNotIdleTicks) {
  WatchLog log;
  WatchFeeder feeder(log, *ota.hub.controller, ota.hub.metrics);
  feeder.set_rollouts(ota.rollouts.get());
  ota.rollouts->set_change_listener(feeder.listener());
  WatchFilter filter;
  filter.kind = Change::Kind::kRollout;
  uint64_t seen = log.version();
  // The rollout events after `seen`, as "TYPE name phase".
  auto events = [&] {
    feeder.settle();
    std::vector<std::string> out;
    WatchBatch b = log.wait(filter, seen, Millis(0));
    for (const auto& d : b.events) {
      json j = json::parse(*d.event->object);
      EXPECT_FALSE(j["status"].contains("nodes")) << "watch events carry summaries";
      out.push_back(std::string(watch_type_name(d.type)) + " " + d.event->name + " " +
                    j["status"].value("phase", ""));
    }
    seen = b.cursor;
    return out;
  };
  ASSERT_EQ(ota.rollouts->apply(rollout("  selector: {matchLabels: {ring: canary}}\n")).code,
            Code::kCreated);
  EXPECT_EQ(events(), std::vector<std::string>{"ADDED fw-2 Progressing"});
  advance(1);
  advance(1);
  EXPECT_EQ(events(), std::vector<std::string>{}) << "a tick that changes nothing is not news";
  ASSERT_EQ(ota.rollouts->pause("fw-2").action, "paused");
  EXPECT_EQ(events(), std::vector<std::string>{"MODIFIED fw-2 Paused"});
  ASSERT_EQ(ota.rollouts->resume("fw-2").action, "resumed");
  agent(1).update_report(pb::UPDATE_DOWNLOADING);
  std::vector<std::string> got = events();
  ASSERT_FALSE(got.empty());
  EXPECT_EQ(got.back(), "MODIFIED fw-2 Progressing");
  ASSERT_EQ(ota.rollouts->remove("fw-2").action, "deleted");
  got = events();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].rfind("DELETED fw-2 ", 0), 0u) << got[0];
}

// Reports arrive on the shards' ingest threads while the timer ticks and an operator pauses and
// resumes: every report counts once and the rollout ends Completed.
TEST(RolloutsIngestTest, ReportsOnIngestThreadsWhileTickingAndPausing) {
  OtaHarness ota("", /*ingest_thread=*/true);
  ota.upload("fw", "2.0");
  std::vector<std::unique_ptr<FakeAgent>> agents;
  for (int i = 0; i < 40; ++i) {
    agents.push_back(std::make_unique<FakeAgent>(ota.hub.broker, "node-" + std::to_string(i)));
    agents.back()->hello(0);
  }
  ota.hub.sync_server->wait_idle();
  ASSERT_EQ(ota.rollouts->apply(rollout("  waves: [{percent: 25}, {percent: 100}]\n")).code,
            Code::kCreated);
  std::atomic<bool> stop{false};
  std::thread timer([&] {
    while (!stop) ota.rollouts->tick();
  });
  std::thread operator_([&] {
    for (int i = 0; i < 50; ++i) {
      (void)ota.rollouts->pause("fw-2");
      (void)ota.rollouts->resume("fw-2");
    }
  });
  // Each node commits once it is assigned; wave 2 opens as wave 1 finishes. What a node was
  // assigned is read from the hub's view: the agents' own lists are written by hub threads.
  std::set<std::string> reported;
  for (int round = 0; round < 2000 && reported.size() < agents.size(); ++round) {
    ota.hub.sync_server->wait_idle();
    auto v = ota.rollouts->view("fw-2");
    ASSERT_TRUE(v);
    for (const auto& n : (*v)["status"]["nodes"]) {
      const std::string node = n["node"];
      if (n["generation"] == 0 || reported.count(node) > 0) continue;
      pb::UpdateReport r;
      r.set_node(node);
      r.set_rollout("fw-2");
      r.set_generation(n["generation"].get<uint64_t>());
      r.set_phase(pb::UPDATE_COMMITTED);
      r.set_seq(1);
      agents[std::stoul(node.substr(5))]->send("ota", r);
      reported.insert(node);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  operator_.join();
  (void)ota.rollouts->resume("fw-2");
  ota.hub.sync_server->wait_idle();
  ota.rollouts->tick();
  stop = true;
  timer.join();
  auto v = ota.rollouts->view("fw-2");
  ASSERT_TRUE(v);
  EXPECT_EQ((*v)["status"]["counts"]["succeeded"], 40);
  EXPECT_EQ((*v)["status"]["phase"], "Completed");
}

TEST(RolloutManifestTest, ValidatesWithClearErrors) {
  EXPECT_EQ(parse_error("  artifact: {name: fw, version: '1'}\n  waves: [{percent: 101}]\n"),
            "r.yaml:6: spec.waves[0].percent: want a whole number from 1 to 100, got 101");
  EXPECT_EQ(
      parse_error("  artifact: {name: fw, version: '1'}\n  waves: [{count: 1, percent: 5}]\n"),
      "r.yaml:6: spec.waves[0]: want exactly one of count (nodes) or percent (of the selected "
      "nodes)");
  EXPECT_EQ(parse_error("  artifact: {name: fw, version: '1'}\n  waves: [{percent: 50}, "
                        "{percent: 20}]\n"),
            "r.yaml:6: spec.waves[1].percent: waves are cumulative: 20 is below the earlier "
            "wave's 50");
  EXPECT_EQ(parse_error("  artifact: {name: fw, version: '1'}\n  waves: []\n"),
            "r.yaml:6: spec.waves: must hold at least one wave");
  EXPECT_EQ(parse_error("  waves: [{count: 1}]\n"),
            "r.yaml:4: spec.artifact: required ({name: NAME, version: VERSION})");
  EXPECT_EQ(parse_error("  artifact: {name: fw, version: '1'}\n  failureThreshold: {percent: "
                        "-1}\n"),
            "r.yaml:6: spec.failureThreshold.percent: want a whole number from 0 to 100, got -1");
  auto ok = parse_all_manifests(
      "apiVersion: flotilla/v1\nkind: Rollout\nmetadata: {name: r}\nspec:\n"
      "  artifact: {name: fw, version: 2.0}\n",
      "r.yaml");
  ASSERT_TRUE(ok) << ok.error().message();
  EXPECT_EQ(ok->rollouts.front().artifact_version, "2.0");
  EXPECT_EQ(ok->rollouts.front().waves, (std::vector<RolloutWave>{RolloutWave{0, 100}}));
  EXPECT_EQ(ok->rollouts.front().failure_min_count, 1);
}

}  // namespace
}  // namespace flotilla::hub::testing
