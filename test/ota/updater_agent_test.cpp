// The agent target: the running binary and its helpers seed slot-a, the update goes to slot-b,
// and the updater asks for a re-exec through the `active` link after the switch and after a
// rollback. The helpers (flotilla-shim, flotilla-oci-monitor) are versioned with the agent: an
// update brings them in an archive, or the new slot gets the running slot's; a slot without them
// is never switched to.
#include <sys/stat.h>

#include "ota/agent_archive.hpp"
#include "ota/updater.hpp"
#include "test/ota/updater_fixture.hpp"

namespace flotilla::ota::testing {
namespace {

class AgentTargetTest : public UpdaterFixture {
 protected:
  // The running agent: dir_/old-agent with its helpers beside it.
  UpdaterOptions agent_options() {
    UpdaterOptions o = options();
    o.self_exe = dir_ / "old-agent";
    EXPECT_TRUE(fs::write_atomic(o.self_exe, "old binary"));
    if (!fs::exists(dir_ / "flotilla-shim")) {
      write_exe("flotilla-shim", "old shim", 0750);
      write_exe("flotilla-oci-monitor", "old monitor", 0755);
    }
    return o;
  }
  void write_exe(const std::string& file, const std::string& data, mode_t mode) {
    ASSERT_TRUE(fs::write_atomic(dir_ / file, data));
    ASSERT_EQ(::chmod((dir_ / file).c_str(), mode), 0);
  }
  std::string agent_active() {
    auto a = SlotSet::agent(dir_ / "agent").active();
    return a ? *a : "<none>";
  }
  std::string agent_file(const std::string& file) {
    auto content = fs::read_file(dir_ / ("agent/" + file));
    return content ? *content : "<missing>";
  }
  mode_t mode(const std::string& file) {
    struct stat st {};
    EXPECT_EQ(::stat((dir_ / file).c_str(), &st), 0) << file;
    return st.st_mode & 07777;
  }
  // Serves an archive of a new agent, shim and monitor as the payload.
  Manifest archive_manifest() {
    EXPECT_TRUE(fs::make_dirs(dir_ / "new"));
    write_exe("new/flotilla-agent", "new binary", 0755);
    write_exe("new/flotilla-shim", "new shim", 0755);
    write_exe("new/flotilla-oci-monitor", "new monitor", 0700);
    EXPECT_TRUE(write_agent_archive(dir_ / "new", dir_ / "new.tar"));
    payload_ = *fs::read_file(dir_ / "new.tar");
    server_.put("payload", payload_);
    Manifest m = manifest("2.0", "agent");
    m.format = kPayloadTar;
    return m;
  }
};

TEST_F(AgentTargetTest, TheNewBinaryIsStartedAndCommittedAfterItsHealthCheck) {
  std::string reexec;
  {
    auto u = make(agent_options());
    u->assign(assignment(manifest("2.0", "agent")));
    EXPECT_EQ(drive(*u), Phase::kHealthCheck) << u->state().message;
    reexec = u->reexec_path();
  }
  EXPECT_EQ(reexec, dir_ / "agent/active/flotilla-agent");
  EXPECT_EQ(*fs::read_file(reexec), payload_);
  EXPECT_EQ(*fs::read_file(dir_ / "agent/slot-a/flotilla-agent"), "old binary");
  struct stat st {};
  ASSERT_EQ(::stat(reexec.c_str(), &st), 0);
  EXPECT_TRUE(st.st_mode & S_IXUSR);
  // The new process (execv'd through the link) finds the pending update.
  auto u = make(agent_options());
  EXPECT_EQ(u->state().attempts, 1u);
  EXPECT_EQ(drive(*u), Phase::kCommitted);
  EXPECT_EQ(agent_active(), "slot-b");
  EXPECT_TRUE(u->reexec_path().empty());
}

TEST_F(AgentTargetTest, AnUnhealthyNewBinaryIsReplacedByTheOldOne) {
  {
    auto u = make(agent_options());
    u->assign(assignment(manifest("2.0", "agent")));
    EXPECT_EQ(drive(*u), Phase::kHealthCheck);
  }
  UpdaterOptions o = agent_options();
  o.health_command = "exit 1";
  std::string reexec;
  {
    auto u = make(o);
    EXPECT_EQ(drive(*u), Phase::kRolledBack);
    reexec = u->reexec_path();
  }
  EXPECT_EQ(agent_active(), "slot-a");
  EXPECT_EQ(*fs::read_file(reexec), "old binary");
  EXPECT_EQ(agent_file("slot-a/flotilla-shim"), "old shim");  // the old slot is untouched
  // The old binary starts again and keeps reporting the rollback.
  auto u = make(agent_options());
  EXPECT_EQ(u->state().phase, Phase::kRolledBack);
  EXPECT_EQ(u->state().attempts, 1u);
  EXPECT_TRUE(u->reexec_path().empty());
}

TEST_F(AgentTargetTest, AnAgentOnlyUpdateGetsTheRunningSlotsHelpersWithTheirModes) {
  auto u = make(agent_options());
  u->assign(assignment(manifest("2.0", "agent")));
  EXPECT_EQ(drive(*u), Phase::kHealthCheck) << u->state().message;
  // Seeding copied the running binary's helpers into slot-a, the install slot-a's into slot-b.
  EXPECT_EQ(agent_file("slot-a/flotilla-shim"), "old shim");
  EXPECT_EQ(agent_file("slot-b/flotilla-agent"), payload_);
  EXPECT_EQ(agent_file("slot-b/flotilla-shim"), "old shim");
  EXPECT_EQ(agent_file("slot-b/flotilla-oci-monitor"), "old monitor");
  EXPECT_EQ(mode("agent/slot-b/flotilla-shim"), 0750u);
  EXPECT_EQ(mode("agent/slot-b/flotilla-oci-monitor"), 0755u);
  // They are the slot's own files: changing the running ones later changes nothing there.
  write_exe("agent/slot-a/flotilla-shim", "patched shim", 0755);
  EXPECT_EQ(agent_file("slot-b/flotilla-shim"), "old shim");
}

TEST_F(AgentTargetTest, AnArchiveUpdateBringsItsOwnHelpers) {
  UpdaterOptions o = agent_options();
  const Manifest m = archive_manifest();
  {
    auto u = make(o);
    u->assign(assignment(m));
    EXPECT_EQ(drive(*u), Phase::kHealthCheck) << u->state().message;
  }
  EXPECT_EQ(agent_file("active/flotilla-agent"), "new binary");
  EXPECT_EQ(agent_file("active/flotilla-shim"), "new shim");
  EXPECT_EQ(agent_file("active/flotilla-oci-monitor"), "new monitor");
  EXPECT_EQ(mode("agent/slot-b/flotilla-oci-monitor"), 0700u);
  EXPECT_EQ(agent_file("slot-b/payload.tar"), payload_);  // the base of the next delta
  EXPECT_EQ(agent_file("slot-a/flotilla-shim"), "old shim");
  auto u = make(o);
  EXPECT_EQ(drive(*u), Phase::kCommitted);
  EXPECT_EQ(agent_active(), "slot-b");
  EXPECT_EQ(u->running_version(), "2.0");

  // The next, agent-only update back into slot-a takes slot-b's (new) helpers and drops
  // slot-a's stale archive base.
  ASSERT_TRUE(fs::write_atomic(dir_ / "agent/slot-a/payload.tar", "stale"));
  payload_ = pattern(1 << 20, 9);
  server_.put("payload", payload_);
  u->assign(assignment(manifest("3.0", "agent"), 2));
  EXPECT_EQ(drive(*u), Phase::kHealthCheck) << u->state().message;
  EXPECT_EQ(agent_active(), "slot-a");
  EXPECT_EQ(agent_file("slot-a/flotilla-agent"), payload_);
  EXPECT_EQ(agent_file("slot-a/flotilla-shim"), "new shim");
  EXPECT_FALSE(fs::exists(dir_ / "agent/slot-a/payload.tar"));
}

TEST_F(AgentTargetTest, ASlotWithoutAHelperIsRefusedBeforeTheSwitch) {
  UpdaterOptions o = agent_options();
  ASSERT_EQ(::unlink((dir_ / "flotilla-oci-monitor").c_str()), 0);  // never deployed
  auto u = make(o);
  u->assign(assignment(manifest("2.0", "agent")));
  EXPECT_EQ(drive(*u), Phase::kFailed);
  EXPECT_NE(u->state().message.find("flotilla-oci-monitor is neither in the update nor in"),
            std::string::npos)
      << u->state().message;
  EXPECT_EQ(agent_active(), "slot-a");
  EXPECT_TRUE(u->reexec_path().empty());

  // The same update carrying its helpers goes through.
  u->assign(assignment(archive_manifest(), 2));
  EXPECT_EQ(drive(*u), Phase::kHealthCheck) << u->state().message;
  EXPECT_EQ(agent_file("active/flotilla-oci-monitor"), "new monitor");
}

// A slot that lost a helper between the install and the switch (a restart in `switching`): the
// link does not move.
TEST_F(AgentTargetTest, ASwitchIntoAnIncompleteSlotDoesNotHappen) {
  {
    auto u = make(agent_options());
    u->assign(assignment(manifest("2.0", "agent")));
    EXPECT_EQ(drive(*u), Phase::kHealthCheck) << u->state().message;
  }
  // Back to the state before the switch, with slot-b's shim gone.
  ASSERT_TRUE(SlotSet::agent(dir_ / "agent").point_to("slot-a"));
  ASSERT_EQ(::unlink((dir_ / "agent/slot-b/flotilla-shim").c_str()), 0);
  {
    auto st = UpdaterStore::open(dir_ / "ota/state.db");
    ASSERT_TRUE(st) << st.error().message();
    auto s = (*st)->load();
    ASSERT_TRUE(s);
    s->phase = Phase::kSwitching;
    s->pending = false;
    ASSERT_TRUE((*st)->save(*s));
  }
  auto u = make(agent_options());
  const Phase end = drive(*u);
  EXPECT_TRUE(end == Phase::kRolledBack || end == Phase::kFailed) << phase_name(end);
  EXPECT_NE(u->state().message.find("flotilla-shim is missing or not executable"),
            std::string::npos)
      << u->state().message;
  EXPECT_EQ(agent_active(), "slot-a");
  EXPECT_TRUE(u->reexec_path().empty());
}

}  // namespace
}  // namespace flotilla::ota::testing
