#include "cloud-hub/disruption.hpp"

#include <gtest/gtest.h>

#include "cloud-hub/hub.hpp"

namespace flotilla::hub {
namespace {

std::set<InstanceKey> on_nodes(const std::string& workload, int n) {
  std::set<InstanceKey> out;
  for (int i = 0; i < n; ++i) out.insert({workload, "n" + std::to_string(i)});
  return out;
}

TEST(DisruptionTest, CountsDeletedRemovedAndReplacedInstances) {
  std::set<InstanceKey> running = on_nodes("a", 4);
  running.insert({"b", "n0"});
  running.insert({"c", "n0"});
  Placements after = {{"a", {"n0", "n1", "n9"}}, {"c", {"n0"}}};  // b deleted, a off n2 and n3
  Disruption d = count_disruption(running, after, {});
  EXPECT_EQ(d.running, 6);
  EXPECT_EQ(d.stopped, 3);
  d = count_disruption(running, after, {"c"});  // c's spec changed: replaced where it runs
  EXPECT_EQ(d.stopped, 4);
  d = count_disruption(running, {{"a", {"n0", "n1", "n2", "n3"}}, {"b", {"n0"}}, {"c", {"n0"}}},
                       {});
  EXPECT_EQ(d.stopped, 0);
}

TEST(DisruptionTest, RefusesOverTheLimitWithTheNumbers) {
  EXPECT_EQ(disruption_refusal("delete", {10, 8}, 0.5),
            "refused: this delete stops 8 of 10 running instances (80%), over the 50% limit; "
            "use --force");
  EXPECT_EQ(disruption_refusal("apply", {10, 6}, 0.5),
            "refused: this apply stops 6 of 10 running instances (60%), over the 50% limit; "
            "use --force");
  EXPECT_EQ(disruption_refusal("apply", {10, 5}, 0.5), "");  // exactly the limit is allowed
  EXPECT_EQ(disruption_refusal("apply", {3, 2}, 0.25),
            "refused: this apply stops 2 of 3 running instances (66.7%), over the 25% limit; "
            "use --force");
  EXPECT_EQ(disruption_refusal("apply", {10, 10}, 1.0), "");
  EXPECT_NE(disruption_refusal("apply", {10, 2}, 0.0), "");
}

TEST(DisruptionTest, TinyFleetsMayStopOneInstance) {
  EXPECT_EQ(disruption_refusal("delete", {1, 1}, 0.5), "");
  EXPECT_EQ(disruption_refusal("delete", {2, 1}, 0.0), "");
  EXPECT_NE(disruption_refusal("delete", {2, 2}, 0.5), "");
  EXPECT_EQ(disruption_refusal("delete", {0, 0}, 0.5), "");
}

TEST(DisruptionTest, TheFlagTakesAShareOrAPercentage) {
  EXPECT_DOUBLE_EQ(*parse_share("0.5"), 0.5);
  EXPECT_DOUBLE_EQ(*parse_share("25%"), 0.25);
  EXPECT_DOUBLE_EQ(*parse_share("1"), 1.0);
  EXPECT_DOUBLE_EQ(*parse_share("0"), 0.0);
  for (const char* bad : {"", "%", "1.5", "-0.1", "half", "50%%", "nan"}) {
    auto r = parse_share(bad);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.error().message(),
              std::string("want a share from 0 to 1 (e.g. 0.5) or a percentage (e.g. 50%), got '") +
                  bad + "'");
  }
}

}  // namespace
}  // namespace flotilla::hub
