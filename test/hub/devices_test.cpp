// Device twins at the hub: REST-side changes of desired reach the node as TwinDesired, reported
// documents from the node are adopted by version, and the twin survives a restart.
#include <gtest/gtest.h>

#include <httplib.h>

#include <nlohmann/json.hpp>

#include "cloud-hub/flotctl/commands.hpp"
#include "cloud-hub/flotctl/twin.hpp"
#include "common/twin.hpp"
#include "sync/codec.hpp"
#include "test/hub/api_server.hpp"
#include "test/hub/fake_agent.hpp"
#include "test/hub/sse_client.hpp"
#include "test/support/temp_dir.hpp"

namespace flotilla::hub {
namespace {

using json = nlohmann::json;
using testing::FakeAgent;
using testing::HubHarness;
using Code = DeviceOutcome::Code;
namespace pb = flotilla::v1;

DeviceOutcome put(HubHarness& h, const std::string& name, const json& body) {
  auto r = h.controller->put_device(name, body);
  if (!r) ADD_FAILURE() << r.error().message();
  return r ? *r : DeviceOutcome{};
}

DeviceOutcome set(HubHarness& h, const std::string& name, const json& patch,
                  std::optional<uint64_t> if_version = {}) {
  auto r = h.controller->set_device_desired(name, patch, if_version);
  if (!r) ADD_FAILURE() << r.error().message();
  return r ? *r : DeviceOutcome{};
}

json view(HubHarness& h, const std::string& name) {
  auto v = h.controller->device_view(name);
  if (!v || !*v) {
    ADD_FAILURE() << "no device " << name;
    return json();
  }
  return **v;
}

TEST(DevicesTest, CreatingADeviceSendsItsDesiredToTheNode) {
  HubHarness h;
  FakeAgent agent(h.broker, "n1");
  agent.hello(0);
  ASSERT_EQ(agent.twins.size(), 1u);  // the full list after hello: no devices yet
  EXPECT_TRUE(agent.twins[0].full());
  EXPECT_EQ(agent.twins[0].devices_size(), 0);

  auto created = put(h, "dev-1", {{"node", "n1"}, {"desired", {{"rate", 5}}}});
  EXPECT_EQ(created.code, Code::kCreated) << created.message;
  EXPECT_EQ(created.view["desiredVersion"], 1);
  EXPECT_EQ(created.view["delta"], json({{"rate", 5}}));
  ASSERT_EQ(agent.twins.size(), 2u);
  const pb::TwinDesired& m = agent.twins.back();
  EXPECT_FALSE(m.full());
  EXPECT_EQ(m.node(), "n1");
  ASSERT_EQ(m.devices_size(), 1);
  EXPECT_EQ(m.devices(0).device(), "dev-1");
  EXPECT_EQ(m.devices(0).desired(), R"({"rate":5})");
  EXPECT_EQ(m.devices(0).desired_version(), 1u);

  // A patch merges; null deletes.
  auto done = set(h, "dev-1", {{"mode", "eco"}, {"rate", nullptr}});
  EXPECT_EQ(done.code, Code::kOk) << done.message;
  EXPECT_EQ(done.view["desired"], json({{"mode", "eco"}}));
  ASSERT_EQ(agent.twins.size(), 3u);
  EXPECT_EQ(agent.twins.back().devices(0).desired(), R"({"mode":"eco"})");
  EXPECT_EQ(agent.twins.back().devices(0).desired_version(), 2u);

  // A patch that changes nothing bumps and sends nothing.
  EXPECT_EQ(set(h, "dev-1", {{"mode", "eco"}}).view["desiredVersion"], 2);
  EXPECT_EQ(agent.twins.size(), 3u);
}

TEST(DevicesTest, AStaleIfVersionIsAConflictAndChangesAndSendsNothing) {
  HubHarness h;
  FakeAgent agent(h.broker, "n1");
  agent.hello(0);
  put(h, "dev-1", {{"node", "n1"}, {"desired", {{"a", 1}}}});
  EXPECT_EQ(set(h, "dev-1", {{"a", 2}}, 1).code, Code::kOk);  // first writer wins
  const size_t sent = agent.twins.size();
  auto second = set(h, "dev-1", {{"a", 3}}, 1);  // read version 1 too
  EXPECT_EQ(second.code, Code::kConflict);
  EXPECT_NE(second.message.find("dev-1"), std::string::npos) << second.message;
  EXPECT_EQ(agent.twins.size(), sent);
  json v = view(h, "dev-1");
  EXPECT_EQ(v["desired"], json({{"a", 2}}));
  EXPECT_EQ(v["desiredVersion"], 2);
  EXPECT_EQ(set(h, "nope", {{"a", 1}}).code, Code::kNotFound);
}

TEST(DevicesTest, InvalidOrOversizedDocumentsAreRejectedAndChangeNothing) {
  HubHarness h;
  FakeAgent agent(h.broker, "n1");
  agent.hello(0);
  put(h, "dev-1", {{"node", "n1"}, {"desired", {{"a", 1}}}});
  const size_t sent = agent.twins.size();

  auto big = set(h, "dev-1", {{"blob", std::string(twin::kMaxDocumentBytes, 'x')}});
  EXPECT_EQ(big.code, Code::kInvalid);
  EXPECT_NE(big.message.find("desired"), std::string::npos) << big.message;
  json deep = 1;
  for (int i = 0; i < 11; ++i) deep = json{{"d", deep}};
  EXPECT_EQ(set(h, "dev-1", deep).code, Code::kInvalid);
  EXPECT_EQ(set(h, "dev-1", json::array({1})).code, Code::kInvalid);
  EXPECT_EQ(put(h, "dev-1", {{"node", "n1"}, {"desired", "text"}}).code, Code::kInvalid);
  EXPECT_EQ(put(h, "Bad/Name", {{"node", "n1"}}).code, Code::kInvalid);
  EXPECT_EQ(put(h, "dev-2", {{"desired", json::object()}}).code, Code::kInvalid);
  // A device keeps its node: moving it means deleting it first.
  EXPECT_EQ(put(h, "dev-1", {{"node", "n2"}}).code, Code::kInvalid);

  EXPECT_EQ(agent.twins.size(), sent);
  json v = view(h, "dev-1");
  EXPECT_EQ(v["desired"], json({{"a", 1}}));
  EXPECT_EQ(v["desiredVersion"], 1);
  EXPECT_FALSE(h.controller->device_view("dev-2")->has_value());
}

TEST(DevicesTest, HelloGetsAFullListOfTheNodesDevicesInPartsWhenLarge) {
  HubHarness h;
  put(h, "other", {{"node", "n2"}, {"desired", {{"x", 1}}}});
  // Twelve devices near the size limit: more than one message holds.
  for (int i = 0; i < 12; ++i) {
    put(h, "dev-" + std::to_string(i),
        {{"node", "n1"}, {"desired", {{"blob", std::string(30 * 1024, 'a' + i)}}}});
  }
  FakeAgent agent(h.broker, "n1");
  agent.hello(0);
  ASSERT_GE(agent.twins.size(), 2u);
  std::set<std::string> listed;
  for (const auto& m : agent.twins) {
    EXPECT_TRUE(m.full());
    EXPECT_EQ(m.parts(), agent.twins.size());
    EXPECT_LE(sync::encode(m).size(), sync::kMaxMessageBytes);
    for (const auto& d : m.devices()) listed.insert(d.device());
  }
  EXPECT_EQ(listed.size(), 12u);
  EXPECT_EQ(listed.count("other"), 0u);

  auto listing = h.controller->devices_view("n1");
  ASSERT_TRUE(listing.ok());
  EXPECT_EQ((*listing)["items"].size(), 12u);
  EXPECT_EQ((*h.controller->devices_view())["items"].size(), 13u);
}

TEST(DevicesTest, ReportedIsAdoptedByVersionAndAStaleReportChangesNothing) {
  HubHarness h;
  FakeAgent agent(h.broker, "n1");
  agent.hello(0);
  put(h, "dev-1", {{"node", "n1"}, {"desired", {{"rate", 5}}}});
  agent.report("dev-1", R"({"rate":5,"temp":20})", 2, 1, 1);
  json v = view(h, "dev-1");
  EXPECT_EQ(v["reported"], json({{"rate", 5}, {"temp", 20}}));
  EXPECT_EQ(v["reportedVersion"], 2);
  EXPECT_EQ(v["observedDesired"], 1);
  EXPECT_EQ(v["delta"], json::object());

  agent.report("dev-1", R"({"rate":1})", 1, 0, 1);  // older, arriving late
  v = view(h, "dev-1");
  EXPECT_EQ(v["reported"], json({{"rate", 5}, {"temp", 20}}));
  EXPECT_EQ(v["reportedVersion"], 2);
  EXPECT_EQ(h.metrics.value("flotilla_hub_twin_reports_ignored_total", {{"reason", "stale"}}), 1u);

  // A device of another node, an unknown device, a malformed document: ignored.
  FakeAgent other(h.broker, "n2");
  other.report("dev-1", R"({"rate":9})", 9);
  agent.report("ghost", R"({"rate":9})", 9);
  agent.report("dev-1", R"({"rate":)", 9);
  EXPECT_EQ(view(h, "dev-1")["reportedVersion"], 2);
  EXPECT_EQ(h.metrics.value("flotilla_hub_twin_reports_ignored_total", {{"reason", "invalid"}}),
            1u);
}

TEST(DevicesTest, MalformedTwinMessagesAreDroppedAndCounted) {
  HubHarness h;
  FakeAgent agent(h.broker, "n1");
  agent.hello(0);
  put(h, "dev-1", {{"node", "n1"}});
  agent.raw("twin", "\xff\xff\xff garbage");
  pb::TwinReported wrong_node;
  wrong_node.set_node("n2");
  agent.send("twin", wrong_node);
  EXPECT_EQ(h.metrics.value("flotilla_hub_messages_dropped_total",
                            {{"kind", "twin"}, {"reason", "malformed"}}),
            1u);
  EXPECT_EQ(h.metrics.value("flotilla_hub_messages_dropped_total",
                            {{"kind", "twin"}, {"reason", "node_mismatch"}}),
            1u);
  EXPECT_EQ(view(h, "dev-1")["reportedVersion"], 0);
}

TEST(DevicesTest, AnAgentAheadOfTheHubMakesTheHubsDesiredWinAndOneBehindGetsItAgain) {
  HubHarness h;
  FakeAgent agent(h.broker, "n1");
  agent.hello(0);
  put(h, "dev-1", {{"node", "n1"}, {"desired", {{"a", 1}}}});
  // The agent holds desired version 7: the hub lost its store since it issued that.
  const size_t sent = agent.twins.size();
  agent.report("dev-1", "{}", 1, 0, 7);
  EXPECT_EQ(view(h, "dev-1")["desiredVersion"], 8);
  ASSERT_EQ(agent.twins.size(), sent + 1);
  EXPECT_EQ(agent.twins.back().devices(0).desired_version(), 8u);
  EXPECT_EQ(agent.twins.back().devices(0).desired(), R"({"a":1})");
  // The agent says it holds an older desired version: the hub's goes out again.
  agent.report("dev-1", "{}", 2, 0, 3);
  ASSERT_EQ(agent.twins.size(), sent + 2);
  EXPECT_EQ(agent.twins.back().devices(0).desired_version(), 8u);
  // Up to date: nothing to send.
  agent.report("dev-1", "{}", 3, 8, 8);
  EXPECT_EQ(agent.twins.size(), sent + 2);
}

TEST(DevicesTest, HeartbeatsResendADesiredChangeTheAgentHasNotReported) {
  HubHarness h;
  FakeAgent agent(h.broker, "n1");
  agent.hello(0);
  put(h, "dev-1", {{"node", "n1"}, {"desired", {{"a", 1}}}});
  const size_t sent = agent.twins.size();
  agent.heartbeat(0);  // too soon: the change may still be on its way
  EXPECT_EQ(agent.twins.size(), sent);
  h.clock.advance(ControllerOptions{}.resend_interval);
  agent.heartbeat(0);
  ASSERT_EQ(agent.twins.size(), sent + 1);
  EXPECT_FALSE(agent.twins.back().full());
  EXPECT_EQ(agent.twins.back().devices(0).desired_version(), 1u);
  // The agent reports holding version 1: nothing more to resend.
  agent.report("dev-1", "{}", 1, 0, 1);
  h.clock.advance(ControllerOptions{}.resend_interval);
  agent.heartbeat(0);
  EXPECT_EQ(agent.twins.size(), sent + 1);
  // A hello's full list covers every change before it.
  set(h, "dev-1", {{"a", 2}});
  agent.hello(0);
  const size_t after_hello = agent.twins.size();
  h.clock.advance(ControllerOptions{}.resend_interval);
  agent.heartbeat(0);
  EXPECT_EQ(agent.twins.size(), after_hello);
}

TEST(DevicesTest, DeletingADeviceTellsTheNode) {
  HubHarness h;
  FakeAgent agent(h.broker, "n1");
  agent.hello(0);
  put(h, "dev-1", {{"node", "n1"}});
  auto gone = h.controller->delete_device("dev-1");
  ASSERT_TRUE(gone.ok());
  EXPECT_TRUE(*gone);
  ASSERT_FALSE(agent.twins.empty());
  EXPECT_TRUE(agent.twins.back().devices(0).removed());
  EXPECT_FALSE(*h.controller->delete_device("dev-1"));
  EXPECT_FALSE(h.controller->device_view("dev-1")->has_value());
  agent.hello(0);
  EXPECT_TRUE(agent.twins.back().full());
  EXPECT_EQ(agent.twins.back().devices_size(), 0);
}

TEST(DevicesTest, TheTwinSurvivesARestartOfTheHub) {
  flotilla::testing::TempDir dir;
  const std::string db = dir / "hub.db";
  {
    HubHarness h(db);
    FakeAgent agent(h.broker, "n1");
    agent.hello(0);
    put(h, "dev-1", {{"node", "n1"}, {"desired", {{"a", 1}}}});
    set(h, "dev-1", {{"b", {{"c", true}}}});
    agent.report("dev-1", R"({"a":1})", 4, 2, 2);
  }
  HubHarness h(db);
  json v = view(h, "dev-1");
  EXPECT_EQ(v["node"], "n1");
  EXPECT_EQ(v["desired"], json({{"a", 1}, {"b", {{"c", true}}}}));
  EXPECT_EQ(v["desiredVersion"], 2);
  EXPECT_EQ(v["reported"], json({{"a", 1}}));
  EXPECT_EQ(v["reportedVersion"], 4);
  EXPECT_EQ(v["observedDesired"], 2);
  EXPECT_EQ(v["delta"], json({{"b", {{"c", true}}}}));
  FakeAgent agent(h.broker, "n1");
  agent.hello(0);
  ASSERT_EQ(agent.twins.size(), 1u);
  ASSERT_EQ(agent.twins[0].devices_size(), 1);
  EXPECT_EQ(agent.twins[0].devices(0).desired_version(), 2u);
  EXPECT_EQ(agent.twins[0].devices(0).reported_version(), 4u);
}

TEST(DevicesTest, TheFirstHeartbeatToANewHubProcessGetsTheFullListOfTheNodesDevices) {
  // A hub killed between committing a desired change and publishing it leaves the change in its
  // store only; the next hub process cannot tell which changes went out. Agents say hello to a
  // hub that announces itself (HubOnline) and get the full list then; one that missed the
  // announcement gets it on its first heartbeat, once.
  flotilla::testing::TempDir dir;
  const std::string db = dir / "hub.db";
  {
    HubHarness h(db);
    FakeAgent agent(h.broker, "n1");
    agent.hello(0);
    put(h, "dev-1", {{"node", "n1"}, {"desired", {{"a", 1}}}});
    put(h, "dev-2", {{"node", "n1"}});
  }
  HubHarness h(db);
  FakeAgent agent(h.broker, "n1");
  agent.heartbeat(0);
  ASSERT_EQ(agent.twins.size(), 1u);
  EXPECT_TRUE(agent.twins[0].full());
  ASSERT_EQ(agent.twins[0].devices_size(), 2);
  EXPECT_EQ(agent.twins[0].devices(0).device(), "dev-1");
  EXPECT_EQ(agent.twins[0].devices(0).desired_version(), 1u);
  h.clock.advance(ControllerOptions{}.resend_interval);
  agent.heartbeat(0);
  EXPECT_EQ(agent.twins.size(), 1u);  // once per hub process
  FakeAgent other(h.broker, "n2");
  other.hello(0);
  other.heartbeat(0);
  ASSERT_EQ(other.twins.size(), 1u);  // the hello's list was the full list
}

TEST(DevicesTest, EveryShardFindsItsDevices) {
  ControllerOptions options;
  options.shards = 4;
  std::vector<std::unique_ptr<Store>> stores;
  std::vector<Store*> shard_stores;
  auto control = Store::open(":memory:");
  ASSERT_TRUE(control.ok());
  for (int i = 0; i < 4; ++i) {
    auto s = Store::open(":memory:");
    ASSERT_TRUE(s.ok());
    shard_stores.push_back(s->get());
    stores.push_back(std::move(*s));
  }
  sync::FakeBroker broker;
  auto transport = broker.connect("hub");
  ASSERT_TRUE(transport->start().ok());
  FakeClock clock;
  Metrics metrics;
  Controller c(**control, shard_stores, clock, *transport, metrics, options);
  ASSERT_TRUE(c.start().ok());
  for (int i = 0; i < 8; ++i) {
    auto r = c.put_device("dev-" + std::to_string(i),
                          {{"node", "node-" + std::to_string(i)}, {"desired", {{"i", i}}}});
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r->code, Code::kCreated);
  }
  // Each device is in its node's shard store only.
  for (int i = 0; i < 8; ++i) {
    const std::string node = "node-" + std::to_string(i);
    const uint32_t shard = sync::shard_of(node, 4);
    for (uint32_t s = 0; s < 4; ++s) {
      auto d = shard_stores[s]->get_device("dev-" + std::to_string(i));
      ASSERT_TRUE(d.ok());
      EXPECT_EQ(d->has_value(), s == shard) << node << " shard " << s;
    }
    auto v = c.device_view("dev-" + std::to_string(i));
    ASSERT_TRUE(v.ok() && v->has_value());
    EXPECT_EQ((**v)["desired"]["i"], i);
  }
  EXPECT_EQ((*c.devices_view())["items"].size(), 8u);
  // A name is unique fleet-wide.
  auto again = c.put_device("dev-0", {{"node", "node-5"}});
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->code, Code::kInvalid);
}

json body_of(const httplib::Result& r) {
  if (!r) return json();
  return json::parse(r->body, nullptr, false);
}

TEST(DevicesApiTest, RestCreateGetSetWithIfVersionAndDelete) {
  testing::ApiServer s;
  auto c = s.client();
  FakeAgent agent(s.harness.broker, "n1");
  agent.hello(0);
  auto r = c.Put("/api/v1/devices/dev-1", R"({"node": "n1", "desired": {"rate": 5}})",
                 "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 201) << r->body;
  EXPECT_EQ(agent.twins.back().devices(0).desired(), R"({"rate":5})");

  r = c.Get("/api/v1/devices/dev-1");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  json v = body_of(r);
  EXPECT_EQ(v["desiredVersion"], 1);
  EXPECT_EQ(v["delta"], json({{"rate", 5}}));

  // Two writers read version 1; the first wins, the second gets 409 and changes nothing.
  r = c.Patch("/api/v1/devices/dev-1/desired", R"({"desired": {"rate": 6}, "ifVersion": 1})",
              "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(body_of(r)["desiredVersion"], 2);
  const size_t sent = agent.twins.size();
  r = c.Post("/api/v1/devices/dev-1/desired", R"({"desired": {"rate": 7}, "ifVersion": 1})",
             "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 409) << r->body;
  EXPECT_TRUE(body_of(r).contains("error"));
  EXPECT_EQ(agent.twins.size(), sent);
  EXPECT_EQ(body_of(c.Get("/api/v1/devices/dev-1"))["desired"], json({{"rate", 6}}));

  r = c.Patch("/api/v1/devices/dev-1/desired", R"({"desired": {"rate": )", "application/json");
  EXPECT_EQ(r->status, 400);
  r = c.Patch("/api/v1/devices/dev-1/desired", R"({"desired": {}, "ifVersion": -1})",
              "application/json");
  EXPECT_EQ(r->status, 400);
  r = c.Patch("/api/v1/devices/nope/desired", R"({"desired": {}})", "application/json");
  EXPECT_EQ(r->status, 404);

  r = c.Get("/api/v1/devices?node=n1");
  ASSERT_TRUE(r);
  EXPECT_EQ(body_of(r)["items"].size(), 1u);
  EXPECT_EQ(body_of(c.Get("/api/v1/devices?node=n2"))["items"].size(), 0u);

  r = c.Delete("/api/v1/devices/dev-1");
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(c.Get("/api/v1/devices/dev-1")->status, 404);
  EXPECT_EQ(c.Delete("/api/v1/devices/dev-1")->status, 404);
}

TEST(DevicesApiTest, WatchStreamsTwinChangesFromTheListsResourceVersion) {
  testing::ApiServer s;
  auto c = s.client();
  FakeAgent n1(s.harness.broker, "n1");
  n1.hello(0);
  FakeAgent n2(s.harness.broker, "n2");
  n2.hello(0);
  put(s.harness, "dev-1", {{"node", "n1"}, {"desired", {{"rate", 5}}}});
  s.settle();
  json list = body_of(c.Get("/api/v1/devices"));
  ASSERT_EQ(list["items"].size(), 1u);
  const std::string rv = list["resourceVersion"];
  EXPECT_EQ(rv, std::to_string(s.watch.version()));
  testing::SseWatch all(s.port, "/api/v1/devices?watch=true&resourceVersion=" + rv);
  testing::SseWatch one(s.port, "/api/v1/devices/dev-1?watch=true&resourceVersion=" + rv);
  testing::SseWatch of_n2(s.port, "/api/v1/devices?watch=true&node=n2&resourceVersion=" + rv);

  auto r = c.Patch("/api/v1/devices/dev-1/desired", R"({"desired": {"rate": 6}, "ifVersion": 1})",
                   "application/json");
  ASSERT_EQ(r->status, 200) << r->body;
  s.settle();
  n1.report("dev-1", R"({"rate":6})", 1, 2, 2);
  s.settle();
  put(s.harness, "dev-2", {{"node", "n2"}});
  s.settle();
  ASSERT_EQ(c.Delete("/api/v1/devices/dev-1")->status, 200);

  ASSERT_TRUE(all.wait_events(4)) << all.raw();
  EXPECT_EQ(all.summary(), (std::vector<std::string>{"MODIFIED dev-1", "MODIFIED dev-1",
                                                     "ADDED dev-2", "DELETED dev-1"}));
  auto events = all.events();
  EXPECT_EQ(events[0].data["object"]["desiredVersion"], 2);
  EXPECT_EQ(events[0].data["object"]["reportedVersion"], 0);
  EXPECT_EQ(events[1].data["object"]["reportedVersion"], 1);
  EXPECT_EQ(events[1].data["object"]["observedDesired"], 2);
  ASSERT_TRUE(one.wait_events(3)) << one.raw();
  EXPECT_EQ(one.summary(),
            (std::vector<std::string>{"MODIFIED dev-1", "MODIFIED dev-1", "DELETED dev-1"}));
  ASSERT_TRUE(of_n2.wait_events(1)) << of_n2.raw();
  EXPECT_EQ(of_n2.summary(), std::vector<std::string>{"ADDED dev-2"});

  // Resuming from the id of the first event replays what came after it.
  testing::SseWatch again(s.port, "/api/v1/devices?watch=true&resourceVersion=" + events[0].id);
  ASSERT_TRUE(again.wait_events(3)) << again.raw();
  EXPECT_EQ(again.summary(),
            (std::vector<std::string>{"MODIFIED dev-1", "ADDED dev-2", "DELETED dev-1"}));

  // Paged like the other lists.
  put(s.harness, "dev-3", {{"node", "n2"}});
  json page = body_of(c.Get("/api/v1/devices?limit=1"));
  ASSERT_EQ(page["items"].size(), 1u);
  EXPECT_EQ(page["items"][0]["name"], "dev-2");
  page = body_of(c.Get("/api/v1/devices?limit=1&continue=" + page["continue"].get<std::string>()));
  ASSERT_EQ(page["items"].size(), 1u);
  EXPECT_EQ(page["items"][0]["name"], "dev-3");
  EXPECT_EQ(page["continue"], "");
}

TEST(DevicesFlotctlTest, TwinSetValuesAreJsonWhenTheyParseElseStrings) {
  auto p = flotctl::twin_patch(
      {"rate=5", "mode=eco", "on=true", "gone=null", "a.b=\"x\"", "list=[1,2]", "text=5 apples"});
  ASSERT_TRUE(p.ok()) << p.error().message();
  EXPECT_EQ(*p, json({{"rate", 5},
                      {"mode", "eco"},
                      {"on", true},
                      {"gone", nullptr},
                      {"a", {{"b", "x"}}},
                      {"list", {1, 2}},
                      {"text", "5 apples"}}));
  EXPECT_FALSE(flotctl::twin_patch({"novalue"}).ok());
  EXPECT_FALSE(flotctl::twin_patch({"=1"}).ok());
  EXPECT_FALSE(flotctl::twin_patch({"a..b=1"}).ok());
  EXPECT_FALSE(flotctl::twin_patch({}).ok());
}

TEST(DevicesFlotctlTest, TwinGetSetAndGetDevices) {
  testing::ApiServer s;
  auto run = [&](std::vector<std::string> args, std::string* out = nullptr) {
    std::ostringstream o, e;
    flotctl::Context ctx;
    ctx.default_hub = s.url();
    int rc = flotctl::run(args, ctx, o, e);
    if (out != nullptr) *out = o.str() + e.str();
    return rc;
  };
  put(s.harness, "dev-1", {{"node", "n1"}, {"desired", {{"rate", 5}}}});
  std::string out;
  EXPECT_EQ(run({"twin", "set", "dev-1", "rate=6", "mode=eco", "--if-version", "1"}, &out), 0)
      << out;
  EXPECT_EQ(out, "device/dev-1 desired version 2\n");
  // A stale version: refused, nothing changed.
  EXPECT_EQ(run({"twin", "set", "dev-1", "rate=7", "--if-version", "1"}, &out), 1);
  EXPECT_NE(out.find("error: "), std::string::npos) << out;
  EXPECT_EQ(run({"twin", "set", "dev-1", "rate=null"}, &out), 0) << out;
  EXPECT_EQ(run({"twin", "get", "dev-1"}, &out), 0) << out;
  EXPECT_NE(out.find(R"(Desired (v3):     {"mode":"eco"})"), std::string::npos) << out;
  EXPECT_EQ(run({"twin", "get", "dev-1", "-o", "json"}, &out), 0);
  EXPECT_EQ(json::parse(out)["desired"], json({{"mode", "eco"}}));
  EXPECT_EQ(run({"get", "devices"}, &out), 0);
  EXPECT_NE(out.find("dev-1"), std::string::npos) << out;
  EXPECT_NE(out.find("mode"), std::string::npos) << out;  // the delta's keys
  EXPECT_EQ(run({"twin", "set", "dev-1"}, &out), 2);
  EXPECT_EQ(run({"twin", "set", "dev-1", "a=1", "--if-version", "x"}, &out), 2);
  EXPECT_EQ(run({"delete", "devices", "dev-1"}, &out), 0) << out;
  EXPECT_EQ(run({"twin", "get", "dev-1"}, &out), 1);
}

}  // namespace
}  // namespace flotilla::hub
