// The updater after a restart: each saved state is built in the store, a new Updater starts on
// it, and the outcome is what a user needs (resumed download, rewritten slot, finished switch,
// counted attempts). The agent target: updater_agent_test.cpp.
#include "ota/updater.hpp"
#include "test/ota/updater_fixture.hpp"

namespace flotilla::ota::testing {
namespace {

class RecoveryTest : public UpdaterFixture {
 protected:
  // The state an update of manifest() at generation 1 saves when it reaches `phase`.
  UpdateState saved(Phase phase) {
    Assignment a = assignment(manifest());
    UpdateState s;
    s.rollout = a.rollout;
    s.generation = a.generation;
    s.phase = phase;
    s.manifest = a.manifest;
    s.signature = a.signature;
    s.payload_url = a.payload_url;
    s.target = "image";
    s.version = "2.0";
    s.from_slot = "slot-a";
    s.to_slot = "slot-b";
    s.bytes_total = payload_.size();
    s.pending = phase == Phase::kHealthCheck;
    s.transitions = 4;
    return s;
  }
  void store(const UpdateState& s, const std::optional<SlotRecord>& slot = std::nullopt) {
    ASSERT_TRUE(fs::make_dirs(dir_ / "ota/downloads"));
    auto st = UpdaterStore::open(dir_ / "ota/state.db");
    ASSERT_TRUE(st) << st.error().message();
    ASSERT_TRUE((*st)->save(s, slot));
  }
  void prepare_slots(const std::string& active_slot) {
    SlotSet set = SlotSet::image(dir_ / "slots");
    ASSERT_TRUE(set.prepare());
    ASSERT_TRUE(set.point_to(active_slot));
  }
  SlotRecord installed() { return {"image", "slot-b", sha256_hex(payload_), "2.0"}; }
};

TEST_F(RecoveryTest, ADownloadResumesFromItsPartialFile) {
  store(saved(Phase::kDownloading));
  ASSERT_TRUE(
      fs::write_atomic(dir_ / "ota/downloads/g1.payload.partial", payload_.substr(0, 1'000'000)));
  auto u = make();
  EXPECT_EQ(u->state().phase, Phase::kDownloading);
  EXPECT_EQ(drive(*u), Phase::kCommitted) << u->state().message;
  EXPECT_EQ(server_.range_requests_of("payload"), 1);
  EXPECT_EQ(server_.served_of("payload"), payload_.size() - 1'000'000);
  EXPECT_EQ(slot("slot-b"), payload_);
}

TEST_F(RecoveryTest, VerifyingStartsAgainFromTheDownload) {
  store(saved(Phase::kVerifying));
  ASSERT_TRUE(fs::write_atomic(dir_ / "ota/downloads/g1.payload", payload_));
  prepare_slots("slot-a");
  auto u = make();
  EXPECT_EQ(drive(*u), Phase::kCommitted) << u->state().message;
  EXPECT_EQ(server_.requests_of("payload"), 0);
  EXPECT_EQ(slot("slot-b"), payload_);
}

TEST_F(RecoveryTest, ACorruptedDownloadFoundAfterARestartFailsTheUpdate) {
  store(saved(Phase::kVerifying));
  ASSERT_TRUE(fs::write_atomic(dir_ / "ota/downloads/g1.payload", payload_.substr(1)));
  prepare_slots("slot-a");
  auto u = make();
  EXPECT_EQ(drive(*u), Phase::kFailed);
  EXPECT_NE(u->state().message.find("digest mismatch"), std::string::npos);
  EXPECT_EQ(active(), "slot-a");
  EXPECT_EQ(slot("slot-b"), "");
}

TEST_F(RecoveryTest, AHalfWrittenSlotIsRewritten) {
  store(saved(Phase::kInstalling));
  ASSERT_TRUE(fs::write_atomic(dir_ / "ota/downloads/g1.payload", payload_));
  prepare_slots("slot-a");
  ASSERT_TRUE(fs::write_atomic(dir_ / "slots/slot-b", payload_.substr(0, 1000) + "junk"));
  ASSERT_TRUE(fs::write_atomic(dir_ / "slots/slot-b.tmp", "half"));
  auto u = make();
  EXPECT_EQ(drive(*u), Phase::kCommitted) << u->state().message;
  EXPECT_EQ(slot("slot-b"), payload_);
  EXPECT_EQ(active(), "slot-b");
}

TEST_F(RecoveryTest, ASwitchThatDidNotHappenIsRedone) {
  store(saved(Phase::kSwitching), installed());
  prepare_slots("slot-a");
  ASSERT_TRUE(fs::write_atomic(dir_ / "slots/slot-b", payload_));
  auto u = make();
  EXPECT_EQ(drive(*u), Phase::kCommitted) << u->state().message;
  EXPECT_EQ(active(), "slot-b");
  EXPECT_EQ(u->state().attempts, 0u);  // the new version was not running yet
}

TEST_F(RecoveryTest, ASwitchThatHappenedIsFinished) {
  store(saved(Phase::kSwitching), installed());
  prepare_slots("slot-b");
  ASSERT_TRUE(fs::write_atomic(dir_ / "slots/slot-b", payload_));
  auto u = make();
  EXPECT_EQ(drive(*u), Phase::kCommitted) << u->state().message;
  EXPECT_EQ(active(), "slot-b");
  EXPECT_EQ(u->running_version(), "2.0");
}

TEST_F(RecoveryTest, AHealthCheckCountsTheStartAndGoesOn) {
  store(saved(Phase::kHealthCheck), installed());
  prepare_slots("slot-b");
  auto u = make();
  EXPECT_EQ(u->state().phase, Phase::kHealthCheck);
  EXPECT_EQ(u->state().attempts, 1u);
  EXPECT_EQ(drive(*u), Phase::kCommitted);
  EXPECT_EQ(u->state().attempts, 1u);
  EXPECT_EQ(active(), "slot-b");
}

TEST_F(RecoveryTest, ARollbackKilledAfterTheFlipIsFinished) {
  store(saved(Phase::kHealthCheck), installed());
  prepare_slots("slot-a");  // the link was moved back
  auto u = make();
  EXPECT_EQ(u->state().phase, Phase::kRolledBack);
  EXPECT_EQ(active(), "slot-a");
}

TEST_F(RecoveryTest, AttemptsAreNotCountedWhenNothingIsPending) {
  for (int i = 0; i < 10; ++i) {
    auto u = make();
    EXPECT_EQ(u->state().attempts, 0u);
    EXPECT_EQ(u->state().phase, Phase::kIdle);
  }
  {
    auto u = make();
    u->assign(assignment(manifest()));
    ASSERT_EQ(drive(*u), Phase::kCommitted);
  }
  for (int i = 0; i < 10; ++i) {
    auto u = make();
    u->tick();
    EXPECT_EQ(u->state().attempts, 0u);
    EXPECT_EQ(u->state().phase, Phase::kCommitted);
  }
  EXPECT_EQ(active(), "slot-b");
}

TEST_F(RecoveryTest, StartsWhilePendingAreCountedAndRollBackAboveTheCap) {
  store(saved(Phase::kHealthCheck), installed());
  prepare_slots("slot-b");
  for (uint32_t i = 1; i <= 3; ++i) {
    auto u = make(options(), /*connected=*/false);
    u->tick();
    EXPECT_EQ(u->state().phase, Phase::kHealthCheck);
    EXPECT_EQ(u->state().attempts, i);
  }
  auto u = make(options(), /*connected=*/false);
  EXPECT_EQ(u->state().phase, Phase::kRolledBack);
  EXPECT_NE(u->state().message.find("started 4 times"), std::string::npos) << u->state().message;
  EXPECT_EQ(active(), "slot-a");
}

TEST_F(RecoveryTest, TooManyStepsForOneUpdateEndIt) {
  UpdateState s = saved(Phase::kDownloading);
  s.transitions = 50;
  store(s);
  auto u = make();
  EXPECT_EQ(u->state().phase, Phase::kFailed);
  EXPECT_NE(u->state().message.find("state loop"), std::string::npos);
  drive(*u);
  EXPECT_EQ(server_.requests_of("payload"), 0);
}

TEST_F(RecoveryTest, ReportSequenceNumbersKeepIncreasingAcrossRestarts) {
  uint64_t last = 0;
  for (int i = 0; i < 3; ++i) {
    auto u = make();
    for (int j = 0; j < 3; ++j) {
      auto seq = u->next_report_seq();
      ASSERT_TRUE(seq);
      EXPECT_GT(*seq, last);
      last = *seq;
    }
  }
  EXPECT_EQ(last, 9u);
}

}  // namespace
}  // namespace flotilla::ota::testing
