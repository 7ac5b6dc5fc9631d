#include "common/expected.hpp"

#include <gtest/gtest.h>

namespace flotilla {
namespace {

Expected<int> parse_positive(int v) {
  if (v <= 0) return Error("Failed to parse '" + std::to_string(v) + "': not positive");
  return v;
}

TEST(Expected, CarriesValueOrError) {
  auto good = parse_positive(3);
  ASSERT_TRUE(good.ok());
  EXPECT_EQ(*good, 3);
  auto bad = parse_positive(-1);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().message(), "Failed to parse '-1': not positive");
}

TEST(Expected, WithContextPrefixes) {
  Error e("disk full");
  EXPECT_EQ(e.WithContext("Failed to save 'x'").message(), "Failed to save 'x': disk full");
}

TEST(Status, DefaultIsOk) {
  Status st;
  EXPECT_TRUE(st.ok());
  Status bad = Error("nope");
  EXPECT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().message(), "nope");
}

}  // namespace
}  // namespace flotilla
