#include "agent/reconciler.hpp"

#include <gtest/gtest.h>

#include <algorithm>

#include "common/sqlite.hpp"
#include "test/agent/fake_driver.hpp"
#include "test/agent/specs.hpp"
#include "test/support/temp_dir.hpp"

namespace flotilla::agent {
namespace {

using testing::container_spec;
using testing::FakeDriver;
using testing::process_spec;
using PrepState = runtime::Preparation::State;

class ReconcilerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto s = Store::open(dir_ / "agent.db", "edge-1");
    ASSERT_TRUE(s.ok()) << s.error().message();
    store_ = std::move(*s);
    reconciler_ = make_reconciler();
  }

  std::unique_ptr<Reconciler> make_reconciler() {
    return std::make_unique<Reconciler>("edge-1", config_, *store_, driver_, clock_);
  }

  // Simulates an agent restart (kill -9): a new Reconciler over the same store and node.
  void restart_agent() {
    reconciler_ = make_reconciler();
    ASSERT_TRUE(reconciler_->recover().ok());
  }

  void desire(const std::vector<v1::WorkloadSpec>& specs) {
    ASSERT_TRUE(store_->apply_desired(true, specs, {}, ++revision_).ok());
  }

  void advance(int64_t ms) { clock_.advance(Millis(ms)); }
  void tick() { reconciler_->tick(); }

  std::vector<InstanceRecord> instances() { return *store_->load_instances(); }
  InstanceRecord only_instance() {
    auto all = instances();
    EXPECT_EQ(all.size(), 1u);
    return all.empty() ? InstanceRecord{} : all[0];
  }
  std::vector<std::string> event_reasons() {
    std::vector<std::string> out;
    auto rows = store_->outbox_events();
    for (const auto& row : *rows) {
      v1::Event e;
      e.ParseFromString(row.record);
      out.push_back(e.reason());
    }
    return out;
  }

  flotilla::testing::TempDir dir_;
  ReconcilerConfig config_;
  FakeClock clock_;
  FakeDriver driver_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<Reconciler> reconciler_;
  uint64_t revision_ = 0;
};

TEST_F(ReconcilerTest, StartsDesiredProcessWithFlotillaEnvironment) {
  desire({process_spec("web")});
  tick();
  ASSERT_EQ(driver_.launches.size(), 1u);
  const auto& launch = driver_.launches[0];
  EXPECT_EQ(launch.instance_id, "web-1");
  EXPECT_EQ(launch.command, (std::vector<std::string>{"/bin/sleep", "1000"}));
  EXPECT_EQ(launch.env.at("FLOTILLA_NODE"), "edge-1");
  EXPECT_EQ(launch.env.at("FLOTILLA_WORKLOAD"), "web");
  EXPECT_EQ(launch.env.at("FLOTILLA_INSTANCE"), "web-1");
  EXPECT_EQ(launch.env.at("GREETING"), "hello");
  InstanceRecord rec = only_instance();
  EXPECT_EQ(rec.phase, v1::PHASE_RUNNING);
  EXPECT_EQ(rec.pid, 100);
  EXPECT_EQ(reconciler_->running_count(), 1u);
  EXPECT_EQ(event_reasons(), (std::vector<std::string>{"Starting", "Started"}));

  tick();
  advance(60'000);
  tick();
  EXPECT_EQ(driver_.launches.size(), 1u) << "a healthy instance is left alone";
}

TEST_F(ReconcilerTest, CrashRestartsWithExponentialBackoff) {
  desire({process_spec("web")});
  tick();
  for (int64_t delay : {1000, 2000, 4000, 8000}) {
    size_t launches = driver_.launches.size();
    driver_.crash("web-1", 9);
    tick();
    InstanceRecord rec = only_instance();
    EXPECT_EQ(rec.phase, v1::PHASE_BACKOFF);
    EXPECT_EQ(rec.exit_code, 137);
    EXPECT_NE(rec.message.find("killed by signal 9"), std::string::npos) << rec.message;
    advance(delay - 1);
    tick();
    EXPECT_EQ(driver_.launches.size(), launches) << "restarted before its backoff of " << delay;
    advance(1);
    tick();
    ASSERT_EQ(driver_.launches.size(), launches + 1) << "not restarted after " << delay;
    rec = only_instance();
    EXPECT_EQ(rec.phase, v1::PHASE_RUNNING);
    EXPECT_EQ(rec.instance_id, "web-1");
    EXPECT_EQ(rec.restarts, static_cast<uint32_t>(launches));
  }
}

TEST_F(ReconcilerTest, BackoffIsCappedAndResetsAfterALongRun) {
  config_.backoff_max = Millis(3000);
  reconciler_ = make_reconciler();
  desire({process_spec("web")});
  tick();
  auto crash_and_measure = [&] {
    driver_.crash("web-1", 9);
    tick();
    int64_t waited = 0;
    size_t launches = driver_.launches.size();
    while (driver_.launches.size() == launches && waited < 100'000) {
      advance(100);
      waited += 100;
      tick();
    }
    return waited;
  };
  EXPECT_EQ(crash_and_measure(), 1000);
  EXPECT_EQ(crash_and_measure(), 2000);
  EXPECT_EQ(crash_and_measure(), 3000);
  EXPECT_EQ(crash_and_measure(), 3000);
  advance(10'000);  // ran long enough: the next crash starts over
  tick();
  EXPECT_EQ(crash_and_measure(), 1000);
}

TEST_F(ReconcilerTest, OnFailureRestartsOnlyFailures) {
  desire({process_spec("ok", "h1", v1::RESTART_ON_FAILURE),
          process_spec("bad", "h1", v1::RESTART_ON_FAILURE)});
  tick();
  driver_.exit("ok-2", 0);
  driver_.exit("bad-1", 3);
  tick();
  advance(5000);
  tick();
  for (const auto& rec : instances()) {
    if (rec.workload == "ok") {
      EXPECT_EQ(rec.phase, v1::PHASE_SUCCEEDED);
      EXPECT_EQ(rec.restarts, 0u);
    } else {
      EXPECT_EQ(rec.phase, v1::PHASE_RUNNING);
      EXPECT_EQ(rec.restarts, 1u);
      EXPECT_EQ(rec.exit_code, 3);
    }
  }
  EXPECT_EQ(driver_.launches.size(), 3u);
}

TEST_F(ReconcilerTest, NeverLeavesAFailedInstanceFailed) {
  desire({process_spec("job", "h1", v1::RESTART_NEVER)});
  tick();
  driver_.exit("job-1", 3);
  tick();
  advance(120'000);
  tick();
  InstanceRecord rec = only_instance();
  EXPECT_EQ(rec.phase, v1::PHASE_FAILED);
  EXPECT_EQ(rec.exit_code, 3);
  EXPECT_EQ(rec.message, "exited with code 3");
  EXPECT_EQ(driver_.launches.size(), 1u);
}

TEST_F(ReconcilerTest, SpecChangeStopsOldThenStartsNew) {
  desire({process_spec("web", "h1")});
  tick();
  desire({process_spec("web", "h2")});
  tick();
  EXPECT_EQ(driver_.instances.at("web-1").terms, 1);
  EXPECT_EQ(driver_.launches.size(), 1u) << "new instance started before the old one stopped";
  tick();
  ASSERT_EQ(driver_.launches.size(), 2u);
  EXPECT_EQ(driver_.launches[1].instance_id, "web-2");
  InstanceRecord rec = only_instance();
  EXPECT_EQ(rec.spec_hash, "h2");
  EXPECT_EQ(rec.phase, v1::PHASE_RUNNING);
  bool removal_queued = false;
  auto rows = store_->outbox_statuses();
  for (const auto& row : *rows) {
    v1::InstanceStatus st;
    st.ParseFromString(row.record);
    if (st.instance_id() == "web-1") removal_queued = st.removed();
  }
  EXPECT_TRUE(removal_queued);
}

TEST_F(ReconcilerTest, DeleteTerminatesThenKillsAfterGrace) {
  desire({process_spec("web")});
  tick();
  driver_.instances.at("web-1").ignores_term = true;
  desire({});
  tick();
  EXPECT_EQ(driver_.instances.at("web-1").terms, 1);
  EXPECT_EQ(only_instance().phase, v1::PHASE_TERMINATING);
  advance(9999);
  tick();
  EXPECT_EQ(driver_.instances.at("web-1").kills, 0) << "killed before the 10 s grace";
  advance(1);
  tick();
  EXPECT_EQ(driver_.instances.count("web-1") == 0 || driver_.instances.at("web-1").kills == 1,
            true);
  tick();
  EXPECT_TRUE(instances().empty());
  EXPECT_EQ(driver_.instances.count("web-1"), 0u) << "runtime state not cleaned up";
  EXPECT_EQ(reconciler_->running_count(), 0u);
}

TEST_F(ReconcilerTest, SpecGraceOverridesDefault) {
  auto spec = process_spec("web");
  spec.set_termination_grace_ms(2000);
  desire({spec});
  tick();
  driver_.instances.at("web-1").ignores_term = true;
  desire({});
  tick();
  advance(1999);
  tick();
  EXPECT_EQ(driver_.instances.at("web-1").kills, 0);
  advance(1);
  tick();
  EXPECT_EQ(driver_.instances.at("web-1").kills, 1);
}

TEST_F(ReconcilerTest, ZeroGraceKillsWithoutWaiting) {
  auto spec = process_spec("web");
  spec.set_termination_grace_ms(0);  // explicitly zero: not "use the default"
  desire({spec});
  tick();
  driver_.instances.at("web-1").ignores_term = true;
  desire({});
  tick();
  tick();
  EXPECT_TRUE(driver_.instances.count("web-1") == 0 || driver_.instances.at("web-1").kills == 1)
      << "an explicit grace of 0 must not wait the 10 s default";
}

TEST_F(ReconcilerTest, UnavailableRuntimeIsReportedNotRun) {
  auto vm = process_spec("vm1");
  vm.set_type("container");
  desire({vm, process_spec("web")});
  tick();
  tick();
  ASSERT_EQ(driver_.launches.size(), 1u);
  EXPECT_EQ(driver_.launches[0].workload, "web");
  auto all = instances();
  ASSERT_EQ(all.size(), 2u);
  auto it = std::find_if(all.begin(), all.end(), [](auto& r) { return r.workload == "vm1"; });
  ASSERT_NE(it, all.end());
  EXPECT_EQ(it->phase, v1::PHASE_FAILED);
  EXPECT_EQ(it->message, "runtime 'container' is not available on this node");
}

TEST_F(ReconcilerTest, LaunchFailureBacksOffAndRecovers) {
  driver_.fail_launch = true;
  desire({process_spec("web")});
  tick();
  InstanceRecord rec = only_instance();
  EXPECT_EQ(rec.phase, v1::PHASE_BACKOFF);
  EXPECT_NE(rec.message.find("no such command"), std::string::npos) << rec.message;
  driver_.fail_launch = false;
  advance(1000);
  tick();
  EXPECT_EQ(only_instance().phase, v1::PHASE_RUNNING);
}

TEST_F(ReconcilerTest, RecoveryAdoptsRunningInstancesInsteadOfDuplicating) {
  desire({process_spec("web"), process_spec("db")});
  tick();
  ASSERT_EQ(driver_.launches.size(), 2u);
  restart_agent();
  tick();
  advance(1000);
  tick();
  EXPECT_EQ(driver_.launches.size(), 2u);
  EXPECT_EQ(driver_.running().size(), 2u);
  EXPECT_EQ(reconciler_->running_count(), 2u);
  // The adopted instance is still supervised: a crash is noticed and restarted.
  driver_.crash("web-2", 9);
  tick();
  advance(1000);
  tick();
  EXPECT_EQ(driver_.launches.size(), 3u);
}

TEST_F(ReconcilerTest, RecoveryKillsAndCleansUpOrphans) {
  desire({process_spec("web")});
  tick();
  driver_.plant("ghost-7");
  restart_agent();
  EXPECT_EQ(driver_.instances.count("ghost-7"), 0u);
  EXPECT_NE(std::find(driver_.cleanups.begin(), driver_.cleanups.end(), "ghost-7"),
            driver_.cleanups.end());
  EXPECT_EQ(driver_.running(), (std::vector<std::string>{"web-1"}));
}

TEST_F(ReconcilerTest, RecoveryAdoptsInstanceLaunchedJustBeforeCrash) {
  // The agent recorded its intent (STARTING), launched, and died before recording the handle.
  desire({process_spec("web")});
  InstanceRecord rec;
  rec.workload = "web";
  rec.spec_hash = "h1";
  rec.phase = v1::PHASE_STARTING;
  ASSERT_TRUE(store_->create_instance(rec, {"web", "Starting", "", 0}).ok());
  runtime::LaunchSpec ls;
  ls.instance_id = rec.instance_id;
  ASSERT_TRUE(driver_.launch(ls).ok());
  restart_agent();
  tick();
  EXPECT_EQ(driver_.launches.size(), 1u) << "started a duplicate";
  InstanceRecord after = only_instance();
  EXPECT_EQ(after.phase, v1::PHASE_RUNNING);
  EXPECT_EQ(after.pid, driver_.instances.at(rec.instance_id).handle.pid);
}

TEST_F(ReconcilerTest, RecoveryLaunchesStartingRowThatNeverLaunched) {
  desire({process_spec("web")});
  InstanceRecord rec;
  rec.workload = "web";
  rec.spec_hash = "h1";
  rec.phase = v1::PHASE_STARTING;
  ASSERT_TRUE(store_->create_instance(rec, {"web", "Starting", "", 0}).ok());
  restart_agent();
  tick();
  tick();
  ASSERT_EQ(driver_.launches.size(), 1u);
  EXPECT_EQ(driver_.launches[0].instance_id, rec.instance_id);
  EXPECT_EQ(only_instance().phase, v1::PHASE_RUNNING);
}

TEST_F(ReconcilerTest, RecoveryTreatsVanishedInstanceAsExited) {
  desire({process_spec("web")});
  tick();
  driver_.instances.clear();  // e.g. the node rebooted
  restart_agent();
  InstanceRecord rec = only_instance();
  EXPECT_EQ(rec.phase, v1::PHASE_BACKOFF);
  EXPECT_EQ(rec.exit_code, -1);
  advance(1000);
  tick();
  EXPECT_EQ(only_instance().phase, v1::PHASE_RUNNING);
  EXPECT_EQ(driver_.launches.size(), 2u);
}

TEST_F(ReconcilerTest, RecoveryKeepsBackoffDeadline) {
  desire({process_spec("web")});
  tick();
  driver_.crash("web-1", 9);
  tick();
  advance(400);
  restart_agent();
  advance(500);
  tick();
  EXPECT_EQ(driver_.launches.size(), 1u);
  advance(100);
  tick();
  EXPECT_EQ(driver_.launches.size(), 2u);
}

TEST_F(ReconcilerTest, RecoveryFinishesAStopInProgress) {
  desire({process_spec("web")});
  tick();
  driver_.instances.at("web-1").ignores_term = true;
  desire({});
  tick();
  advance(6000);
  restart_agent();
  advance(4000);
  tick();
  EXPECT_EQ(driver_.instances.count("web-1") == 0 || driver_.instances.at("web-1").kills == 1,
            true);
  tick();
  EXPECT_TRUE(instances().empty());
}

TEST_F(ReconcilerTest, DuplicateInstancesAreReducedToOne) {
  desire({process_spec("web")});
  tick();
  // A second running instance of the same spec (e.g. from an older agent's bug).
  InstanceRecord dup;
  dup.workload = "web";
  dup.spec_hash = "h1";
  dup.phase = v1::PHASE_STARTING;
  ASSERT_TRUE(store_->create_instance(dup, {"web", "Starting", "", 0}).ok());
  runtime::LaunchSpec ls;
  ls.instance_id = dup.instance_id;
  ASSERT_TRUE(driver_.launch(ls).ok());
  restart_agent();
  tick();
  tick();
  EXPECT_EQ(driver_.running().size(), 1u);
  EXPECT_EQ(instances().size(), 1u);
}

TEST_F(ReconcilerTest, UnreadableDesiredStateStopsNothing) {
  desire({process_spec("web")});
  tick();
  auto other = sql::Db::open(dir_ / "agent.db");
  ASSERT_TRUE(other->exec("UPDATE desired SET spec = x'ffffffff' WHERE name = 'web'").ok());
  ASSERT_TRUE(store_->apply_desired(false, {process_spec("db")}, {}, ++revision_).ok());
  tick();
  advance(30'000);
  tick();
  EXPECT_EQ(driver_.running(), std::vector<std::string>{"web-1"});
  EXPECT_EQ(driver_.instances.at("web-1").terms, 0);
  EXPECT_GT(reconciler_->error_count(), 0u);
  auto fresh = make_reconciler();
  EXPECT_FALSE(fresh->recover().ok()) << "an unreadable store must not be run from";
}

TEST_F(ReconcilerTest, ContainerWaitsInPendingWhileItsImageIsPulled) {
  config_.runtimes = {"process", "container"};
  reconciler_ = make_reconciler();
  driver_.preparing["reg/app:1"] = {PrepState::kInProgress, "pulling 'reg/app:1': 1/3 blobs"};
  desire({container_spec("app", "reg/app:1")});
  tick();
  EXPECT_TRUE(driver_.launches.empty()) << "launched before its image was on the node";
  InstanceRecord rec = only_instance();
  EXPECT_EQ(rec.phase, v1::PHASE_PENDING);
  EXPECT_EQ(rec.reason, "Pulling");
  EXPECT_EQ(rec.message, "pulling 'reg/app:1': 1/3 blobs");

  // The registry is down: the status says so and why, and nothing starts.
  driver_.preparing["reg/app:1"] = {PrepState::kFailed,
                                    "Failed to pull 'reg/app:1': connection refused; retrying "
                                    "in 4 s"};
  tick();
  rec = only_instance();
  EXPECT_EQ(rec.phase, v1::PHASE_PENDING);
  EXPECT_EQ(rec.reason, "PullBackOff");
  EXPECT_NE(rec.message.find("connection refused"), std::string::npos);
  EXPECT_TRUE(driver_.launches.empty());
  size_t events = event_reasons().size();
  tick();
  EXPECT_EQ(event_reasons().size(), events) << "an unchanged failure is recorded once";

  // It recovers by itself once the pull succeeds.
  driver_.preparing.clear();
  tick();
  ASSERT_EQ(driver_.launches.size(), 1u);
  const auto& launch = driver_.launches[0];
  EXPECT_EQ(launch.type, "container");
  EXPECT_EQ(launch.container.image, "reg/app:1");
  EXPECT_EQ(launch.container.args, (std::vector<std::string>{"--serve"}));
  EXPECT_EQ(launch.env.at("MODE"), "edge");
  EXPECT_EQ(launch.env.at("FLOTILLA_INSTANCE"), "app-1");
  EXPECT_EQ(launch.env.count("PATH"), 0u) << "containers keep their image's PATH";
  EXPECT_EQ(launch.memory_bytes, 64 << 20);
  rec = only_instance();
  EXPECT_EQ(rec.phase, v1::PHASE_RUNNING);
  EXPECT_TRUE(rec.reason.empty());
  EXPECT_TRUE(rec.ready);
  auto reasons = event_reasons();
  EXPECT_EQ(reasons.front(), "Pulling");
  EXPECT_EQ(reasons.back(), "Started");
}

TEST_F(ReconcilerTest, ImageUpdateIsPulledWhileTheOldInstanceRuns) {
  config_.runtimes = {"process", "container"};
  reconciler_ = make_reconciler();
  desire({container_spec("app", "reg/app:1", "c1")});
  tick();
  ASSERT_EQ(driver_.running(), (std::vector<std::string>{"app-1"}));

  driver_.preparing["reg/app:2"] = {PrepState::kInProgress, "pulling 'reg/app:2': 0/3 blobs"};
  desire({container_spec("app", "reg/app:2", "c2")});
  tick();
  tick();
  EXPECT_EQ(driver_.instances.at("app-1").terms, 0) << "stopped before the new image was pulled";
  EXPECT_EQ(driver_.launches.size(), 1u);
  InstanceRecord rec = only_instance();
  EXPECT_EQ(rec.phase, v1::PHASE_RUNNING);
  EXPECT_EQ(rec.reason, "UpdatePulling");
  EXPECT_NE(std::find(driver_.prepares.begin(), driver_.prepares.end(), "reg/app:2"),
            driver_.prepares.end());

  driver_.preparing.clear();  // pulled
  tick();
  EXPECT_EQ(driver_.instances.at("app-1").terms, 1);
  tick();
  ASSERT_EQ(driver_.launches.size(), 2u);
  EXPECT_EQ(driver_.launches[1].container.image, "reg/app:2");
  rec = only_instance();
  EXPECT_EQ(rec.spec_hash, "c2");
  EXPECT_EQ(rec.phase, v1::PHASE_RUNNING);
}

TEST_F(ReconcilerTest, PendingInstanceSurvivesAnAgentRestart) {
  config_.runtimes = {"process", "container"};
  reconciler_ = make_reconciler();
  driver_.preparing["reg/app:1"] = {PrepState::kInProgress, "pulling"};
  desire({container_spec("app", "reg/app:1")});
  tick();
  restart_agent();
  tick();
  EXPECT_EQ(only_instance().phase, v1::PHASE_PENDING);
  driver_.preparing.clear();
  tick();
  EXPECT_EQ(driver_.launches.size(), 1u);
  EXPECT_EQ(only_instance().instance_id, "app-1") << "no second instance after the restart";
}

TEST_F(ReconcilerTest, OomKilledIsTheReasonInStatus) {
  desire({process_spec("web")});
  tick();
  driver_.crash("web-1", 9);
  driver_.oom_message = "OOMKilled: exceeded its memory limit of 64 MiB";
  tick();
  InstanceRecord rec = only_instance();
  EXPECT_EQ(rec.reason, "OOMKilled");
  EXPECT_EQ(rec.exit_code, 137);
  EXPECT_FALSE(rec.ready);
  EXPECT_EQ(to_status(rec).reason(), "OOMKilled");
}

}  // namespace
}  // namespace flotilla::agent
