// OTA rollouts (UpdateRollouts) kept in PostgreSQL, as hub instances sharing a database keep
// them: the instance that takes over driving loads a rollout where the last driver left it,
// asks its unfinished nodes again and carries it to the end; generations stay unique across
// drivers.
#include <gtest/gtest.h>

#include "cloud-hub/store_pg.hpp"
#include "test/hub/ota_harness.hpp"
#include "test/support/postgres.hpp"

namespace flotilla::hub::testing {
namespace {

using Code = RolloutOutcome::Code;
using flotilla::testing::Postgres;

RolloutManifest canary_rollout(const std::string& name) {
  auto all = parse_all_manifests(
      "apiVersion: flotilla/v1\nkind: Rollout\nmetadata: {name: " + name +
          "}\nspec:\n  artifact: {name: fw, version: '2.0'}\n"
          "  selector: {matchLabels: {ring: canary}}\n  waves: [{count: 1}, {percent: 100}]\n",
      "test.yaml");
  if (!all || all->rollouts.size() != 1) {
    ADD_FAILURE() << (all ? "not one rollout" : all.error().message());
    return {};
  }
  return all->rollouts.front();
}

TEST(RolloutsPg, TheNextDriverCarriesARolloutOnFromTheDatabase) {
  if (auto why = Postgres::unavailable_reason(); !why.empty()) GTEST_SKIP() << why;
  Postgres server;
  ASSERT_TRUE(server.start());
  auto info = server.create_database("ota");
  ASSERT_TRUE(info) << info.error().message();
  OtaHarness ota;
  ota.open_db = [&]() -> std::unique_ptr<db::Conn> {
    auto conn = db::open_postgres(*info, "ota");
    EXPECT_TRUE(conn) << conn.error().message();
    return conn ? std::move(*conn) : nullptr;
  };
  ota.reopen();  // the first driver, over PostgreSQL
  ota.upload("fw", "2.0");
  FakeAgent n1(ota.hub.broker, "n1");
  FakeAgent n2(ota.hub.broker, "n2");
  n1.hello(0, {{"ring", "canary"}});
  n2.hello(0, {{"ring", "canary"}});
  ASSERT_EQ(ota.rollouts->apply(canary_rollout("fw-2")).code, Code::kCreated);
  ASSERT_EQ(n1.assignments.size(), 1u);
  n1.update_report(pb::UPDATE_COMMITTED);
  ASSERT_EQ(n2.assignments.size(), 1u);  // wave 2
  const uint64_t gen2 = n2.assignments.back().generation();
  n2.update_report(pb::UPDATE_INSTALLING);

  // Another instance takes over: the first lets go, the second loads and drives.
  UpdateRolloutsOptions o;
  o.public_url = "http://hub-b.test:8080";
  UpdateRollouts next(ota.hub.clock, *ota.hub.hub_transport, *ota.artifacts, *ota.hub.controller,
                      o);
  next.set_driving(false);
  ASSERT_TRUE(next.open(ota.open_db()));
  EXPECT_FALSE(next.view("fw-2").has_value());
  ota.rollouts->set_driving(false);
  next.set_driving(true);
  ota.hub.sync_server->set_rollouts(&next);
  auto view = next.view("fw-2");
  ASSERT_TRUE(view.has_value());
  EXPECT_EQ((*view)["status"]["phase"], "Progressing");
  EXPECT_EQ((*view)["status"]["counts"]["succeeded"], 1);
  EXPECT_EQ(n1.assignments.size(), 1u);  // finished: not asked again
  ASSERT_EQ(n2.assignments.size(), 2u);  // asked where it stands, same generation
  EXPECT_EQ(n2.assignments.back().generation(), gen2);
  EXPECT_EQ(n2.assignments.back().payload_url(),
            "http://hub-b.test:8080/api/v1/artifacts/fw/2.0/payload");
  n2.update_report(pb::UPDATE_COMMITTED);
  view = next.view("fw-2");
  ASSERT_TRUE(view.has_value());
  EXPECT_EQ((*view)["status"]["phase"], "Completed");
  EXPECT_EQ((*view)["status"]["counts"]["succeeded"], 2);

  // Generations are never handed out twice, whichever instance drove.
  ASSERT_EQ(next.remove("fw-2").code, Code::kOk);
  ASSERT_EQ(next.apply(canary_rollout("fw-2b")).code, Code::kCreated);
  ASSERT_EQ(n1.assignments.size(), 2u);
  EXPECT_GT(n1.assignments.back().generation(), gen2);
  ota.hub.sync_server->set_rollouts(nullptr);
}

}  // namespace
}  // namespace flotilla::hub::testing
