// API authentication end to end: tokens made by the real flotctl, a real hub with --api-tokens,
// an agent that runs what an operator applied, and the audit log read back with flotctl.
#include <gtest/gtest.h>

#include <fstream>

#include "test/integration/fleet.hpp"

namespace flotilla::testing {
namespace {

TEST(ApiAuth, TokensRolesAndAuditEndToEnd) {
  Fleet fleet;
  const std::string tokens = fleet.dir() / "tokens.txt";
  const std::string viewer = create_token("vera", "viewer", tokens);
  const std::string op = create_token("otto", "operator", tokens);
  const std::string admin = create_token("ada", "admin", tokens);
  fleet.start_hub({}, {"--api-tokens", tokens});
  fleet.start_agent("n1");

  RunResult r = fleet.flotctl({"get", "nodes"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("wants a bearer token"), std::string::npos) << r.err;
  const std::string web = fleet.manifest_file(sleeper_manifest("web"), "web.yaml");
  r = fleet.flotctl({"--token", viewer, "apply", "-f", web});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("has role viewer; PUT /api/v1/workloads needs role operator"),
            std::string::npos)
      << r.err;
  r = fleet.flotctl({"--token", op, "apply", "-f", web});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(eventually([&] { return fleet.workload_pids("n1", "web").size() == 1; }, 20s))
      << "the agent did not run what the operator applied";
  r = fleet.flotctl({"--token", op, "audit"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("needs role admin"), std::string::npos) << r.err;
  r = fleet.flotctl({"--token", admin, "audit"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("vera"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("403"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("otto"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("Workload/web"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("created"), std::string::npos) << r.out;
}

TEST(ApiAuth, HubRefusesToStartWithABadTokensFile) {
  Fleet fleet;
  const std::string tokens = fleet.dir() / "tokens.txt";
  std::ofstream(tokens) << "# ok so far\nada admin not-a-hash\n";
  RunResult r =
      run_command({FLOTILLA_HUB_BIN, "--mqtt", fleet.broker().uri(), "--data", fleet.dir() / "hub",
                   "--listen", "127.0.0.1:0", "--api-tokens", tokens},
                  10s);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("Failed to load API tokens: " + tokens +
                       ": line 2: the token's SHA-256 must be 64 hex digits"),
            std::string::npos)
      << r.err;
}

}  // namespace
}  // namespace flotilla::testing
