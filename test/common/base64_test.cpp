#include "common/base64.hpp"

#include <gtest/gtest.h>

namespace flotilla {
namespace {

TEST(Base64Test, KnownVectorsOfRfc4648) {
  const std::pair<std::string, std::string> vectors[] = {{"", ""},
                                                         {"f", "Zg=="},
                                                         {"fo", "Zm8="},
                                                         {"foo", "Zm9v"},
                                                         {"foob", "Zm9vYg=="},
                                                         {"fooba", "Zm9vYmE="},
                                                         {"foobar", "Zm9vYmFy"}};
  for (const auto& [plain, encoded] : vectors) {
    EXPECT_EQ(base64_encode(plain), encoded);
    auto back = base64_decode(encoded);
    ASSERT_TRUE(back) << back.error().message();
    EXPECT_EQ(*back, plain);
  }
}

TEST(Base64Test, BinaryRoundTrip) {
  std::string bytes;
  for (int i = 0; i < 256; ++i) bytes.push_back(static_cast<char>(i));
  for (size_t n = 0; n <= bytes.size(); n += 7) {
    auto back = base64_decode(base64_encode(bytes.substr(0, n)));
    ASSERT_TRUE(back);
    EXPECT_EQ(*back, bytes.substr(0, n));
  }
}

TEST(Base64Test, RejectsWhatIsNotStrictBase64) {
  for (const char* bad : {"Zg=", "Zm9v\n", "Zm 9v", "Zg==Zg==", "Z===", "Zm9-", "=Zm9"}) {
    EXPECT_FALSE(base64_decode(bad)) << bad;
  }
}

}  // namespace
}  // namespace flotilla
