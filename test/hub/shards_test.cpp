// The hub's sharded state: one control store plus one store per shard (hub_stores.hpp), the
// controller over them, and recovery of a lost shard from its nodes' resync.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <future>
#include <thread>

#include "cloud-hub/hub_stores.hpp"
#include "common/sqlite.hpp"
#include "test/hub/fake_agent.hpp"
#include "test/support/temp_dir.hpp"

namespace flotilla::hub {
namespace {

namespace pb = flotilla::v1;
using testing::FakeAgent;
using testing::manifests;
using testing::process_workload;

constexpr uint32_t kShards = 4;

// Node names, `per_shard` of each of the kShards shards, sorted by shard.
std::vector<std::vector<std::string>> names_by_shard(size_t per_shard) {
  std::vector<std::vector<std::string>> out(kShards);
  for (int i = 0;
       std::any_of(out.begin(), out.end(), [&](auto& v) { return v.size() < per_shard; }); ++i) {
    std::string name = "n" + std::to_string(i);
    auto& slot = out[sync::shard_of(name, kShards)];
    if (slot.size() < per_shard) slot.push_back(name);
  }
  return out;
}

// The value of one series in a /metrics text (0 when absent).
double metric_value(const std::string& text, const std::string& series) {
  auto at = text.find("\n" + series + " ");
  if (at == std::string::npos) return 0;
  return std::stod(text.substr(at + series.size() + 2));
}

// A FakeAgent per name, each having said hello.
std::vector<std::unique_ptr<FakeAgent>> hello_all(
    sync::FakeBroker& broker, const std::vector<std::vector<std::string>>& names) {
  std::vector<std::unique_ptr<FakeAgent>> agents;
  for (const auto& shard : names) {
    for (const auto& n : shard) {
      agents.push_back(std::make_unique<FakeAgent>(broker, n, kShards));
      agents.back()->hello(0);
    }
  }
  return agents;
}

// A controller and sync server over the stores in `dir`, as the hub wires them.
struct ShardedHub {
  ShardedHub(const std::string& dir, sync::FakeBroker& broker, FakeClock& clock,
             Millis grace = Millis(30000))
      : clock_(clock) {
    auto opened = open_hub_stores(dir, kShards, {});
    if (!opened) ADD_FAILURE() << opened.error().message();
    stores = std::move(*opened);
    transport = broker.connect("flotilla-hub");
    ControllerOptions options;
    options.shards = kShards;
    options.recovery_grace = grace;
    std::vector<Store*> shards;
    for (auto& s : stores.shards) shards.push_back(s.get());
    controller =
        std::make_unique<Controller>(*stores.control, shards, clock, *transport, metrics, options);
    sync_server = std::make_unique<SyncServer>(*transport, *controller, metrics, kShards, false);
    EXPECT_TRUE(controller->start(stores.rebuilt).ok());
    EXPECT_TRUE(sync_server->start().ok());
  }
  ~ShardedHub() { transport->stop(); }
  std::set<std::string> placed(const std::string& workload) {
    auto view = controller->workload_view(workload);
    std::set<std::string> out;
    if (!view || !*view) return out;
    for (const auto& n : (**view)["status"]["nodes"]) out.insert(n.get<std::string>());
    return out;
  }

  FakeClock& clock_;
  Metrics metrics;
  HubStores stores;
  std::unique_ptr<sync::FakeTransport> transport;
  std::unique_ptr<Controller> controller;
  std::unique_ptr<SyncServer> sync_server;
};

TEST(HubStoresTest, OneControlFileAndOneFilePerShardNothingRebuiltOnAFirstStart) {
  flotilla::testing::TempDir dir;
  auto stores = open_hub_stores(dir.path(), kShards, {});
  ASSERT_TRUE(stores.ok()) << stores.error().message();
  EXPECT_EQ(stores->shards.size(), kShards);
  EXPECT_TRUE(stores->rebuilt.empty());
  EXPECT_TRUE(std::filesystem::exists(dir / "control.db"));
  for (uint32_t i = 0; i < kShards; ++i) {
    EXPECT_TRUE(std::filesystem::exists(shard_store_path(dir.path(), i))) << i;
  }
  EXPECT_EQ(shard_store_path("/d", 7), "/d/shard-07.db");
}

TEST(HubStoresTest, AMissingShardFileIsOpenedEmptyAndReportedRebuilt) {
  flotilla::testing::TempDir dir;
  { ASSERT_TRUE(open_hub_stores(dir.path(), kShards, {}).ok()); }
  std::filesystem::remove(shard_store_path(dir.path(), 2));
  auto stores = open_hub_stores(dir.path(), kShards, {});
  ASSERT_TRUE(stores.ok()) << stores.error().message();
  EXPECT_EQ(stores->rebuilt, std::set<uint32_t>{2});
}

TEST(HubStoresTest, MoreShardFilesThanShardsIsRefusedAndChangesNothing) {
  flotilla::testing::TempDir dir;
  { ASSERT_TRUE(open_hub_stores(dir.path(), 8, {}).ok()); }
  auto stores = open_hub_stores(dir.path(), kShards, {});
  ASSERT_FALSE(stores.ok());
  EXPECT_NE(stores.error().message().find("shard-07.db"), std::string::npos)
      << stores.error().message();
  EXPECT_NE(stores.error().message().find("--shards 4"), std::string::npos)
      << stores.error().message();
  EXPECT_TRUE(std::filesystem::exists(shard_store_path(dir.path(), 7)));
}

TEST(HubStoresTest, AHubDbFromBeforeShardingBecomesControlWithItsPlacements) {
  flotilla::testing::TempDir dir;
  {
    auto old = Store::open(dir / "hub.db");
    ASSERT_TRUE(old.ok());
    WorkloadRecord w{"web", "{}", "h", 1, 1, 1, 0, ""};
    ASSERT_TRUE((*old)->put_workload(w).ok());
    NodeRecord n;
    n.name = "n1";
    ASSERT_TRUE((*old)->put_node(n).ok());
    ASSERT_TRUE((*old)->update_node_desired("n1", {{"web", "spec"}}, {}).ok());
  }
  // A real pre-sharding file has no placements table (schema step 5) and no devices table
  // (steps 6 and 7): make this one so.
  {
    auto db = sql::Db::open(dir / "hub.db");
    ASSERT_TRUE(db.ok());
    ASSERT_TRUE(
        db->exec("DROP TABLE placements; DROP TABLE devices; PRAGMA user_version = 4;").ok());
  }
  auto stores = open_hub_stores(dir.path(), kShards, {});
  ASSERT_TRUE(stores.ok()) << stores.error().message();
  EXPECT_FALSE(std::filesystem::exists(dir / "hub.db"));
  auto placements = stores->control->fleet_placements();
  ASSERT_TRUE(placements.ok());
  EXPECT_EQ(*placements, (std::map<std::string, std::set<std::string>>{{"web", {"n1"}}}));
  auto w = stores->control->get_workload("web");
  ASSERT_TRUE(w.ok() && w->has_value());
  auto nodes = stores->control->list_nodes();
  ASSERT_TRUE(nodes.ok());
  EXPECT_TRUE(nodes->empty()) << "node rows were left in the control store";
  EXPECT_EQ(stores->rebuilt.size(), kShards);
}

TEST(ShardedControllerTest, EachNodeLivesInItsShardsStoreOnly) {
  flotilla::testing::TempDir dir;
  sync::FakeBroker broker;
  FakeClock clock;
  ShardedHub hub(dir.path(), broker, clock);
  auto names = names_by_shard(2);
  auto agents = hello_all(broker, names);
  for (uint32_t s = 0; s < kShards; ++s) {
    auto nodes = hub.stores.shards[s]->list_nodes();
    ASSERT_TRUE(nodes.ok());
    std::vector<std::string> have;
    for (const auto& n : *nodes) have.push_back(n.name);
    auto want = names[s];
    std::sort(want.begin(), want.end());
    EXPECT_EQ(have, want) << "shard " << s;
  }
  auto control_nodes = hub.stores.control->list_nodes();
  ASSERT_TRUE(control_nodes.ok());
  EXPECT_TRUE(control_nodes->empty());
}

TEST(ShardedControllerTest, ApplyReachesNodesOfEveryShardAndListsPageAcrossShards) {
  flotilla::testing::TempDir dir;
  sync::FakeBroker broker;
  FakeClock clock;
  ShardedHub hub(dir.path(), broker, clock);
  auto names = names_by_shard(3);
  std::vector<std::unique_ptr<FakeAgent>> agents;
  std::vector<std::string> all;
  for (const auto& shard : names) {
    for (const auto& n : shard) {
      agents.push_back(std::make_unique<FakeAgent>(broker, n, kShards));
      agents.back()->hello(0);
      all.push_back(n);
    }
  }
  auto r = hub.controller->apply(manifests(process_workload("a", "placement: {everyNode: true}")));
  ASSERT_TRUE(r.ok() && r->refused.empty());
  for (auto& a : agents) {
    ASSERT_EQ(a->desired.size(), 1u);
    ASSERT_EQ(a->desired.back().upserts_size(), 1);
    EXPECT_EQ(a->desired.back().upserts(0).name(), "a");
  }
  EXPECT_EQ(hub.placed("a").size(), all.size());

  // Pages of 5 across 4 shards: every node once, in name order.
  std::sort(all.begin(), all.end());
  std::vector<std::string> seen;
  ListOptions page;
  page.limit = 5;
  for (int i = 0; i < 10; ++i) {
    auto view = hub.controller->nodes_view(page);
    ASSERT_TRUE(view.ok());
    for (const auto& n : (*view)["items"]) {
      seen.push_back(n["name"]);
      EXPECT_EQ(n["shard"], sync::shard_of(n["name"].get<std::string>(), kShards));
      EXPECT_EQ(n["workloads"], nlohmann::json::array({"a"}));
    }
    std::string next = (*view)["continue"];
    if (next.empty()) break;
    page.after = *list_token_decode(next);
  }
  EXPECT_EQ(seen, all);
}

// An apply writes the shards one at a time and sends each shard's nodes their desired state as
// soon as that shard committed: at 100,000 nodes the first ones start while later shards are
// still being written, and a shard already written goes on ingesting (its lock is not held while
// the others are written).
TEST(ShardedControllerTest, AnApplySendsEachShardOnceWrittenAndWrittenShardsIngestMeanwhile) {
  flotilla::testing::TempDir dir;
  sync::FakeBroker broker;
  FakeClock clock;
  ShardedHub hub(dir.path(), broker, clock);
  auto names = names_by_shard(1);  // one node per shard, in shard order
  auto agents = hello_all(broker, names);
  const std::string last = names.back().front();
  Store& last_store = *hub.stores.shards.back();
  std::vector<uint64_t> last_revision_when_sent;  // of the last shard's node
  std::vector<bool> ingested_at_once;
  std::vector<double> running_seen;  // by a scrape during the apply; -1: it did not answer
  std::vector<std::thread> reporters;
  auto watcher = broker.connect("watcher");
  watcher->set_handlers(
      [&](sync::Message m) {
        auto t = sync::parse_topic(m.topic);
        if (!t || t->kind != "desired" || t->node == last) return;
        last_revision_when_sent.push_back((*last_store.get_node(last))->revision);
        // The node reports from another thread, as the ingest thread would: its shard's lock
        // must be free now. (If not, the report waits for the apply, and is joined after it.)
        auto agent = std::find_if(agents.begin(), agents.end(),
                                  [&](const auto& a) { return a->node() == t->node; });
        ASSERT_NE(agent, agents.end());
        auto reported = std::make_shared<std::promise<void>>();
        reporters.emplace_back([agent = agent->get(), node = t->node, reported] {
          agent->status({testing::instance("a", node + "-a", pb::PHASE_RUNNING, 1)});
          reported->set_value();
        });
        ingested_at_once.push_back(reported->get_future().wait_for(std::chrono::seconds(5)) ==
                                   std::future_status::ready);
        // A metrics scrape meanwhile answers at once (the apply holds the control lock).
        auto scraped = std::make_shared<std::promise<std::string>>();
        reporters.emplace_back(
            [&hub, scraped] { scraped->set_value(hub.controller->gauges_text()); });
        auto gauges = scraped->get_future();
        if (gauges.wait_for(std::chrono::seconds(5)) == std::future_status::ready) {
          running_seen.push_back(
              metric_value(gauges.get(), "flotilla_hub_instances{phase=\"Running\"}"));
        } else {
          running_seen.push_back(-1);
        }
      },
      [](bool) {});
  ASSERT_TRUE(watcher->start().ok());
  ASSERT_TRUE(watcher->subscribe("flotilla/v1/s/+/n/+/down/desired", 1).ok());

  auto r = hub.controller->apply(manifests(process_workload("a", "placement: {everyNode: true}")));
  for (auto& t : reporters) t.join();
  ASSERT_TRUE(r.ok() && r->refused.empty());
  EXPECT_EQ(last_revision_when_sent, std::vector<uint64_t>(kShards - 1, 0))
      << "the first shards' nodes were sent their desired state only after every shard was written";
  EXPECT_EQ(ingested_at_once, std::vector<bool>(kShards - 1, true))
      << "a written shard's lock was still held while the apply went on";
  // Each scrape answered during the apply and saw the instances reported so far.
  std::vector<double> want_seen;
  for (uint32_t i = 1; i < kShards; ++i) want_seen.push_back(i);
  EXPECT_EQ(running_seen, want_seen);
  for (size_t i = 0; i + 1 < names.size(); ++i) {
    const std::string& node = names[i].front();
    auto inst = hub.stores.shards[i]->get_instance(node, node + "-a");
    ASSERT_TRUE(inst.ok() && inst->has_value()) << node;
    EXPECT_EQ((*inst)->status.phase(), pb::PHASE_RUNNING);
  }
  EXPECT_EQ((*last_store.get_node(last))->revision, 1u);
}

TEST(ShardedControllerTest, PagesOverUnevenShardsListEveryNodeOnceInNameOrder) {
  // Most nodes in one shard: a page takes more from it than its first read of that shard held.
  flotilla::testing::TempDir dir;
  sync::FakeBroker broker;
  FakeClock clock;
  ShardedHub hub(dir.path(), broker, clock);
  auto names = names_by_shard(40);
  std::vector<std::string> all = names[0];
  all.push_back(names[1][0]);
  all.push_back(names[3][0]);
  std::vector<std::unique_ptr<FakeAgent>> agents;
  for (const auto& n : all) {
    agents.push_back(std::make_unique<FakeAgent>(broker, n, kShards));
    agents.back()->hello(0);
  }
  std::sort(all.begin(), all.end());
  for (int64_t limit : {1, 7, 30, 100}) {
    std::vector<std::string> seen;
    ListOptions page;
    page.limit = limit;
    for (size_t i = 0; i <= all.size(); ++i) {
      auto view = hub.controller->nodes_view(page);
      ASSERT_TRUE(view.ok());
      EXPECT_LE((*view)["items"].size(), static_cast<size_t>(limit));
      for (const auto& n : (*view)["items"]) seen.push_back(n["name"]);
      std::string next = (*view)["continue"];
      if (next.empty()) break;
      page.after = *list_token_decode(next);
    }
    EXPECT_EQ(seen, all) << "limit " << limit;
  }
  auto whole = hub.controller->nodes_view();
  ASSERT_TRUE(whole.ok());
  EXPECT_EQ((*whole)["items"].size(), all.size());
  EXPECT_EQ((*whole)["continue"], "");
}

TEST(ShardedControllerTest, AStateFilterPagesAcrossShardsWithASelector) {
  // 40 nodes over 4 shards, half of them site=a; every third goes NotReady (its will).
  flotilla::testing::TempDir dir;
  sync::FakeBroker broker;
  FakeClock clock;
  ShardedHub hub(dir.path(), broker, clock);
  std::vector<std::unique_ptr<FakeAgent>> agents;
  std::map<std::string, FakeAgent*> by_name;
  std::vector<std::string> want_not_ready, want_not_ready_a, want_ready_a;
  int i = 0;
  for (const auto& shard : names_by_shard(10)) {
    for (const auto& n : shard) {
      const bool a = i % 2 == 0;
      const bool down = i % 3 == 0;
      ++i;
      agents.push_back(std::make_unique<FakeAgent>(broker, n, kShards));
      by_name[n] = agents.back().get();
      agents.back()->hello(0, {{"site", a ? "a" : "b"}});
      if (down) agents.back()->will();
      if (down) want_not_ready.push_back(n);
      if (down && a) want_not_ready_a.push_back(n);
      if (!down && a) want_ready_a.push_back(n);
    }
  }
  for (auto* v : {&want_not_ready, &want_not_ready_a, &want_ready_a})
    std::sort(v->begin(), v->end());
  ASSERT_GE(want_not_ready_a.size(), 5u);
  auto pages = [&](std::optional<bool> ready, std::map<std::string, std::string> selector,
                   int64_t limit) {
    std::vector<std::string> seen;
    ListOptions page;
    page.limit = limit;
    page.ready = ready;
    page.selector = std::move(selector);
    for (int k = 0; k < 50; ++k) {
      auto view = hub.controller->nodes_view(page);
      EXPECT_TRUE(view.ok());
      if (!view.ok()) break;
      EXPECT_LE((*view)["items"].size(), static_cast<size_t>(limit));
      for (const auto& n : (*view)["items"]) {
        seen.push_back(n["name"]);
        EXPECT_EQ(n["state"], ready ? (*ready ? "Ready" : "NotReady") : n["state"]);
      }
      std::string next = (*view)["continue"];
      if (next.empty()) break;
      page.after = *list_token_decode(next);
    }
    return seen;
  };
  EXPECT_EQ(pages(false, {}, 4), want_not_ready);
  EXPECT_EQ(pages(false, {{"site", "a"}}, 2), want_not_ready_a);
  EXPECT_EQ(pages(true, {{"site", "a"}}, 3), want_ready_a);
  EXPECT_EQ(pages(std::nullopt, {}, 7).size(), 40u);
  // A node that comes back leaves the NotReady list.
  by_name[want_not_ready_a[0]]->hello(0, {{"site", "a"}}, "boot-2");
  std::vector<std::string> rest(want_not_ready_a.begin() + 1, want_not_ready_a.end());
  EXPECT_EQ(pages(false, {{"site", "a"}}, 2), rest);
}

TEST(ShardedControllerTest, ACrashBetweenTheControlCommitAndTheShardsIsRepairedAtStart) {
  flotilla::testing::TempDir dir;
  sync::FakeBroker broker;
  FakeClock clock;
  const std::string node = names_by_shard(1)[1][0];
  {
    ShardedHub hub(dir.path(), broker, clock);
    FakeAgent agent(broker, node, kShards);
    agent.hello(0);
  }
  {
    // What an apply leaves when the hub dies after its control commit: workload and placement,
    // no desired state in the node's shard.
    auto stores = open_hub_stores(dir.path(), kShards, {});
    ASSERT_TRUE(stores.ok());
    auto m = manifests(process_workload("a", "placement: {everyNode: true}"));
    WorkloadRecord w{"a", to_json(m.front()).dump(), spec_hash(m.front()), 1, 1, 1, 0, ""};
    ASSERT_TRUE(stores->control->put_workload(w).ok());
    ASSERT_TRUE(stores->control->set_placements("a", {node}).ok());
  }
  ShardedHub hub(dir.path(), broker, clock);
  auto rows = hub.stores.shards[sync::shard_of(node, kShards)]->desired_for_node(node);
  ASSERT_TRUE(rows.ok());
  ASSERT_EQ(rows->size(), 1u);
  EXPECT_EQ(rows->front().workload, "a");
}

// Two replicas over nodes of two shards; shard `lost` is lost while the hub is down.
struct LostShard : ::testing::Test {
  void SetUp() override {
    names = names_by_shard(2);
    {
      ShardedHub hub(dir.path(), broker, clock);
      for (uint32_t s : {0u, 1u}) {
        for (const auto& n : names[s]) FakeAgent(broker, n, kShards).hello(0);
      }
      auto r = hub.controller->apply(manifests(process_workload("rep", "replicas: 2")));
      ASSERT_TRUE(r.ok() && r->refused.empty());
      before = hub.placed("rep");
      ASSERT_EQ(before.size(), 2u);
    }
    lost = sync::shard_of(*before.begin(), kShards);
    ASSERT_TRUE(std::filesystem::remove(shard_store_path(dir.path(), lost)));
  }

  flotilla::testing::TempDir dir;
  sync::FakeBroker broker;
  FakeClock clock;
  std::vector<std::vector<std::string>> names;
  std::set<std::string> before;
  uint32_t lost = 0;
};

TEST_F(LostShard, SchedulingWaitsForItsNodesWhoGetTheirWorkloadsBack) {
  ShardedHub hub(dir.path(), broker, clock);
  ASSERT_EQ(hub.stores.rebuilt, std::set<uint32_t>{lost});
  std::set<std::string> awaited;
  for (const auto& n : before)
    if (sync::shard_of(n, kShards) == lost) awaited.insert(n);
  EXPECT_EQ(hub.controller->awaited_nodes(), awaited.size());
  // The other nodes keep talking, time passes (within the grace): nothing moves.
  clock.advance(Millis(10000));
  hub.controller->tick();
  EXPECT_EQ(hub.placed("rep"), before);
  auto view = hub.controller->workload_view("rep");
  ASSERT_TRUE(view.ok() && view->has_value());
  EXPECT_NE((**view)["status"]["pendingReason"].get<std::string>().find("resync"),
            std::string::npos)
      << (**view)["status"].dump();

  // The lost shard's nodes come back (they hold revision 1) and get a snapshot of what they run.
  std::vector<std::unique_ptr<FakeAgent>> back;
  for (const auto& n : names[lost]) {
    back.push_back(std::make_unique<FakeAgent>(broker, n, kShards));
    back.back()->hello(1);
  }
  EXPECT_EQ(hub.controller->awaited_nodes(), 0u);
  EXPECT_EQ(hub.placed("rep"), before);
  for (size_t i = 0; i < back.size(); ++i) {
    const bool runs = before.count(names[lost][i]) > 0;
    if (!runs) continue;
    ASSERT_FALSE(back[i]->desired.empty()) << names[lost][i];
    // Every message it got has the workload: a snapshot without it would stop the instance.
    for (const pb::DesiredState& d : back[i]->desired) {
      EXPECT_TRUE(d.snapshot());
      EXPECT_GT(d.to_revision(), 1u) << "not newer than what the agent holds";
      ASSERT_EQ(d.upserts_size(), 1) << names[lost][i] << " got a snapshot without its workload";
      EXPECT_EQ(d.upserts(0).name(), "rep");
    }
  }
}

TEST_F(LostShard, NodesThatNeverComeBackArePlacedElsewhereAfterTheGrace) {
  ShardedHub hub(dir.path(), broker, clock, Millis(5000));
  ASSERT_GT(hub.controller->awaited_nodes(), 0u);
  clock.advance(Millis(6000));
  hub.controller->tick();
  EXPECT_EQ(hub.controller->awaited_nodes(), 0u);
  auto now = hub.placed("rep");
  EXPECT_EQ(now.size(), 2u);
  for (const auto& n : now) EXPECT_NE(sync::shard_of(n, kShards), lost) << n;
}

TEST(ShardedControllerTest, ShardsIngestInParallelAndLoseNothing) {
  flotilla::testing::TempDir dir;
  sync::FakeBroker broker;
  FakeClock clock;
  auto opened = open_hub_stores(dir.path(), kShards, {});
  ASSERT_TRUE(opened.ok());
  auto transport = broker.connect("flotilla-hub");
  Metrics metrics;
  ControllerOptions options;
  options.shards = kShards;
  std::vector<Store*> shards;
  for (auto& s : opened->shards) shards.push_back(s.get());
  Controller controller(*opened->control, shards, clock, *transport, metrics, options);
  SyncServer server(*transport, controller, metrics, kShards, /*ingest_thread=*/true);
  ASSERT_TRUE(controller.start().ok());
  ASSERT_TRUE(server.start().ok());
  auto names = names_by_shard(5);
  std::vector<std::thread> senders;
  constexpr int kRecords = 200;
  // The agents outlive the ingest threads' work: those answer a hello (with the node's devices)
  // on their own thread, and FakeBroker delivers to a client it still lists.
  std::vector<std::vector<std::unique_ptr<FakeAgent>>> agents(names.size());
  for (size_t s = 0; s < names.size(); ++s) {
    senders.emplace_back([&, s] {
      for (const auto& n : names[s]) {
        agents[s].push_back(std::make_unique<FakeAgent>(broker, n, kShards));
        FakeAgent& agent = *agents[s].back();
        agent.hello(0);
        for (int i = 1; i <= kRecords; ++i) {
          agent.status({testing::instance("w", "w-" + std::to_string(i % 7), pb::PHASE_RUNNING,
                                          static_cast<uint64_t>(i))});
        }
      }
    });
  }
  for (auto& t : senders) t.join();
  server.wait_idle();
  uint64_t handled = 0;
  for (uint32_t s = 0; s < kShards; ++s) {
    const uint64_t n =
        metrics.value("flotilla_hub_shard_messages_total", {{"shard", std::to_string(s)}});
    EXPECT_GT(n, 0u) << "shard " << s << " handled nothing";
    handled += n;
  }
  EXPECT_EQ(handled, kShards * 5 * (kRecords + 1));
  for (const auto& shard : names) {
    for (const auto& n : shard) {
      auto rec = opened->shards[sync::shard_of(n, kShards)]->get_instance(n, "w-0");
      ASSERT_TRUE(rec.ok() && rec->has_value()) << n;
      EXPECT_EQ((*rec)->status.seq(), 196u) << n;  // the newest record of w-0 (196 = 7 * 28)
    }
  }
  EXPECT_NE(server.gauges_text().find("flotilla_hub_shard_lag_seconds{shard=\"3\"}"),
            std::string::npos);
  transport->stop();
  server.stop();
}

// Several hub instances (docs/multi-hub.md): a shard this instance does not own is neither
// ingested nor judged; taking it subscribes, announces a new epoch to its agents and starts its
// nodes' liveness clocks anew.
TEST(ShardedControllerTest, OnlyOwnedShardsAreIngestedAndJudgedAndATakenShardStartsItsClocksAnew) {
  flotilla::testing::TempDir dir;
  sync::FakeBroker broker;
  FakeClock clock;
  ShardedHub hub(dir.path(), broker, clock);
  auto names = names_by_shard(1);
  auto agents = hello_all(broker, names);  // agents[i] on shard i
  auto ready = [&](uint32_t shard) {
    auto n = hub.stores.shards[shard]->get_node(names[shard][0]);
    return n && *n && (*n)->ready;
  };
  auto announcements = [&](uint32_t shard) {
    size_t n = 0;
    for (const auto& m : broker.log()) n += m.topic == sync::hub_online_topic(shard) ? 1 : 0;
    return n;
  };
  auto dropped_not_owned = [&] {
    return hub.metrics.value("flotilla_hub_messages_dropped_total",
                             {{"kind", "heartbeat"}, {"reason", "not_owned"}});
  };

  hub.sync_server->set_owned(1, false);
  hub.controller->set_shard_owned(1, false);
  EXPECT_FALSE(hub.sync_server->owned(1));
  EXPECT_TRUE(hub.sync_server->owned(0));
  // Unsubscribed: shard 1's heartbeat no longer reaches this hub; handed to it anyway, dropped.
  agents[1]->heartbeat(0);
  EXPECT_EQ(dropped_not_owned(), 0u);
  pb::Heartbeat hb;
  hb.set_node(names[1][0]);
  hub.sync_server->handle({sync::up_topic(names[1][0], kShards, "heartbeat"), sync::encode(hb)});
  EXPECT_EQ(dropped_not_owned(), 1u);

  // 16 s of silence from shards 0 and 1 (shards 2 and 3 keep beating): only the owned one is
  // judged.
  clock.advance(Millis(16000));
  agents[2]->heartbeat(0);
  agents[3]->heartbeat(0);
  hub.controller->tick();
  EXPECT_FALSE(ready(0));
  EXPECT_TRUE(ready(1)) << "a shard another instance owns was judged here";
  EXPECT_TRUE(ready(2));

  // Taken: subscribed again, a new epoch announced on its hub/online, its node heard from now.
  const size_t before = announcements(1);
  hub.controller->set_shard_owned(1, true);
  hub.sync_server->set_owned(1, true);
  EXPECT_EQ(announcements(1), before + 1);
  EXPECT_EQ(announcements(2), 1u);  // the others were announced once, at start
  clock.advance(Millis(10000));
  hub.controller->tick();
  EXPECT_TRUE(ready(1)) << "judged by the silence from before it was taken";
  clock.advance(Millis(6000));
  hub.controller->tick();
  EXPECT_FALSE(ready(1));  // 16 s since it was taken
  agents[1]->heartbeat(0);
  EXPECT_TRUE(ready(1));  // ingested again
  EXPECT_EQ(dropped_not_owned(), 1u);
}

// Several instances fence an owner's writes to a shard by its lease (set_shard_fence): a batch
// the fence refuses is rolled back whole and counted, and a NotReady it refused is tried again at
// the next tick.
TEST(ShardedControllerTest, AFencedWriteIsRolledBackAndARefusedNotReadyIsTriedAgain) {
  flotilla::testing::TempDir dir;
  sync::FakeBroker broker;
  FakeClock clock;
  ShardedHub hub(dir.path(), broker, clock);
  auto names = names_by_shard(1);
  auto agents = hello_all(broker, names);
  bool refuse = true;
  std::vector<uint32_t> asked;
  hub.controller->set_shard_fence([&](uint32_t shard, Store&) -> Status {
    asked.push_back(shard);
    return refuse ? Status(Error("the lease moved on")) : Ok();
  });
  const std::string node = names[2][0];
  auto events = [&](const std::string& reason) {
    size_t n = 0;
    auto listed = hub.stores.shards[2]->list_events({node, "", 100});  // kept: the loop reads it
    EXPECT_TRUE(listed) << listed.error().message();
    if (!listed) return n;
    for (const auto& e : *listed) n += e.reason == reason ? 1 : 0;
    return n;
  };
  auto ready = [&] { return (*hub.stores.shards[2]->get_node(node))->ready; };

  hub.controller->batch(2, [&] { (void)hub.controller->record_event(node, "x", "Probe", "m"); });
  EXPECT_EQ(asked, std::vector<uint32_t>{2});
  EXPECT_EQ(events("Probe"), 0u) << "a refused batch left a write behind";
  EXPECT_EQ(hub.metrics.value("flotilla_hub_fenced_writes_total"), 1u);

  // Silent for longer than the timeout; the other shards' nodes keep beating.
  clock.advance(Millis(16000));
  for (size_t s = 0; s < agents.size(); ++s) {
    if (s != 2) agents[s]->heartbeat(0);
  }
  asked.clear();
  hub.controller->tick();
  EXPECT_TRUE(ready()) << "written though the fence refused";
  EXPECT_NE(std::find(asked.begin(), asked.end(), 2u), asked.end());
  refuse = false;
  hub.controller->tick();
  EXPECT_FALSE(ready()) << "the refused NotReady was not tried again";
  EXPECT_EQ(events("NotReady"), 1u);
  hub.controller->batch(2, [&] { (void)hub.controller->record_event(node, "x", "Probe", "m"); });
  EXPECT_EQ(events("Probe"), 1u);
}

}  // namespace
}  // namespace flotilla::hub
