#include "common/base64.hpp"

#include <gtest/gtest.h>

namespace flotilla {
namespace {

TEST(Base64, EncodesWithPadding) {
  EXPECT_EQ(base64_encode(""), "");
  EXPECT_EQ(base64_encode("f"), "Zg==");
  EXPECT_EQ(base64_encode("fo"), "Zm8=");
  EXPECT_EQ(base64_encode("foo"), "Zm9v");
  EXPECT_EQ(base64_encode(std::string("\xff\x00\xfe", 3)), "/wD+");
}

TEST(Base64, DecodesWhatItEncodes) {
  std::string all;
  for (int i = 0; i < 256; ++i) all.push_back(static_cast<char>(i));
  for (size_t len = 0; len < 70; ++len) {
    const std::string data = all.substr(len, len);
    auto back = base64_decode(base64_encode(data));
    ASSERT_TRUE(back.ok()) << len << ": " << back.error().message();
    EXPECT_EQ(*back, data) << len;
  }
}

TEST(Base64, RejectsMalformedText) {
  for (const char* bad : {"Zg=", "Zg", "Z===", "Zg=a", "Zm9v\n", "Zm 9", "Zm-_", "=Zg="}) {
    EXPECT_FALSE(base64_decode(bad).ok()) << bad;
  }
}

}  // namespace
}  // namespace flotilla
