// The updater against a real HTTP server and real slot files: downloads (resume, errors,
// backoff), signature and digest checks, the switch, the health gate, abort, generations.
#include "ota/updater.hpp"

#include "ota/delta.hpp"
#include "test/ota/updater_fixture.hpp"

namespace flotilla::ota::testing {
namespace {

using UpdaterTest = UpdaterFixture;

TEST_F(UpdaterTest, AnImageUpdateIsInstalledSwitchedAndCommitted) {
  auto u = make();
  EXPECT_EQ(u->running_version(), "");
  u->assign(assignment(manifest("2.0")));
  EXPECT_EQ(drive(*u), Phase::kCommitted) << u->state().message;
  EXPECT_EQ(active(), "slot-b");
  EXPECT_EQ(slot("slot-b"), payload_);
  EXPECT_EQ(slot("slot-a"), "");  // the previous slot is left as it was
  EXPECT_EQ(u->running_version(), "2.0");
  EXPECT_FALSE(u->state().pending);
  EXPECT_EQ(u->state().attempts, 0u);
  EXPECT_EQ(server_.served_of("payload"), payload_.size());
  EXPECT_FALSE(fs::exists(dir_ / "ota/downloads/g1.payload"));  // cleaned up
  // The next update goes to the other slot and back onto slot-a.
  payload_ = pattern(1 << 20, 9);
  server_.put("payload", payload_);
  u->assign(assignment(manifest("3.0"), 2));
  EXPECT_EQ(drive(*u), Phase::kCommitted) << u->state().message;
  EXPECT_EQ(active(), "slot-a");
  EXPECT_EQ(slot("slot-a"), payload_);
  EXPECT_EQ(u->running_version(), "3.0");
}

TEST_F(UpdaterTest, EveryStepIsReportedInOrder) {
  auto u = make();
  EXPECT_EQ(u->take_reports().size(), 1u);  // the state found at start
  u->assign(assignment(manifest()));
  std::vector<Phase> seen;
  bool progress_seen = false;
  for (int i = 0; i < 10000 && (seen.empty() || !is_final(seen.back())); ++i) {
    u->tick();
    for (const auto& r : u->take_reports()) {
      progress_seen |= r.phase == Phase::kDownloading && r.bytes_done == payload_.size() &&
                       r.bytes_total == payload_.size();
      if (seen.empty() || seen.back() != r.phase) seen.push_back(r.phase);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  std::vector<Phase> want = {Phase::kDownloading, Phase::kVerifying,   Phase::kInstalling,
                             Phase::kSwitching,   Phase::kHealthCheck, Phase::kCommitted};
  EXPECT_EQ(seen, want);
  EXPECT_TRUE(progress_seen);
}

TEST_F(UpdaterTest, ACutDownloadResumesAndFetchesOnlyTheMissingBytes) {
  server_.cut_after = 1'000'000;
  auto u = make();
  u->assign(assignment(manifest()));
  EXPECT_EQ(drive(*u), Phase::kCommitted) << u->state().message;
  EXPECT_EQ(server_.requests_of("payload"), 2);
  EXPECT_EQ(server_.range_requests_of("payload"), 1);
  EXPECT_EQ(server_.served_of("payload"), payload_.size());  // no byte twice
  EXPECT_EQ(slot("slot-b"), payload_);
}

TEST_F(UpdaterTest, AServerIgnoringRangeIsAcceptedAndTheDownloadStartsOver) {
  server_.cut_after = 1'000'000;
  server_.ignore_range = true;
  auto u = make();
  u->assign(assignment(manifest()));
  EXPECT_EQ(drive(*u), Phase::kCommitted) << u->state().message;
  EXPECT_EQ(server_.served_of("payload"), 1'000'000 + payload_.size());
  EXPECT_EQ(slot("slot-b"), payload_);
}

TEST_F(UpdaterTest, A404FailsAtOnceWithoutRetrying) {
  auto u = make();
  Assignment a = assignment(manifest());
  a.payload_url = server_.url("missing");
  u->assign(a);
  EXPECT_EQ(drive(*u, Phase::kIdle, Millis(5000)), Phase::kFailed);
  EXPECT_NE(u->state().message.find("HTTP 404"), std::string::npos) << u->state().message;
  EXPECT_EQ(server_.requests_of("missing"), 1);
  EXPECT_EQ(active(), "slot-a");
  EXPECT_EQ(slot("slot-b"), "");
}

TEST_F(UpdaterTest, A5xxIsRetriedWithBackoffOnTheClock) {
  server_.fail_count = 2;
  auto u = make();
  u->assign(assignment(manifest()));
  for (int i = 0; i < 2000 && server_.requests_of("payload") < 1; ++i) {
    u->tick();
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  for (int i = 0; i < 200; ++i) {  // the failure comes back; no retry until the clock moves
    u->tick();
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  EXPECT_EQ(server_.requests_of("payload"), 1);
  EXPECT_EQ(u->state().phase, Phase::kDownloading);
  EXPECT_NE(u->state().message.find("HTTP 500"), std::string::npos) << u->state().message;
  EXPECT_EQ(drive(*u), Phase::kCommitted) << u->state().message;
  EXPECT_EQ(server_.requests_of("payload"), 3);
}

TEST_F(UpdaterTest, RetryableErrorsEndTheUpdateAfterTheRetryCap) {
  server_.fail_count = 1000;
  server_.fail_status = 503;
  UpdaterOptions o = options();
  o.max_retries = 3;
  auto u = make(o);
  u->assign(assignment(manifest()));
  EXPECT_EQ(drive(*u), Phase::kFailed);
  EXPECT_EQ(server_.requests_of("payload"), 4);
  EXPECT_NE(u->state().message.find("gave up after 3 retries"), std::string::npos);
}

TEST_F(UpdaterTest, ATamperedPayloadFailsAndInstallsNothing) {
  std::string tampered = payload_;
  tampered[12345] ^= 1;
  server_.put("payload", tampered);
  auto u = make();
  u->assign(assignment(manifest()));
  EXPECT_EQ(drive(*u), Phase::kFailed);
  EXPECT_NE(u->state().message.find("digest mismatch"), std::string::npos) << u->state().message;
  EXPECT_EQ(active(), "slot-a");
  EXPECT_EQ(slot("slot-b"), "");
}

TEST_F(UpdaterTest, ATamperedManifestFailsBeforeAnyDownload) {
  auto u = make();
  Assignment a = assignment(manifest("2.0"));
  auto pos = a.manifest.find("2.0");
  a.manifest.replace(pos, 3, "6.6");
  u->assign(a);
  EXPECT_EQ(u->state().phase, Phase::kFailed);
  EXPECT_NE(u->state().message.find("Failed to verify the manifest"), std::string::npos);
  drive(*u);
  EXPECT_EQ(server_.requests_of("payload"), 0);
  EXPECT_FALSE(fs::exists(dir_ / "slots/active"));
}

TEST_F(UpdaterTest, ASignatureByAnotherKeyFailsBeforeAnyDownload) {
  auto other = generate_key();
  ASSERT_TRUE(other);
  auto u = make();
  Assignment a = assignment(manifest());
  a.signature = *sign(other->private_pem, a.manifest);
  u->assign(a);
  EXPECT_EQ(u->state().phase, Phase::kFailed);
  EXPECT_NE(u->state().message.find("rollout 'r1'"), std::string::npos) << u->state().message;
  a.signature = "short";
  a.generation = 2;
  u->assign(a);
  EXPECT_EQ(u->state().phase, Phase::kFailed);
  drive(*u);
  EXPECT_EQ(server_.requests_of("payload"), 0);
}

TEST_F(UpdaterTest, ATargetTheAgentDoesNotHaveFailsClearly) {
  UpdaterOptions o = options();
  o.image_slots_dir.clear();
  auto u = make(o);
  u->assign(assignment(manifest()));
  EXPECT_EQ(u->state().phase, Phase::kFailed);
  EXPECT_NE(u->state().message.find("target 'image' is not configured"), std::string::npos)
      << u->state().message;
}

TEST_F(UpdaterTest, AFailingHealthCommandRollsBackToThePreviousSlot) {
  UpdaterOptions o = options();
  o.health_command = "echo unhealthy >&2; exit 3";
  o.switch_command = "echo switched >> " + (dir_ / "switches");
  auto u = make(o);
  u->assign(assignment(manifest()));
  EXPECT_EQ(drive(*u), Phase::kRolledBack);
  EXPECT_NE(u->state().message.find("unhealthy"), std::string::npos) << u->state().message;
  EXPECT_EQ(active(), "slot-a");
  EXPECT_FALSE(u->state().pending);
  auto switches = [&] {
    auto text = fs::read_file(dir_ / "switches");
    return text ? *text : "";
  };
  for (int i = 0; i < 2000 && switches().size() < 18; ++i) {
    u->tick();
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  EXPECT_EQ(switches(), "switched\nswitched\n");  // forward and back
}

TEST_F(UpdaterTest, APassingHealthCommandCommits) {
  UpdaterOptions o = options();
  o.health_command = "test -f " + (dir_ / "slots/slot-b");
  auto u = make(o);
  u->assign(assignment(manifest()));
  EXPECT_EQ(drive(*u), Phase::kCommitted) << u->state().message;
}

TEST_F(UpdaterTest, NoHubConnectionAfterTheSwitchRollsBackAtTheTimeout) {
  auto u = make(options(), /*connected=*/false);
  u->assign(assignment(manifest()));
  EXPECT_EQ(drive(*u, Phase::kHealthCheck), Phase::kHealthCheck);
  EXPECT_EQ(active(), "slot-b");
  clock_.advance(Millis(59000));
  u->tick();
  EXPECT_EQ(u->state().phase, Phase::kHealthCheck);
  clock_.advance(Millis(2000));
  u->tick();
  EXPECT_EQ(u->state().phase, Phase::kRolledBack);
  EXPECT_NE(u->state().message.find("not connected to the hub"), std::string::npos);
  EXPECT_EQ(active(), "slot-a");
}

TEST_F(UpdaterTest, OlderAndEqualGenerationsChangeNothing) {
  auto u = make();
  u->assign(assignment(manifest(), 5));
  EXPECT_EQ(drive(*u), Phase::kCommitted);
  u->assign(assignment(manifest("9.0"), 5));
  u->assign(assignment(manifest("9.0"), 4));
  drive(*u);
  EXPECT_EQ(u->ignored_assignments(), 2u);
  EXPECT_EQ(u->state().version, "2.0");
  EXPECT_EQ(server_.requests_of("payload"), 1);
  // The same payload again under a newer generation: already running.
  u->assign(assignment(manifest("2.0"), 6));
  EXPECT_EQ(u->state().phase, Phase::kCommitted);
  EXPECT_NE(u->state().message.find("already running"), std::string::npos);
  EXPECT_EQ(server_.requests_of("payload"), 1);
}

// A hub instance that took over the rollouts sends the current assignment again: the node
// answers with where it stands, without starting anything again.
TEST_F(UpdaterTest, TheCurrentAssignmentSentAgainIsAnsweredWithTheCurrentState) {
  auto u = make();
  u->assign(assignment(manifest(), 5));
  EXPECT_EQ(drive(*u), Phase::kCommitted);
  u->take_reports();
  u->assign(assignment(manifest(), 5));
  auto again = u->take_reports();
  ASSERT_EQ(again.size(), 1u);
  EXPECT_EQ(again[0].phase, Phase::kCommitted);
  EXPECT_EQ(again[0].generation, 5u);
  EXPECT_EQ(server_.requests_of("payload"), 1);
  // An older generation is no question about the current update: nothing to answer.
  u->assign(assignment(manifest(), 4));
  EXPECT_TRUE(u->take_reports().empty());
}

TEST_F(UpdaterTest, AbortStopsADownloadBeforeTheSwitch) {
  server_.stall = true;
  auto u = make();
  u->assign(assignment(manifest(), 1));
  for (int i = 0; i < 5000 && server_.requests_of("payload") == 0; ++i) {
    u->tick();
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  Assignment abort = assignment(manifest(), 2);
  abort.abort = true;
  u->assign(abort);
  EXPECT_EQ(drive(*u), Phase::kAborted);
  EXPECT_EQ(u->state().generation, 2u);
  EXPECT_EQ(active(), "slot-a");
  EXPECT_EQ(slot("slot-b"), "");
  server_.stall = false;
}

TEST_F(UpdaterTest, AbortAfterTheSwitchHasNoEffect) {
  auto u = make(options(), /*connected=*/false);
  u->assign(assignment(manifest(), 1));
  EXPECT_EQ(drive(*u, Phase::kHealthCheck), Phase::kHealthCheck);
  Assignment abort = assignment(manifest(), 2);
  abort.abort = true;
  u->assign(abort);
  u->on_hub_connection(true);
  EXPECT_EQ(drive(*u), Phase::kCommitted);
  EXPECT_EQ(active(), "slot-b");
}

TEST_F(UpdaterTest, ANewerAssignmentReplacesOneThatHasNotSwitched) {
  server_.stall = true;
  auto u = make();
  u->assign(assignment(manifest("2.0"), 1));
  for (int i = 0; i < 5000 && server_.requests_of("payload") == 0; ++i) {
    u->tick();
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  server_.stall = false;
  Manifest m = manifest("2.1");
  u->assign(assignment(m, 2));
  EXPECT_EQ(drive(*u), Phase::kCommitted) << u->state().message;
  EXPECT_EQ(u->state().generation, 2u);
  EXPECT_EQ(u->running_version(), "2.1");
}

// A delta applier for tests: the delta is the new payload XORed with the base.
Status xor_delta(const std::string& base, const std::string& delta, const std::string& out,
                 uint64_t size) {
  auto b = fs::read_file(base);
  auto d = fs::read_file(delta);
  if (!b || !d || b->size() != d->size() || d->size() != size) return Error("bad delta");
  std::string o = *d;
  for (size_t i = 0; i < o.size(); ++i) o[i] = static_cast<char>(o[i] ^ (*b)[i]);
  return fs::write_atomic(out, o);
}

class DeltaTest : public UpdaterFixture {
 protected:
  void SetUp() override {
    UpdaterFixture::SetUp();
    base_ = pattern(payload_.size(), 3);
    std::string delta = payload_;
    for (size_t i = 0; i < delta.size(); ++i) delta[i] = static_cast<char>(delta[i] ^ base_[i]);
    delta_ = delta;
    server_.put("delta", delta_);
    ASSERT_TRUE(SlotSet::image(dir_ / "slots").prepare());
    ASSERT_TRUE(fs::write_atomic(dir_ / "slots/slot-a", base_));
  }
  Assignment delta_assignment(const std::string& base_sha) {
    Manifest m = manifest();
    m.delta = DeltaInfo{"zstd-patch-from", "1.0", base_sha, sha256_hex(delta_), delta_.size()};
    Assignment a = assignment(m);
    a.delta_url = server_.url("delta");
    return a;
  }
  UpdaterOptions delta_options() {
    UpdaterOptions o = options();
    o.apply_delta = xor_delta;
    return o;
  }
  std::string base_, delta_;
};

TEST_F(DeltaTest, TheDeltaIsUsedWhenTheActiveSlotIsItsBase) {
  auto u = make(delta_options());
  u->assign(delta_assignment(sha256_hex(base_)));
  EXPECT_EQ(drive(*u), Phase::kCommitted) << u->state().message;
  EXPECT_EQ(server_.requests_of("delta"), 1);
  EXPECT_EQ(server_.requests_of("payload"), 0);
  EXPECT_EQ(slot("slot-b"), payload_);
}

TEST_F(DeltaTest, ARealZstdPatchFromDeltaIsApplied) {
  // The new payload is the base with 1% changed, its delta made by ota/delta.hpp.
  payload_ = base_;
  for (size_t i = 0; i < payload_.size(); i += 100) payload_[i] = static_cast<char>(i);
  server_.put("payload", payload_);
  ASSERT_TRUE(fs::write_atomic(dir_ / "new.img", payload_));
  auto made = make_delta(dir_ / "slots/slot-a", dir_ / "new.img", dir_ / "new.delta");
  ASSERT_TRUE(made) << made.error().message();
  delta_ = *fs::read_file(dir_ / "new.delta");
  server_.put("delta", delta_);
  UpdaterOptions o = options();
  o.apply_delta = [](const std::string& base, const std::string& delta, const std::string& out,
                     uint64_t size) -> Status {
    auto applied = apply_delta(base, delta, out, size);
    if (!applied) return applied.error();
    return Ok();
  };
  auto u = make(o);
  u->assign(delta_assignment(sha256_hex(base_)));
  EXPECT_EQ(drive(*u), Phase::kCommitted) << u->state().message;
  EXPECT_EQ(server_.requests_of("payload"), 0);
  EXPECT_EQ(server_.served_of("delta"), delta_.size());
  EXPECT_LT(delta_.size(), payload_.size() / 10);
  EXPECT_EQ(slot("slot-b"), payload_);
}

TEST_F(DeltaTest, AnotherBaseTakesTheFullPayload) {
  auto u = make(delta_options());
  u->assign(delta_assignment(sha256_hex("something else")));
  EXPECT_EQ(drive(*u), Phase::kCommitted) << u->state().message;
  EXPECT_EQ(server_.requests_of("delta"), 0);
  EXPECT_EQ(server_.requests_of("payload"), 1);
  EXPECT_EQ(slot("slot-b"), payload_);
}

TEST_F(DeltaTest, ABrokenDeltaFallsBackToTheFullPayload) {
  UpdaterOptions o = delta_options();
  o.apply_delta = [](const std::string&, const std::string&, const std::string& out, uint64_t) {
    return fs::write_atomic(out, "garbage");
  };
  auto u = make(o);
  u->assign(delta_assignment(sha256_hex(base_)));
  std::vector<std::string> messages;
  for (int i = 0; i < 10000 && !is_final(u->state().phase); ++i) {
    u->tick();
    for (const auto& r : u->take_reports()) messages.push_back(r.message);
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  EXPECT_EQ(u->state().phase, Phase::kCommitted) << u->state().message;
  EXPECT_EQ(server_.requests_of("delta"), 1);
  EXPECT_EQ(server_.requests_of("payload"), 1);
  EXPECT_EQ(slot("slot-b"), payload_);
  bool reported = false;
  for (const auto& m : messages) reported |= m.find("delta failed") != std::string::npos;
  EXPECT_TRUE(reported);
}

TEST_F(DeltaTest, AMissingDeltaFallsBackToTheFullPayload) {
  auto u = make(delta_options());
  Assignment a = delta_assignment(sha256_hex(base_));
  a.delta_url = server_.url("nodelta");
  u->assign(a);
  EXPECT_EQ(drive(*u), Phase::kCommitted) << u->state().message;
  EXPECT_EQ(server_.requests_of("nodelta"), 1);
  EXPECT_EQ(server_.requests_of("payload"), 1);
}

}  // namespace
}  // namespace flotilla::ota::testing
