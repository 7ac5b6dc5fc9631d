// kill -9 at each OTA fail point, for real: the test binary runs itself as a child updater with
// FLOTILLA_FAILPOINT set (the child test below, enabled only in that child), the child SIGKILLs
// itself at the fail point, and a new Updater on the same folder must finish the update without
// fetching finished bytes again and leave the right slot active.
#include <csignal>
#include <cstdlib>

#include "ota/updater.hpp"
#include "test/ota/updater_fixture.hpp"
#include "test/support/process.hpp"

namespace flotilla::ota::testing {
namespace {

constexpr const char* kChildDir = "FLOTILLA_OTA_CHILD_DIR";

// Runs in the child only: the assignment and key the parent wrote, then the update until the
// fail point kills the process.
TEST(OtaCrashChild, DISABLED_RunsTheUpdateUntilTheFailPoint) {
  const char* dir = std::getenv(kChildDir);
  ASSERT_NE(dir, nullptr);
  const std::string d = dir;
  UpdaterOptions o;
  o.state_dir = d + "/ota";
  o.image_slots_dir = d + "/slots";
  o.public_key_pem = *fs::read_file(d + "/key.pub");
  Assignment a;
  a.rollout = "r1";
  a.generation = 1;
  a.manifest = *fs::read_file(d + "/manifest.json");
  a.signature = *fs::read_file(d + "/manifest.sig");
  a.payload_url = *fs::read_file(d + "/url");
  FakeClock clock;
  Updater u(o, clock);
  ASSERT_TRUE(u.start());
  u.on_hub_connection(true);
  u.assign(a);
  for (int i = 0; i < 20000 && !is_final(u.state().phase); ++i) {
    u.tick();
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  FAIL() << "the fail point did not fire; phase " << phase_name(u.state().phase);
}

class CrashTest : public UpdaterFixture, public ::testing::WithParamInterface<const char*> {};

TEST_P(CrashTest, AKilledUpdateFinishesAfterARestart) {
  const std::string failpoint = GetParam();
  Assignment a = assignment(manifest());
  ASSERT_TRUE(fs::write_atomic(dir_ / "key.pub", key_.public_pem));
  ASSERT_TRUE(fs::write_atomic(dir_ / "manifest.json", a.manifest));
  ASSERT_TRUE(fs::write_atomic(dir_ / "manifest.sig", a.signature));
  ASSERT_TRUE(fs::write_atomic(dir_ / "url", a.payload_url));
  {
    flotilla::testing::ChildProcess child;
    child.start({"/proc/self/exe", "--gtest_also_run_disabled_tests",
                 "--gtest_filter=OtaCrashChild.DISABLED_RunsTheUpdateUntilTheFailPoint"},
                dir_ / "child.log", {{kChildDir, dir_.path()}, {"FLOTILLA_FAILPOINT", failpoint}});
    auto code = child.wait_exit(std::chrono::seconds(30));
    ASSERT_TRUE(code.has_value());
    ASSERT_EQ(*code, 128 + SIGKILL) << child.log();
  }
  const size_t served_before = server_.served_of("payload");
  const std::string active_before = active();
  // What the killed process kept: a partial download, or all of it.
  auto partial = fs::read_file(dir_ / "ota/downloads/g1.payload.partial");
  const bool complete = fs::exists(dir_ / "ota/downloads/g1.payload");
  const size_t kept = complete ? payload_.size() : (partial ? partial->size() : 0);
  auto u = make();
  EXPECT_EQ(drive(*u), Phase::kCommitted) << u->state().message;
  EXPECT_EQ(active(), "slot-b");
  EXPECT_EQ(slot("slot-b"), payload_);
  // Only the bytes the killed process had not stored are fetched again.
  EXPECT_EQ(server_.served_of("payload") - served_before, payload_.size() - kept);
  if (failpoint == "ota.after_download_chunk") {
    EXPECT_GE(kept, size_t{1} << 20);
    EXPECT_LT(kept, payload_.size());
    EXPECT_EQ(server_.range_requests_of("payload"), 1);
  } else {
    EXPECT_TRUE(complete);
  }
  if (failpoint == "ota.during_switch") {
    EXPECT_EQ(active_before, "slot-a");  // killed before the rename
  }
  if (failpoint == "ota.after_switch") {
    EXPECT_EQ(active_before, "slot-b");
  }
}

INSTANTIATE_TEST_SUITE_P(FailPoints, CrashTest,
                         ::testing::Values("ota.after_download_chunk", "ota.during_install",
                                           "ota.during_switch", "ota.after_switch"));

}  // namespace
}  // namespace flotilla::ota::testing
