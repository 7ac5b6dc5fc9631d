#include "sync/topics.hpp"

#include <gtest/gtest.h>

#include <map>

namespace flotilla::sync {
namespace {

TEST(Topics, ShardIsStableAndInRange) {
  // Pinned: agents and hubs of different builds must agree on shards forever.
  EXPECT_EQ(fnv1a32(""), 2166136261u);
  EXPECT_EQ(fnv1a32("a"), 0xe40c292cu);
  std::map<uint32_t, int> per_shard;
  for (int i = 0; i < 1600; ++i) per_shard[shard_of("node-" + std::to_string(i), 16)]++;
  EXPECT_EQ(per_shard.size(), 16u);
  for (const auto& [shard, n] : per_shard) {
    EXPECT_LT(shard, 16u);
    EXPECT_GT(n, 50) << "shard " << shard << " badly balanced";
  }
}

TEST(Topics, RoundTrip) {
  std::string t = up_topic("edge-1", 16, "status");
  EXPECT_EQ(t, "flotilla/v1/s/" + std::to_string(shard_of("edge-1", 16)) + "/n/edge-1/up/status");
  auto parsed = parse_topic(t);
  ASSERT_TRUE(parsed.ok()) << parsed.error().message();
  EXPECT_EQ(parsed->node, "edge-1");
  EXPECT_EQ(parsed->direction, Direction::kUp);
  EXPECT_EQ(parsed->kind, "status");
  EXPECT_EQ(parsed->shard, shard_of("edge-1", 16));
  EXPECT_EQ(make_topic(*parsed), t);
}

TEST(Topics, RejectsForeignAndMalformed) {
  for (const char* bad :
       {"", "flotilla", "flotilla/v2/s/1/n/a/up/status", "flotilla/v1/s/x/n/a/up/status",
        "flotilla/v1/s/1/n/A/up/status", "flotilla/v1/s/1/n/a/sideways/status",
        "flotilla/v1/s/1/n/a/up/desired", "flotilla/v1/s/1/n/a/down/hello",
        "flotilla/v1/s/1/n/a/up/status/extra", "flotilla/v1/s/1/n//up/status",
        "flotilla/v1/s/1/n/+/up/status", "flotilla/v1/s/1234567/n/a/up/status"}) {
    EXPECT_FALSE(parse_topic(bad).ok()) << bad;
  }
}

TEST(Topics, TwinIsAKindBothWays) {
  auto up = parse_topic(up_topic("edge-1", 16, "twin"));
  ASSERT_TRUE(up.ok()) << up.error().message();
  EXPECT_EQ(up->direction, Direction::kUp);
  EXPECT_EQ(up->kind, "twin");
  auto down = parse_topic(down_topic("edge-1", 16, "twin"));
  ASSERT_TRUE(down.ok()) << down.error().message();
  EXPECT_EQ(down->direction, Direction::kDown);
  EXPECT_EQ(down->kind, "twin");
  EXPECT_FALSE(parse_topic("flotilla/v1/s/1/n/a/up/twins").ok());
}

TEST(Topics, NodeNames) {
  EXPECT_TRUE(validate_node_name("edge-1.site_a").ok());
  EXPECT_FALSE(validate_node_name("").ok());
  EXPECT_FALSE(validate_node_name("-edge").ok());
  EXPECT_FALSE(validate_node_name("edge/1").ok());
  EXPECT_FALSE(validate_node_name("edge#").ok());
  EXPECT_FALSE(validate_node_name("Edge").ok());
  EXPECT_FALSE(validate_node_name(std::string(64, 'a')).ok());
}

TEST(Topics, FilterMatching) {
  EXPECT_TRUE(topic_matches(shard_up_filter(3), "flotilla/v1/s/3/n/a/up/hello"));
  EXPECT_FALSE(topic_matches(shard_up_filter(3), "flotilla/v1/s/4/n/a/up/hello"));
  EXPECT_FALSE(topic_matches(shard_up_filter(3), "flotilla/v1/s/3/n/a/down/desired"));
  EXPECT_TRUE(topic_matches(node_down_filter("a", 16), down_topic("a", 16, "desired")));
  EXPECT_FALSE(topic_matches(node_down_filter("a", 16), down_topic("b", 16, "desired")));
  EXPECT_TRUE(topic_matches("flotilla/#", "flotilla/v1/s/3/n/a/up/hello"));
}

}  // namespace
}  // namespace flotilla::sync
