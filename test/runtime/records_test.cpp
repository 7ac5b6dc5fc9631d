// Unit tests for the pieces flotilla-shim and the driver share: record formats, the rotating
// log and /proc parsing.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <string>

#include <gtest/gtest.h>

#include "runtime/instance_records.hpp"
#include "runtime/proc_stat.hpp"
#include "runtime/rotating_log.hpp"
#include "test/runtime/runtime_test_util.hpp"

namespace flotilla::runtime {
namespace {

using testing::file_size_or_zero;
using testing::read_or_empty;
using testing::TempDir;

TEST(InstanceRecords, PidRecordRoundTrips) {
  auto parsed = parse_pid_record(format_pid_record({1234, 987654321}));
  ASSERT_TRUE(parsed);
  EXPECT_EQ(parsed->pid, 1234);
  EXPECT_EQ(parsed->start_ticks, 987654321u);
}

TEST(InstanceRecords, RejectsMalformedPidRecord) {
  EXPECT_FALSE(parse_pid_record(""));
  EXPECT_FALSE(parse_pid_record("pid=12\n"));
  EXPECT_FALSE(parse_pid_record("pid=abc\nstart=1\n"));
  EXPECT_FALSE(parse_pid_record("pid=0\nstart=1\n"));
}

TEST(InstanceRecords, ExitRecordRoundTripsAndDescribes) {
  auto code = parse_exit_record(format_exit_record({3, 0, ""}));
  ASSERT_TRUE(code);
  EXPECT_EQ(code->exit_code, 3);
  EXPECT_EQ(code->signal, 0);
  EXPECT_EQ(describe_exit(*code), "exited with code 3");

  auto sig = parse_exit_record(format_exit_record({0, 9, ""}));
  ASSERT_TRUE(sig);
  EXPECT_EQ(sig->signal, 9);
  EXPECT_EQ(describe_exit(*sig), "killed by signal 9 (SIGKILL)");

  auto msg = parse_exit_record(format_exit_record({127, 0, "Failed to start\ncommand"}));
  ASSERT_TRUE(msg);
  EXPECT_EQ(msg->message, "Failed to start command");
  EXPECT_EQ(describe_exit(*msg), "exited with code 127: Failed to start command");

  EXPECT_FALSE(parse_exit_record("message=only\n"));
}

TEST(RotatingLog, KeepsEachFileWithinCapAndOnlyOneOldFile) {
  TempDir dir;
  std::string path = dir.path() + "/out.log";
  RotatingLog log(path, 100);
  ASSERT_TRUE(log.open());
  ASSERT_TRUE(log.append(std::string(250, 'a')));  // one write larger than the cap
  ASSERT_TRUE(log.append(std::string(30, 'b')));
  EXPECT_LE(file_size_or_zero(path), 100u);
  EXPECT_LE(file_size_or_zero(path + ".1"), 100u);
  EXPECT_EQ(read_or_empty(path), std::string(50, 'a') + std::string(30, 'b'));
  EXPECT_EQ(read_or_empty(path + ".1"), std::string(100, 'a'));
  EXPECT_FALSE(fs::exists(path + ".2"));
}

TEST(RotatingLog, CountsAnExistingFileTowardTheCap) {
  TempDir dir;
  std::string path = dir.path() + "/out.log";
  ASSERT_TRUE(fs::write_atomic(path, std::string(90, 'x')));
  RotatingLog log(path, 100);
  ASSERT_TRUE(log.open());
  ASSERT_TRUE(log.append(std::string(20, 'y')));
  EXPECT_EQ(read_or_empty(path + ".1"), std::string(90, 'x') + std::string(10, 'y'));
  EXPECT_EQ(read_or_empty(path), std::string(10, 'y'));
}

TEST(ProcStat, ReadsOwnProcessAndRejectsMissingOnes) {
  auto me = read_proc_stat(::getpid());
  ASSERT_TRUE(me);
  EXPECT_EQ(me->pid, ::getpid());
  EXPECT_EQ(me->ppid, ::getppid());
  EXPECT_EQ(me->pgid, ::getpgrp());
  EXPECT_EQ(me->sid, ::getsid(0));
  EXPECT_GT(me->start_ticks, 0u);
  EXPECT_TRUE(is_same_live_process(::getpid(), me->start_ticks));
  EXPECT_FALSE(is_same_live_process(::getpid(), me->start_ticks + 1));
  EXPECT_FALSE(read_proc_stat(0));
  EXPECT_FALSE(read_proc_stat(-1));
}

TEST(ProcStat, ZombieCountsAsDead) {
  pid_t child = ::fork();
  if (child == 0) ::_exit(0);
  ASSERT_GT(child, 0);
  ASSERT_TRUE(testing::eventually([&] {
    auto st = read_proc_stat(child);
    return st && st->zombie();
  }));
  auto st = read_proc_stat(child);
  EXPECT_FALSE(is_same_live_process(child, st->start_ticks));
  ::waitpid(child, nullptr, 0);
  EXPECT_FALSE(read_proc_stat(child));
}

}  // namespace
}  // namespace flotilla::runtime
