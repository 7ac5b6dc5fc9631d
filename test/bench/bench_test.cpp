// The fleet simulator's pure helpers: percentiles of latency samples and device names.
#include <gtest/gtest.h>

#include "bench/device_names.hpp"
#include "bench/percentile.hpp"

namespace flotilla::bench {
namespace {

TEST(Percentile, NearestRankOfSortedSamples) {
  std::vector<double> v;
  for (int i = 1; i <= 100; ++i) v.push_back(i);
  EXPECT_EQ(percentile(v, 50), 50);
  EXPECT_EQ(percentile(v, 99), 99);
  EXPECT_EQ(percentile(v, 100), 100);
  EXPECT_EQ(percentile(v, 0), 1);
  EXPECT_EQ(percentile({-3, 7}, 50), -3);  // latencies may be negative (arrived before reply)
  EXPECT_EQ(percentile({42}, 99), 42);
  EXPECT_EQ(percentile({}, 50), -1);
}

TEST(DeviceNames, RoundTripAndRejectOthers) {
  EXPECT_EQ(device_name(0), "dev-0000000");
  EXPECT_EQ(device_name(1234), "dev-0001234");
  EXPECT_EQ(device_name(12345678), "dev-12345678");
  for (uint32_t i : {0u, 7u, 99999u, 12345678u}) EXPECT_EQ(device_index(device_name(i)), i);
  EXPECT_EQ(device_index("dev-1"), std::nullopt);
  EXPECT_EQ(device_index("dev-00000012"), std::nullopt);  // not how we name 12
  EXPECT_EQ(device_index("dev-+000001"), std::nullopt);
  EXPECT_EQ(device_index("sim-0000001"), std::nullopt);
  EXPECT_EQ(device_index("dev-000001x"), std::nullopt);
  EXPECT_EQ(device_index(""), std::nullopt);
}

}  // namespace
}  // namespace flotilla::bench
