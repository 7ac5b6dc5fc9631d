// Instance startup latency (flotilla_hub_instance_startup_seconds): from the desired revision
// that adds or changes a workload on a node to that instance's first Running report, by the
// hub's monotonic clock; and the Metrics histogram that carries it to /metrics.
#include <gtest/gtest.h>

#include "test/hub/fake_agent.hpp"
#include "test/support/temp_dir.hpp"

namespace flotilla::hub {
namespace {

using testing::FakeAgent;
using testing::HubHarness;
using testing::instance;
using testing::process_workload;
namespace pb = flotilla::v1;

constexpr const char* kName = "flotilla_hub_instance_startup_seconds";

pb::InstanceStatus running(const std::string& workload, const std::string& id,
                           const std::string& hash, uint64_t seq) {
  pb::InstanceStatus s = instance(workload, id, pb::PHASE_RUNNING, seq);
  s.set_spec_hash(hash);
  return s;
}

// The spec hash of `workload` in the last DesiredState the agent received.
std::string last_hash(const FakeAgent& agent, const std::string& workload) {
  if (agent.desired.empty()) return "";
  for (const auto& u : agent.desired.back().upserts()) {
    if (u.name() == workload) return u.spec_hash();
  }
  return "";
}

TEST(MetricsHistogram, RendersCumulativeBucketsSumAndCount) {
  Metrics m;
  const std::vector<double> bounds = {0.5, 1, 10};
  m.observe_histogram("lat_seconds", 0.3, bounds);
  m.observe_histogram("lat_seconds", 0.5, bounds);  // on a bound: that bucket
  m.observe_histogram("lat_seconds", 7, bounds);
  m.observe_histogram("lat_seconds", 99, bounds);
  const std::string text = m.render();
  EXPECT_NE(text.find("# TYPE lat_seconds histogram\n"), std::string::npos) << text;
  EXPECT_NE(text.find("lat_seconds_bucket{le=\"0.5\"} 2\n"), std::string::npos) << text;
  EXPECT_NE(text.find("lat_seconds_bucket{le=\"1\"} 2\n"), std::string::npos) << text;
  EXPECT_NE(text.find("lat_seconds_bucket{le=\"10\"} 3\n"), std::string::npos) << text;
  EXPECT_NE(text.find("lat_seconds_bucket{le=\"+Inf\"} 4\n"), std::string::npos) << text;
  EXPECT_NE(text.find("lat_seconds_sum 106.8"), std::string::npos) << text;
  EXPECT_NE(text.find("lat_seconds_count 4\n"), std::string::npos) << text;
  m.observe_histogram("by_kind", 1, bounds, {{"kind", "vm"}});
  EXPECT_NE(m.render().find("by_kind_bucket{kind=\"vm\",le=\"1\"} 1\n"), std::string::npos);
}

TEST(StartupLatency, FromTheIssuedRevisionToTheFirstRunningReportOfThatSpec) {
  HubHarness hub;
  // Scraped before any startup: there, at zero.
  EXPECT_NE(hub.metrics.render().find(std::string(kName) + "_bucket{le=\"+Inf\"} 0\n"),
            std::string::npos);
  FakeAgent agent(hub.broker, "n1");
  agent.hello(0);
  hub.apply(process_workload("web", "placement: {everyNode: true}"));
  ASSERT_EQ(agent.desired.size(), 1u);
  agent.ack_last();
  const std::string v1 = last_hash(agent, "web");
  ASSERT_FALSE(v1.empty());

  hub.clock.advance(Millis(700));
  agent.status({instance("web", "web-1", pb::PHASE_PENDING, 1)});
  EXPECT_EQ(hub.metrics.histogram(kName).count, 0u) << "Pending is not started";
  hub.clock.advance(Millis(800));
  agent.status({running("web", "web-1", v1, 2)});
  Metrics::Histogram h = hub.metrics.histogram(kName);
  ASSERT_EQ(h.count, 1u);
  EXPECT_DOUBLE_EQ(h.sum, 1.5);
  // Reported Running again (a restart, a full status): counted once.
  hub.clock.advance(Millis(5000));
  agent.status({running("web", "web-1", v1, 3)}, /*full=*/true);
  EXPECT_EQ(hub.metrics.histogram(kName).count, 1u);

  // A new spec: the old instance still reporting Running is not the new one.
  // Replacing the only running instance: past the blast-radius guard.
  auto replaced = hub.controller->apply(
      testing::manifests("apiVersion: flotilla/v1\nkind: Workload\nmetadata: {name: web}\nspec:\n"
                         "  type: process\n  placement: {everyNode: true}\n"
                         "  process: {command: [/bin/sleep, '2000']}\n"),
      /*force=*/true);
  ASSERT_TRUE(replaced.ok() && replaced->refused.empty());
  const std::string v2 = last_hash(agent, "web");
  ASSERT_FALSE(v2.empty());
  ASSERT_NE(v2, v1);
  hub.clock.advance(Millis(1000));
  agent.status({running("web", "web-1", v1, 4)});
  EXPECT_EQ(hub.metrics.histogram(kName).count, 1u) << "the old spec's instance does not count";
  hub.clock.advance(Millis(2000));
  agent.status({running("web", "web-2", v2, 5)});
  h = hub.metrics.histogram(kName);
  ASSERT_EQ(h.count, 2u);
  EXPECT_DOUBLE_EQ(h.sum, 4.5);
  EXPECT_EQ(h.counts[5], 1u) << "3 s is in the 2.5..5 bucket";
  EXPECT_EQ(h.counts[4], 1u) << "1.5 s is in the 1..2.5 bucket";
  EXPECT_NE(hub.metrics.render().find(std::string(kName) + "_count 2\n"), std::string::npos);
}

TEST(StartupLatency, AWorkloadThatLeftTheNodeBeforeRunningIsNotCounted) {
  HubHarness hub;
  FakeAgent agent(hub.broker, "n1");
  agent.hello(0);
  hub.apply(process_workload("web", "placement: {everyNode: true}"));
  const std::string v1 = last_hash(agent, "web");
  ASSERT_TRUE(hub.controller->delete_workload("web").ok());
  hub.clock.advance(Millis(30000));
  agent.status({running("web", "web-1", v1, 1)});
  EXPECT_EQ(hub.metrics.histogram(kName).count, 0u);
}

TEST(StartupLatency, AnInstanceRunningBeforeAHubRestartIsNotCounted) {
  flotilla::testing::TempDir dir;
  const std::string db = dir / "hub.db";
  std::string v1;
  {
    HubHarness hub(db);
    FakeAgent agent(hub.broker, "n1");
    agent.hello(0);
    hub.apply(process_workload("web", "placement: {everyNode: true}"));
    agent.ack_last();
    v1 = last_hash(agent, "web");
    hub.clock.advance(Millis(400));
    agent.status({running("web", "web-1", v1, 1)});
    ASSERT_EQ(hub.metrics.histogram(kName).count, 1u);
  }
  {
    // Hours later a new hub process starts; the agent says hello and reports its instance,
    // Running all along.
    HubHarness hub(db);
    hub.clock.advance(Millis(3 * 3600 * 1000));
    FakeAgent agent(hub.broker, "n1");
    agent.hello(1);
    agent.status({running("web", "web-1", v1, 1)}, /*full=*/true);
    agent.heartbeat(1, 1);
    EXPECT_EQ(hub.metrics.histogram(kName).count, 0u) << hub.metrics.render();
  }
}

TEST(StartupLatency, AStartupNeverReportedIsForgottenAfterAnHour) {
  HubHarness hub;
  FakeAgent agent(hub.broker, "n1");
  agent.hello(0);
  hub.apply(process_workload("web", "placement: {everyNode: true}"));
  const std::string v1 = last_hash(agent, "web");
  hub.clock.advance(Millis(3601 * 1000));
  agent.heartbeat(1);
  hub.controller->tick();
  EXPECT_EQ(hub.metrics.value("flotilla_hub_instance_startups_untracked_total"), 1u);
  agent.status({running("web", "web-1", v1, 1)});
  EXPECT_EQ(hub.metrics.histogram(kName).count, 0u);
}

// Startups issued at different times are each forgotten an hour after their own issue, not
// when the oldest goes (ticks skip the scan until the oldest startup is an hour old).
TEST(StartupLatency, EachStartupIsForgottenAnHourAfterItsOwnIssue) {
  HubHarness hub;
  FakeAgent agent(hub.broker, "n1");
  agent.hello(0);
  hub.apply(process_workload("web", "placement: {everyNode: true}"));
  hub.clock.advance(Millis(40 * 60 * 1000));
  agent.heartbeat(1);
  hub.controller->tick();
  hub.apply(process_workload("db", "placement: {everyNode: true}"));
  const std::string db = last_hash(agent, "db");
  hub.clock.advance(Millis(21 * 60 * 1000));  // web 61 min old, db 21 min
  agent.heartbeat(2);
  hub.controller->tick();
  EXPECT_EQ(hub.metrics.value("flotilla_hub_instance_startups_untracked_total"), 1u);
  hub.controller->tick();  // nothing more is stale
  EXPECT_EQ(hub.metrics.value("flotilla_hub_instance_startups_untracked_total"), 1u);
  hub.clock.advance(Millis(40 * 60 * 1000));  // db 61 min old
  agent.heartbeat(2);
  hub.controller->tick();
  EXPECT_EQ(hub.metrics.value("flotilla_hub_instance_startups_untracked_total"), 2u);
  agent.status({running("db", "db-1", db, 2)});
  EXPECT_EQ(hub.metrics.histogram(kName).count, 0u);
}

}  // namespace
}  // namespace flotilla::hub
