#include "common/flags.hpp"

#include <gtest/gtest.h>

namespace flotilla {
namespace {

Flags make() {
  Flags f("prog", "does things");
  f.add("node", "node name", "", true);
  f.add("shards", "shard count", "16");
  f.add_switch("force", "do it anyway");
  return f;
}

TEST(Flags, ParsesBothForms) {
  auto f = make();
  const char* argv[] = {"prog", "--node", "n1", "--shards=4", "--force"};
  ASSERT_TRUE(f.parse(5, argv).ok());
  EXPECT_EQ(f.get("node"), "n1");
  EXPECT_EQ(*f.get_int("shards", 1, 1024), 4);
  EXPECT_TRUE(f.on("force"));
}

TEST(Flags, DefaultsApply) {
  auto f = make();
  const char* argv[] = {"prog", "--node", "n1"};
  ASSERT_TRUE(f.parse(3, argv).ok());
  EXPECT_EQ(*f.get_int("shards", 1, 1024), 16);
  EXPECT_FALSE(f.on("force"));
}

TEST(Flags, RejectsUnknownMissingAndMalformed) {
  {
    auto f = make();
    const char* argv[] = {"prog", "--node", "n1", "--bogus", "x"};
    auto st = f.parse(5, argv);
    ASSERT_FALSE(st.ok());
    EXPECT_EQ(st.error().message(), "unknown flag '--bogus'");
  }
  {
    auto f = make();
    const char* argv[] = {"prog"};
    auto st = f.parse(1, argv);
    ASSERT_FALSE(st.ok());
    EXPECT_EQ(st.error().message(), "missing required flag '--node'");
  }
  {
    auto f = make();
    const char* argv[] = {"prog", "--node"};
    EXPECT_FALSE(f.parse(2, argv).ok());
  }
  {
    auto f = make();
    const char* argv[] = {"prog", "--node", "n", "--shards", "lots"};
    ASSERT_TRUE(f.parse(5, argv).ok());
    auto v = f.get_int("shards", 1, 1024);
    ASSERT_FALSE(v.ok());
    EXPECT_NE(v.error().message().find("wants a whole number"), std::string::npos);
  }
  {
    auto f = make();
    const char* argv[] = {"prog", "--node", "n", "stray"};
    EXPECT_FALSE(f.parse(4, argv).ok());
  }
}

TEST(Flags, HelpListsFlags) {
  auto f = make();
  const char* argv[] = {"prog", "--help"};
  ASSERT_TRUE(f.parse(2, argv).ok());
  EXPECT_TRUE(f.help_requested());
  EXPECT_NE(f.usage().find("--shards VALUE"), std::string::npos);
  EXPECT_NE(f.usage().find("(required)"), std::string::npos);
}

TEST(Labels, ParsesAndValidates) {
  auto l = parse_labels("site=lab,role=edge");
  ASSERT_TRUE(l.ok());
  EXPECT_EQ(l->at("site"), "lab");
  EXPECT_EQ(l->at("role"), "edge");
  EXPECT_TRUE(parse_labels("")->empty());
  EXPECT_FALSE(parse_labels("novalue").ok());
  EXPECT_FALSE(parse_labels("=x").ok());
  EXPECT_FALSE(parse_labels("a=b c").ok());
}

}  // namespace
}  // namespace flotilla
