#include "runtime/run_command.hpp"

#include <gtest/gtest.h>

#include <atomic>

namespace flotilla::runtime {
namespace {

using namespace std::chrono_literals;

TEST(RunCommandTest, CapturesOutputAndExitCode) {
  auto r = run_command({"sh", "-c", "echo out; echo err >&2; exit 3"});
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_EQ(r->exit_code, 3);
  EXPECT_FALSE(r->timed_out);
  EXPECT_EQ(r->out, "out\n");
  EXPECT_EQ(r->err, "err\n");
  EXPECT_EQ(command_failure(*r), "err");
}

TEST(RunCommandTest, SignalsAndMissingProgramsAreReported) {
  auto killed = run_command({"sh", "-c", "kill -9 $$"});
  ASSERT_TRUE(killed.ok());
  EXPECT_EQ(killed->exit_code, 128 + 9);
  auto missing = run_command({"/no/such/program"});
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().message(),
            "Failed to run '/no/such/program': No such file or directory");
}

TEST(RunCommandTest, EnvironmentAndWorkdirAreExactlyWhatIsGiven) {
  CommandOptions options;
  options.env = std::vector<std::string>{"ONLY=this", "PATH=/usr/bin:/bin"};
  options.workdir = "/tmp";
  auto r = run_command({"sh", "-c", "echo \"$ONLY:${HOME:-unset}:$(pwd)\""}, options);
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_EQ(r->out, "this:unset:/tmp\n");
}

TEST(RunCommandTest, ADeadlineKillsTheWholeGroup) {
  CommandOptions options;
  options.timeout = 300ms;
  auto start = std::chrono::steady_clock::now();
  // The child sleeps in the background holding stdout: the group kill must end it too.
  auto r = run_command({"sh", "-c", "sleep 30 & sleep 30"}, options);
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->timed_out);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 5s);
  EXPECT_EQ(command_failure(*r), "timed out");
}

TEST(RunCommandTest, OnTimeoutGetsAChanceToEndTheProgramGently) {
  CommandOptions options;
  options.timeout = 200ms;
  options.timeout_grace = 5s;
  std::atomic<int> calls{0};
  std::string flag = "/tmp/flotilla-run-command-" + std::to_string(::getpid());
  options.on_timeout = [&] {
    ++calls;
    (void)run_command({"touch", flag});
  };
  auto start = std::chrono::steady_clock::now();
  auto r = run_command({"sh", "-c", "while [ ! -e " + flag + " ]; do sleep 0.05; done; echo gone"},
                       options);
  ::unlink(flag.c_str());
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(calls.load(), 1);
  EXPECT_TRUE(r->timed_out);
  EXPECT_EQ(r->out, "gone\n") << "the program was killed instead of ending by itself";
  EXPECT_LT(std::chrono::steady_clock::now() - start, 4s);
}

TEST(RunCommandTest, OutputIsCapped) {
  CommandOptions options;
  options.max_output = 1000;
  auto r = run_command({"sh", "-c", "head -c 100000 /dev/zero"}, options);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->exit_code, 0);
  EXPECT_EQ(r->out.size(), 1000u);
}

}  // namespace
}  // namespace flotilla::runtime
