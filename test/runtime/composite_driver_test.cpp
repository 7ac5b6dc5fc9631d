#include "runtime/composite_driver.hpp"

#include <gtest/gtest.h>

namespace flotilla::runtime {
namespace {

// Records which calls reach it.
class RecordingDriver final : public Driver {
 public:
  explicit RecordingDriver(std::string type) : type_(std::move(type)) {}
  std::string type() const override { return type_; }
  Preparation prepare(const LaunchSpec& spec) override {
    calls.push_back("prepare " + spec.instance_id);
    return {Preparation::State::kInProgress, type_ + " pulling"};
  }
  Expected<Handle> launch(const LaunchSpec& spec) override {
    calls.push_back("launch " + spec.instance_id);
    return Handle{spec.instance_id, 42, 7, ""};
  }
  Observation observe(const Handle& h) override {
    calls.push_back("observe " + h.instance_id);
    return Observation{RunState::kRunning, 0, 0, type_};
  }
  Status terminate(const Handle& h) override {
    calls.push_back("terminate " + h.instance_id);
    return Ok();
  }
  Status kill(const Handle& h) override {
    calls.push_back("kill " + h.instance_id);
    return Ok();
  }
  Status cleanup(const std::string& id) override {
    calls.push_back("cleanup " + id);
    return Ok();
  }
  std::vector<Handle> recover() override { return found; }
  std::string log_path(const std::string& id, bool) const override { return type_ + "/" + id; }

  std::vector<std::string> calls;
  std::vector<Handle> found;

 private:
  std::string type_;
};

TEST(CompositeDriverTest, RoutesByTypeAndRemembersOwners) {
  RecordingDriver process("process"), container("container");
  container.found = {Handle{"old-1", 9, 9, ""}};
  CompositeDriver d;
  d.add(process);
  d.add(container);
  EXPECT_EQ(d.types(), (std::vector<std::string>{"process", "container"}));

  // recover() tags handles with their driver and remembers the owner.
  auto found = d.recover();
  ASSERT_EQ(found.size(), 1u);
  EXPECT_EQ(found[0].type, "container");
  EXPECT_EQ(d.log_path("old-1", false), "container/old-1");

  LaunchSpec spec;
  spec.type = "container";
  spec.instance_id = "web-1";
  EXPECT_EQ(d.prepare(spec).message, "container pulling");
  auto h = d.launch(spec);
  ASSERT_TRUE(h.ok());
  EXPECT_EQ(h->type, "container");
  // A handle without a type (as rebuilt from the agent's store) reaches its owner by id.
  Handle bare{"web-1", 42, 7, ""};
  EXPECT_EQ(d.observe(bare).message, "container");
  ASSERT_TRUE(d.terminate(bare).ok());
  ASSERT_TRUE(d.cleanup("web-1").ok());
  EXPECT_EQ(container.calls,
            (std::vector<std::string>{"prepare web-1", "launch web-1", "observe web-1",
                                      "terminate web-1", "cleanup web-1"}));
  EXPECT_TRUE(process.calls.empty());

  // An id nobody owns is offered to every driver's cleanup.
  ASSERT_TRUE(d.cleanup("ghost").ok());
  EXPECT_EQ(process.calls, std::vector<std::string>{"cleanup ghost"});
}

TEST(CompositeDriverTest, UnknownRuntimeIsAClearError) {
  RecordingDriver process("process");
  CompositeDriver d;
  d.add(process);
  LaunchSpec spec;
  spec.type = "vm";
  spec.instance_id = "win-1";
  EXPECT_EQ(d.prepare(spec).state, Preparation::State::kFailed);
  auto h = d.launch(spec);
  ASSERT_FALSE(h.ok());
  EXPECT_EQ(h.error().message(),
            "Failed to launch instance 'win-1': runtime 'vm' is not available on this node");
  auto code = d.exec(Handle{"x", 1, 1, "vm"}, {"true"}, std::chrono::seconds(1));
  ASSERT_FALSE(code.ok());
}

TEST(CompositeDriverTest, ExecOfAProcessRunsOnTheNode) {
  RecordingDriver process("process");
  CompositeDriver d;
  d.add(process);
  auto ok = d.exec(Handle{"p-1", 1, 1, "process"}, {"sh", "-c", "exit 0"}, std::chrono::seconds(5));
  ASSERT_TRUE(ok.ok()) << ok.error().message();
  EXPECT_EQ(*ok, 0);
  auto fails =
      d.exec(Handle{"p-1", 1, 1, "process"}, {"sh", "-c", "exit 4"}, std::chrono::seconds(5));
  ASSERT_TRUE(fails.ok());
  EXPECT_EQ(*fails, 4);
}

}  // namespace
}  // namespace flotilla::runtime
