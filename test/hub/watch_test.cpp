// WatchLog: ordering, the ring's bounds (410), selectors, wake-ups and concurrent watchers; and
// WatchFeeder over a real Controller.
#include "cloud-hub/watch.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "cloud-hub/watch_feeder.hpp"
#include "test/hub/fake_agent.hpp"

namespace flotilla::hub {
namespace {

using json = nlohmann::json;
using Kind = Change::Kind;
using Result = WatchBatch::Result;

json node(const std::string& name, Labels labels = {}, const std::string& state = "Ready") {
  return {{"name", name}, {"labels", labels}, {"state", state}};
}

WatchLog::Update put(const std::string& name, Labels labels = {},
                     const std::string& state = "Ready") {
  return {Kind::kNode, name, node(name, std::move(labels), state)};
}

WatchLog::Update gone(const std::string& name) { return {Kind::kNode, name, std::nullopt}; }

WatchFilter nodes(Labels selector = {}) {
  WatchFilter f;
  f.kind = Kind::kNode;
  f.selector = std::move(selector);
  return f;
}

// "ADDED n1" ... for the batch's events.
std::vector<std::string> seen(const WatchBatch& b) {
  std::vector<std::string> out;
  for (const auto& d : b.events)
    out.push_back(std::string(watch_type_name(d.type)) + " " + d.event->name);
  return out;
}

constexpr Millis kNow{0};
constexpr Millis kLong{10000};  // an upper bound: a correct log answers long before

TEST(WatchLogTest, ChangesComeInOrderWithTheirViewsAndTypes) {
  WatchLog log(WatchLogOptions{.first_version = 100});
  EXPECT_EQ(log.version(), 100u);
  EXPECT_EQ(log.record({put("n1"), put("n2")}), 102u);
  EXPECT_EQ(log.record({put("n1", {}, "NotReady")}), 103u);
  EXPECT_EQ(log.record({gone("n2")}), 104u);

  WatchBatch b = log.wait(nodes(), 100, kNow);
  ASSERT_EQ(b.result, Result::kEvents);
  EXPECT_EQ(seen(b),
            (std::vector<std::string>{"ADDED n1", "ADDED n2", "MODIFIED n1", "DELETED n2"}));
  EXPECT_EQ(b.cursor, 104u);
  EXPECT_EQ(b.events[0].event->version, 101u);
  EXPECT_EQ(json::parse(*b.events[0].event->object)["state"], "Ready");
  EXPECT_EQ(json::parse(*b.events[2].event->object)["state"], "NotReady");
  // A DELETED record carries the last view seen of the object.
  EXPECT_EQ(json::parse(*b.events[3].event->object), node("n2"));

  // From the middle: only what came after.
  EXPECT_EQ(seen(log.wait(nodes(), 102, kNow)),
            (std::vector<std::string>{"MODIFIED n1", "DELETED n2"}));
  // Nothing newer: a timeout, the cursor unchanged.
  b = log.wait(nodes(), 104, kNow);
  EXPECT_EQ(b.result, Result::kTimeout);
  EXPECT_EQ(b.cursor, 104u);
  // Gone then back: ADDED again.
  log.record({put("n2")});
  EXPECT_EQ(seen(log.wait(nodes(), 104, kNow)), std::vector<std::string>{"ADDED n2"});
}

TEST(WatchLogTest, SeededObjectsAreModifiedAndTheirDeleteCarriesTheirView) {
  WatchLog log;
  log.seed(Kind::kNode, "old", node("old", {{"site", "lab"}}));
  log.seed(Kind::kNode, "old", node("old", {{"site", "ignored"}}));  // known: kept as it was
  log.record({put("old", {{"site", "lab"}}, "NotReady"), gone("old")});
  WatchBatch b = log.wait(nodes({{"site", "lab"}}), 0, kNow);
  EXPECT_EQ(seen(b), (std::vector<std::string>{"MODIFIED old", "DELETED old"}));
  // A delete of an object never seen: a bare view, sent to every watcher of the kind.
  log.record({gone("stranger")});
  b = log.wait(nodes({{"site", "lab"}}), 2, kNow);
  ASSERT_EQ(seen(b), std::vector<std::string>{"DELETED stranger"});
  EXPECT_EQ(json::parse(*b.events[0].event->object), json({{"name", "stranger"}}));
}

TEST(WatchLogTest, KindsAndNamesAreFiltered) {
  WatchLog log;
  json w = {{"metadata", {{"name", "web"}, {"labels", {{"tier", "gold"}}}}}};
  log.record({put("n1"), {Kind::kWorkload, "web", w}, put("n2")});
  WatchFilter workloads;
  workloads.kind = Kind::kWorkload;
  EXPECT_EQ(seen(log.wait(workloads, 0, kNow)), std::vector<std::string>{"ADDED web"});
  workloads.selector = {{"tier", "gold"}};  // a workload's metadata.labels
  EXPECT_EQ(seen(log.wait(workloads, 0, kNow)), std::vector<std::string>{"ADDED web"});
  WatchFilter one = nodes();
  one.name = "n2";
  WatchBatch b = log.wait(one, 0, kNow);
  EXPECT_EQ(seen(b), std::vector<std::string>{"ADDED n2"});
  EXPECT_EQ(b.cursor, 3u);
}

TEST(WatchLogTest, SelectorsSeeObjectsComeAndGoAsTheirLabelsChange) {
  WatchLog log;
  log.record({put("n1", {{"site", "lab"}}), put("n2", {{"site", "field"}})});
  log.record({put("n1", {{"site", "lab"}}, "NotReady")});  // still matches
  log.record({put("n2", {{"site", "lab"}})});              // comes to match
  log.record({put("n1", {{"site", "field"}})});            // stops matching
  log.record({put("n1", {{"site", "field"}}, "Ready")});   // never of interest
  WatchBatch b = log.wait(nodes({{"site", "lab"}}), 0, kNow);
  EXPECT_EQ(seen(b),
            (std::vector<std::string>{"ADDED n1", "MODIFIED n1", "ADDED n2", "DELETED n1"}));
  // The skipped change still moves the cursor, so the watcher does not fall behind the ring.
  EXPECT_EQ(b.cursor, 6u);
  b = log.wait(nodes({{"site", "lab"}}), 5, kNow);
  EXPECT_EQ(b.result, Result::kTimeout);
  EXPECT_EQ(b.cursor, 6u);
}

TEST(WatchLogTest, TheRingKeepsTheLastRecordsAndTooOldIsGone) {
  WatchLog log(WatchLogOptions{.max_records = 3, .first_version = 10});
  for (int i = 1; i <= 5; ++i) log.record({put("n" + std::to_string(i))});
  EXPECT_EQ(log.size(), 3u);
  EXPECT_EQ(log.version(), 15u);
  EXPECT_EQ(log.oldest(), 12u);
  EXPECT_EQ(log.wait(nodes(), 11, kNow).result, Result::kGone);
  EXPECT_EQ(log.wait(nodes(), 10, kLong).result, Result::kGone);  // at once, not after kLong
  EXPECT_EQ(seen(log.wait(nodes(), 12, kNow)),
            (std::vector<std::string>{"ADDED n3", "ADDED n4", "ADDED n5"}));
  // A version from the future (an earlier hub process's) is gone too.
  EXPECT_EQ(log.wait(nodes(), 16, kNow).result, Result::kGone);
}

// After a gap in what the log was told (lose_history), every watcher lists again: one that had
// seen the last version as well, and one waiting at it is woken to be told so. Later changes
// are recorded after the new version as usual.
TEST(WatchLogTest, LosingHistoryTellsEveryWatcherToListAgain) {
  WatchLog log(WatchLogOptions{.first_version = 10});
  log.record({put("a"), put("b")});
  ASSERT_EQ(log.version(), 12u);
  WatchBatch waiting;
  std::thread watcher([&] { waiting = log.wait(nodes(), 12, kLong); });
  std::this_thread::sleep_for(Millis(50));
  log.lose_history();
  watcher.join();
  EXPECT_EQ(waiting.result, Result::kGone);
  EXPECT_EQ(log.version(), 13u);
  EXPECT_EQ(log.size(), 0u);
  EXPECT_EQ(log.wait(nodes(), 11, kNow).result, Result::kGone);
  EXPECT_EQ(log.wait(nodes(), 12, kNow).result, Result::kGone);
  // A watcher that listed after the gap (version 13) goes on.
  EXPECT_EQ(log.wait(nodes(), 13, kNow).result, Result::kTimeout);
  log.record({put("c")});
  EXPECT_EQ(seen(log.wait(nodes(), 13, kNow)), std::vector<std::string>{"ADDED c"});
}

TEST(WatchLogTest, TheRingIsBoundedInBytes) {
  WatchLog log(WatchLogOptions{.max_bytes = 1000});
  const std::string big(300, 'x');
  for (int i = 0; i < 10; ++i) log.record({put("n" + std::to_string(i), {{"pad", "p"}}, big)});
  EXPECT_LE(log.size(), 3u);
  EXPECT_GE(log.size(), 2u);
  EXPECT_EQ(log.wait(nodes(), 0, kNow).result, Result::kGone);
  // One record larger than the budget is still kept: the latest change is never lost.
  log.record({put("huge", {}, std::string(5000, 'y'))});
  EXPECT_EQ(log.size(), 1u);
  EXPECT_EQ(seen(log.wait(nodes(), 10, kNow)), std::vector<std::string>{"ADDED huge"});
}

TEST(WatchLogTest, BatchesAreBoundedAndResumeWhereTheyStopped) {
  WatchLog log(WatchLogOptions{.max_batch = 2});
  log.record({put("a"), put("b"), put("c")});
  WatchBatch b = log.wait(nodes(), 0, kNow);
  EXPECT_EQ(seen(b), (std::vector<std::string>{"ADDED a", "ADDED b"}));
  EXPECT_EQ(b.cursor, 2u);
  EXPECT_EQ(seen(log.wait(nodes(), b.cursor, kNow)), std::vector<std::string>{"ADDED c"});
}

TEST(WatchLogTest, AWaitingWatcherWakesOnARecordAndOnClose) {
  WatchLog log;
  WatchBatch got;
  std::thread watcher([&] { got = log.wait(nodes({{"site", "lab"}}), 0, kLong); });
  // A change the watcher does not want must not end its wait; the one it wants must.
  log.record({put("other", {{"site", "field"}})});
  log.record({put("mine", {{"site", "lab"}})});
  watcher.join();
  EXPECT_EQ(got.result, Result::kEvents);
  EXPECT_EQ(seen(got), std::vector<std::string>{"ADDED mine"});

  std::thread closing([&] { got = log.wait(nodes(), log.version(), kLong); });
  log.close();
  closing.join();
  EXPECT_EQ(got.result, Result::kClosed);
  EXPECT_EQ(log.wait(nodes(), 0, kLong).result, Result::kClosed);  // and at once from now on
}

TEST(WatchLogTest, ManyWatchersEachSeeEveryChangeInOrder) {
  WatchLog log(WatchLogOptions{.max_records = 100000});
  constexpr int kWatchers = 16;
  constexpr int kWriters = 4;
  constexpr int kChanges = 500;  // per writer
  std::vector<std::vector<uint64_t>> versions(kWatchers);
  std::vector<std::vector<std::string>> names(kWatchers);
  std::vector<std::thread> threads;
  for (int w = 0; w < kWatchers; ++w) {
    threads.emplace_back([&, w] {
      uint64_t cursor = 0;
      while (versions[w].size() < kWriters * kChanges) {
        WatchBatch b = log.wait(nodes(), cursor, kLong);
        if (b.result != Result::kEvents) {
          ADD_FAILURE() << "watcher " << w << " got " << static_cast<int>(b.result);
          return;
        }
        for (const auto& d : b.events) {
          versions[w].push_back(d.event->version);
          names[w].push_back(d.event->name);
        }
        cursor = b.cursor;
      }
    });
  }
  std::vector<std::thread> writers;
  for (int t = 0; t < kWriters; ++t) {
    writers.emplace_back([&, t] {
      for (int i = 0; i < kChanges; ++i)
        log.record({put("w" + std::to_string(t), {}, std::to_string(i))});
    });
  }
  for (auto& t : writers) t.join();
  for (auto& t : threads) t.join();
  for (int w = 0; w < kWatchers; ++w) {
    ASSERT_EQ(versions[w].size(), static_cast<size_t>(kWriters * kChanges)) << w;
    for (size_t i = 0; i < versions[w].size(); ++i) ASSERT_EQ(versions[w][i], i + 1) << w;
    EXPECT_EQ(names[w], names[0]);
  }
}

// WatchFeeder over a real Controller.

TEST(WatchFeederTest, RecordsTheControllersChangesWithTheirViews) {
  testing::HubHarness h;
  WatchLog log;
  WatchFeeder feeder(log, *h.controller, h.metrics);
  h.controller->set_change_listener(feeder.listener());
  testing::FakeAgent agent(h.broker, "n1");
  agent.hello(0, {{"site", "lab"}});
  feeder.settle();
  h.apply(testing::process_workload("web", "replicas: 1"));
  feeder.settle();

  WatchBatch b = log.wait(nodes(), 0, kNow);
  ASSERT_EQ(b.result, Result::kEvents);
  EXPECT_EQ(b.events.front().type, WatchType::kAdded);
  json n = json::parse(*b.events.back().event->object);
  EXPECT_EQ(n["name"], "n1");
  EXPECT_EQ(n["workloads"], json::array({"web"}));  // the view after the apply placed web
  WatchFilter workloads;
  workloads.kind = Kind::kWorkload;
  b = log.wait(workloads, 0, kNow);
  ASSERT_EQ(b.result, Result::kEvents);
  EXPECT_EQ(seen(b).front(), "ADDED web");
  // A workload's event counts its nodes and instances instead of listing them: its size does not
  // grow with the fleet (GET of the workload lists them).
  json w = json::parse(*b.events.back().event->object);
  EXPECT_EQ(w["status"]["placedNodes"], 1);
  EXPECT_EQ(w["status"]["desiredInstances"], 1);
  EXPECT_FALSE(w["status"].contains("nodes"));
  EXPECT_FALSE(w["status"].contains("instances"));

  const uint64_t before = log.version();
  ASSERT_TRUE(h.controller->delete_workload("web").ok());
  feeder.settle();
  b = log.wait(workloads, before, kNow);
  ASSERT_EQ(b.result, Result::kEvents);
  EXPECT_EQ(seen(b).back(), "DELETED web");
  EXPECT_EQ(json::parse(*b.events.back().event->object)["metadata"]["name"], "web");
  EXPECT_EQ(h.metrics.value("flotilla_hub_watch_view_errors_total"), 0u);
}

TEST(WatchFeederTest, ABurstOfChangesToOneObjectCostsOneView) {
  testing::HubHarness h;
  WatchLog log;
  WatchFeederOptions slow;
  slow.min_interval = std::chrono::hours(1);
  WatchFeeder feeder(log, *h.controller, h.metrics, slow);
  h.controller->set_change_listener(feeder.listener());
  testing::FakeAgent agent(h.broker, "n1");
  agent.hello(0);  // after an idle spell a round starts at once
  feeder.settle();
  EXPECT_EQ(log.version(), 1u);
  for (int i = 0; i < 10; ++i) agent.hello(0, {{"round", std::to_string(i)}});
  EXPECT_EQ(log.version(), 1u);  // the next round is an hour away
  feeder.stop();                 // records what was noted
  EXPECT_EQ(log.version(), 2u);
  WatchBatch b = log.wait(nodes(), 1, kNow);
  ASSERT_EQ(seen(b), std::vector<std::string>{"MODIFIED n1"});
  EXPECT_EQ(json::parse(*b.events[0].event->object)["labels"]["round"], "9");
}

TEST(WatchFeederTest, ARoundThatWaitedForALockDoesNotHoldTheNextOneBack) {
  // At 100k nodes a round mostly waits for shard locks that ingest holds; pausing 1/max_duty
  // times its wall time afterwards held fresh changes back for minutes. The pause follows the
  // CPU the round used.
  testing::HubHarness h;
  testing::FakeAgent agent(h.broker, "n1");
  agent.hello(0);
  WatchLog log;
  WatchFeeder feeder(log, *h.controller, h.metrics);  // max_duty 0.25
  ChangeListener noted = feeder.listener();

  constexpr auto kHeld = std::chrono::milliseconds(400);
  std::atomic<bool> holding = false;
  std::thread ingest([&] {
    h.controller->batch(0, [&] {
      holding = true;
      std::this_thread::sleep_for(kHeld);
    });
  });
  while (!holding) std::this_thread::yield();
  const auto began = std::chrono::steady_clock::now();
  noted({{Kind::kNode, "n1"}});
  feeder.settle();  // the round read n1's view once the lock was free
  const auto round = std::chrono::steady_clock::now() - began;
  ingest.join();
  ASSERT_GE(round, kHeld / 2);  // the round did wait for the lock

  const auto noted_at = std::chrono::steady_clock::now();
  noted({{Kind::kNode, "n1"}});
  feeder.settle();
  const auto lag = std::chrono::steady_clock::now() - noted_at;
  // By wall time the next round would start 4 x 400 ms after the last began (1.2 s from here).
  EXPECT_LT(lag, kHeld * 3 / 2) << std::chrono::duration_cast<Millis>(lag).count() << " ms";
  EXPECT_EQ(log.version(), 2u);
}

TEST(WatchFeederTest, AListenerOutlivingItsFeederDoesNothing) {
  testing::HubHarness h;
  WatchLog log;
  ChangeListener listener;
  {
    WatchFeeder feeder(log, *h.controller, h.metrics);
    listener = feeder.listener();
  }
  listener({{Kind::kNode, "n1"}});
  EXPECT_EQ(log.version(), 0u);
}

TEST(WatchFeederTest, SeedRemembersWhatExists) {
  testing::HubHarness h;
  testing::FakeAgent agent(h.broker, "n1");
  agent.hello(0);
  h.apply(testing::process_workload("web", "replicas: 1"));
  WatchLog log;
  ASSERT_TRUE(seed_watch_log(log, *h.controller).ok());
  WatchFeeder feeder(log, *h.controller, h.metrics);
  h.controller->set_change_listener(feeder.listener());
  agent.hello(0, {{"site", "lab"}});
  feeder.settle();
  WatchBatch b = log.wait(nodes(), 0, kNow);
  ASSERT_EQ(b.result, Result::kEvents);
  EXPECT_EQ(seen(b).front(), "MODIFIED n1");
}

// Device twins: each change of a twin is one event carrying the versions after it.

WatchFilter devices(const std::string& node = "") {
  WatchFilter f;
  f.kind = Kind::kDevice;
  f.node = node;
  return f;
}

// The one event a change produced after `after`, as the watcher sees it.
json only_event(WatchLog& log, const WatchFilter& filter, uint64_t after, const std::string& want) {
  WatchBatch b = log.wait(filter, after, kNow);
  if (seen(b) != std::vector<std::string>{want}) {
    ADD_FAILURE() << "want exactly '" << want << "', got " << ::testing::PrintToString(seen(b));
    return json();
  }
  return json::parse(*b.events[0].event->object);
}

TEST(WatchFeederTest, EachTwinChangeIsOneEventWithItsVersionsAndResumingReplaysThem) {
  testing::HubHarness h;
  WatchLog log;
  WatchFeeder feeder(log, *h.controller, h.metrics);
  h.controller->set_change_listener(feeder.listener());
  testing::FakeAgent agent(h.broker, "n1");
  agent.hello(0);
  feeder.settle();
  const uint64_t start = log.version();
  ASSERT_TRUE(h.controller->put_device("dev-1", {{"node", "n1"}, {"desired", {{"rate", 5}}}}));
  feeder.settle();
  json d = only_event(log, devices(), start, "ADDED dev-1");
  EXPECT_EQ(d["desiredVersion"], 1);
  EXPECT_EQ(d["node"], "n1");

  // A desired set: one MODIFIED with the new desired version.
  uint64_t before = log.version();
  auto set = h.controller->set_device_desired("dev-1", {{"rate", 7}}, 1);
  ASSERT_TRUE(set && set->code == DeviceOutcome::Code::kOk);
  feeder.settle();
  d = only_event(log, devices(), before, "MODIFIED dev-1");
  EXPECT_EQ(d["desired"], json({{"rate", 7}}));
  EXPECT_EQ(d["desiredVersion"], 2);
  EXPECT_EQ(d["reportedVersion"], 0);

  // A reported update: one MODIFIED with the new reported version and what the device observed.
  before = log.version();
  agent.report("dev-1", R"({"rate":7})", 1, 2, 2);
  feeder.settle();
  d = only_event(log, devices(), before, "MODIFIED dev-1");
  EXPECT_EQ(d["reported"], json({{"rate", 7}}));
  EXPECT_EQ(d["reportedVersion"], 1);
  EXPECT_EQ(d["observedDesired"], 2);
  EXPECT_EQ(d["delta"], json::object());

  // What changes nothing (a stale report, a set to the same value) is no event.
  before = log.version();
  agent.report("dev-1", R"({"rate":1})", 1, 2, 2);
  ASSERT_TRUE(h.controller->set_device_desired("dev-1", {{"rate", 7}}, std::nullopt));
  feeder.settle();
  EXPECT_EQ(log.version(), before);

  // A delete: DELETED with the last view of the device.
  ASSERT_TRUE(h.controller->delete_device("dev-1"));
  feeder.settle();
  d = only_event(log, devices(), before, "DELETED dev-1");
  EXPECT_EQ(d["reportedVersion"], 1);

  // A watcher resuming from the version it had replays, in order, every change it missed.
  WatchBatch b = log.wait(devices(), start, kNow);
  EXPECT_EQ(seen(b), (std::vector<std::string>{"ADDED dev-1", "MODIFIED dev-1", "MODIFIED dev-1",
                                               "DELETED dev-1"}));
  std::vector<int> desired_versions;
  for (const auto& e : b.events)
    desired_versions.push_back(json::parse(*e.event->object)["desiredVersion"].get<int>());
  EXPECT_EQ(desired_versions, (std::vector<int>{1, 2, 2, 2}));
  // Watchers of nodes, or of another node's devices, see none of it.
  EXPECT_EQ(log.wait(devices("n2"), start, kNow).result, Result::kTimeout);
  EXPECT_EQ(log.wait(nodes(), start, kNow).result, Result::kTimeout);
  EXPECT_EQ(log.wait(devices("n1"), start, kNow).events.size(), 4u);
  EXPECT_EQ(h.metrics.value("flotilla_hub_watch_view_errors_total"), 0u);
}

TEST(WatchFeederTest, AHubAheadOfTheAgentSupersedingItsDesiredIsAnEvent) {
  testing::HubHarness h;
  WatchLog log;
  ASSERT_TRUE(h.controller->put_device("dev-1", {{"node", "n1"}, {"desired", {{"rate", 5}}}}));
  ASSERT_TRUE(seed_watch_log(log, *h.controller).ok());
  WatchFeeder feeder(log, *h.controller, h.metrics);
  h.controller->set_change_listener(feeder.listener());
  testing::FakeAgent agent(h.broker, "n1");
  agent.hello(0);
  feeder.settle();
  const uint64_t before = log.version();
  // The agent holds desired version 9 this hub never issued (the hub lost its store).
  agent.report("dev-1", "{}", 0, 0, 9);
  feeder.settle();
  // Seeded, so MODIFIED (not ADDED); desired moved past the agent's.
  json d = only_event(log, devices(), before, "MODIFIED dev-1");
  EXPECT_EQ(d["desiredVersion"], 10);
}

}  // namespace
}  // namespace flotilla::hub
