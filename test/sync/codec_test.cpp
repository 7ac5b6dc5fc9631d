#include "sync/codec.hpp"

#include <gtest/gtest.h>

namespace flotilla::sync {
namespace {

TEST(Codec, RoundTripsDesiredState) {
  v1::DesiredState d;
  d.set_node("edge-1");
  d.set_from_revision(3);
  d.set_to_revision(5);
  auto* w = d.add_upserts();
  w->set_name("hello");
  w->set_type("process");
  w->mutable_process()->add_command("/bin/true");
  (*w->mutable_process()->mutable_env())["A"] = "b";
  d.add_deletes("old");
  auto back = decode<v1::DesiredState>(encode(d));
  ASSERT_TRUE(back.ok()) << back.error().message();
  EXPECT_EQ(back->node(), "edge-1");
  EXPECT_EQ(back->to_revision(), 5u);
  EXPECT_EQ(back->upserts(0).process().env().at("A"), "b");
  EXPECT_EQ(back->deletes(0), "old");
}

TEST(Codec, RejectsOversizedBeforeParsing) {
  std::string big(kMaxMessageBytes + 1, '\0');
  auto r = decode<v1::StatusBatch>(big);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("over the"), std::string::npos);
}

TEST(Codec, RejectsMalformed) {
  // Field 1 declared as a length-delimited string of 100 bytes, but only 2 follow.
  std::string truncated("\x0a\x64xy", 4);
  auto r = decode<v1::Hello>(truncated);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("malformed"), std::string::npos);
  std::string garbage("\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff", 11);
  EXPECT_FALSE(decode<v1::Ack>(garbage).ok());
}

}  // namespace
}  // namespace flotilla::sync
