#include "cloud-hub/quantity.hpp"

#include <gtest/gtest.h>

namespace flotilla::hub {
namespace {

TEST(QuantityTest, CpuForms) {
  EXPECT_EQ(*parse_cpu_millis("500m"), 500);
  EXPECT_EQ(*parse_cpu_millis("0.5"), 500);
  EXPECT_EQ(*parse_cpu_millis("1"), 1000);
  EXPECT_EQ(*parse_cpu_millis("2.25"), 2250);
  EXPECT_EQ(*parse_cpu_millis(".1"), 100);
  EXPECT_EQ(*parse_cpu_millis("0"), 0);
  EXPECT_EQ(*parse_cpu_millis("1.000"), 1000);
}

TEST(QuantityTest, CpuErrors) {
  for (const char* bad : {"", "m", "-1", "abc", "1.5m", "0.0001", "1 core", "1e3", "5M"}) {
    auto v = parse_cpu_millis(bad);
    EXPECT_FALSE(v.ok()) << bad;
  }
  auto fine = parse_cpu_millis("0.0005");
  ASSERT_FALSE(fine.ok());
  EXPECT_NE(fine.error().message().find("finer than"), std::string::npos);
  EXPECT_FALSE(parse_cpu_millis("99999999999999999999").ok());
}

TEST(QuantityTest, MemoryForms) {
  EXPECT_EQ(*parse_memory_bytes("64Mi"), 64LL << 20);
  EXPECT_EQ(*parse_memory_bytes("1Gi"), 1LL << 30);
  EXPECT_EQ(*parse_memory_bytes("1G"), 1000000000);
  EXPECT_EQ(*parse_memory_bytes("1000"), 1000);
  EXPECT_EQ(*parse_memory_bytes("1k"), 1000);
  EXPECT_EQ(*parse_memory_bytes("1.5Gi"), 3LL << 29);
  EXPECT_EQ(*parse_memory_bytes("0.5Ki"), 512);
  EXPECT_EQ(*parse_memory_bytes("0.001Ki"), 2);  // rounded up to a whole byte
}

TEST(QuantityTest, MemoryErrors) {
  for (const char* bad : {"", "Mi", "64MB", "-1Gi", "1 Gi", "lots", "64mi", "1e9"}) {
    EXPECT_FALSE(parse_memory_bytes(bad).ok()) << bad;
  }
  EXPECT_FALSE(parse_memory_bytes("2000Ei").ok());
  auto e = parse_memory_bytes("64MB");
  EXPECT_EQ(e.error().message(),
            "bad memory quantity '64MB' (want e.g. 64Mi, 1Gi, 1G or a byte count)");
}

TEST(QuantityTest, FormatRoundTrips) {
  EXPECT_EQ(format_cpu_millis(2000), "2");
  EXPECT_EQ(format_cpu_millis(500), "500m");
  EXPECT_EQ(format_memory_bytes(64LL << 20), "64Mi");
  EXPECT_EQ(format_memory_bytes(1000000000), "1G");
  EXPECT_EQ(format_memory_bytes(1001), "1001");
  EXPECT_EQ(format_memory_bytes(0), "0");
  for (int64_t v : {1LL, 999LL, 1024LL, 1536LL, 3LL << 29, 123456789LL}) {
    EXPECT_EQ(*parse_memory_bytes(format_memory_bytes(v)), v) << v;
  }
  for (int64_t v : {1LL, 999LL, 1000LL, 2500LL})
    EXPECT_EQ(*parse_cpu_millis(format_cpu_millis(v)), v);
}

}  // namespace
}  // namespace flotilla::hub
