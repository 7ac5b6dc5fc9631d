// Bad manifests and bad flags: a clear error naming the file, line or field; nothing applied.
#include <gtest/gtest.h>

#include "test/integration/fleet.hpp"

namespace flotilla::testing {
namespace {

struct BadCase {
  std::string name;
  std::string yaml;
  std::string expect;  // must appear in stderr
};

TEST(BadInput, ManifestsAreRejectedWithWhereAndWhyAndChangeNothing) {
  Fleet fleet;
  fleet.start_hub();
  ASSERT_EQ(fleet.apply(sleeper_manifest("keep")).exit_code, 0);
  std::string good = sleeper_manifest("fresh");
  auto with = [&](const std::string& from, const std::string& to) {
    std::string s = good;
    s.replace(s.find(from), from.size(), to);
    return s;
  };
  std::vector<BadCase> cases = {
      {"syntax", "apiVersion: flotilla/v1\nkind: Workload\nmetadata: {name: [unclosed\n",
       "syntax.yaml:"},
      {"kind", with("kind: Workload", "kind: Gadget"), "Gadget"},
      {"name", with("  name: fresh\n", ""), "metadata.name"},
      {"quantity", with("memory: 8Mi", "memory: lots"), "spec.resources.memory"},
      {"field", with("  type: process\n", "  type: process\n  replicaz: 3\n"), "replicaz"},
      {"both", with("everyNode: true", "everyNode: true\n  replicas: 2"), "replicas"},
      {"version", with("flotilla/v1", "flotilla/v9"), "apiVersion"},
  };
  for (const auto& c : cases) {
    // Both documents in one file: the good one must not be applied either.
    RunResult r = fleet.apply(sleeper_manifest("sibling") + "---\n" + c.yaml, c.name + ".yaml");
    EXPECT_NE(r.exit_code, 0) << c.name;
    EXPECT_NE(r.err.find(c.expect), std::string::npos)
        << c.name << ": stderr does not say '" << c.expect << "':\n"
        << r.err;
    EXPECT_NE(r.err.find(c.name + ".yaml"), std::string::npos) << c.name << ": no file name";
  }
  json list = fleet.get("workloads");
  ASSERT_TRUE(list.contains("items")) << list.dump();
  ASSERT_EQ(list["items"].size(), 1u) << list.dump(1);
  EXPECT_EQ(list["items"][0]["metadata"]["name"], "keep");
}

TEST(BadInput, BadFlagsGiveOneLineAndNonZeroExit) {
  for (const std::vector<std::string>& argv :
       {std::vector<std::string>{FLOTILLA_HUB_BIN, "--bogus"},
        std::vector<std::string>{FLOTILLA_AGENT_BIN, "--node", "UPPER", "--mqtt",
                                 "tcp://127.0.0.1:1", "--data", "/tmp/x"},
        std::vector<std::string>{FLOTILLA_AGENT_BIN, "--mqtt", "tcp://127.0.0.1:1"},
        std::vector<std::string>{FLOTCTL_BIN, "frobnicate"}}) {
    RunResult r = run_command(argv, 10s);
    EXPECT_NE(r.exit_code, 0) << argv[0];
    ASSERT_FALSE(r.err.empty()) << argv[0];
    std::string first = r.err.substr(0, r.err.find('\n'));
    EXPECT_FALSE(first.empty()) << argv[0];
  }
  for (const char* bin : {FLOTILLA_HUB_BIN, FLOTILLA_AGENT_BIN, FLOTCTL_BIN}) {
    RunResult r = run_command({bin, "--help"}, 10s);
    EXPECT_EQ(r.exit_code, 0) << bin;
    EXPECT_NE((r.out + r.err).find("Usage"), std::string::npos) << bin;
  }
}

TEST(BadInput, UnreachableHubIsOneClearLine) {
  RunResult r = run_command(
      {FLOTCTL_BIN, "--hub", "http://127.0.0.1:" + std::to_string(free_port()), "get", "nodes"},
      10s);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("Failed to reach hub"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace flotilla::testing
