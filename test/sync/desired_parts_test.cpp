#include "sync/desired_parts.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <random>

namespace flotilla::sync {
namespace {

namespace pb = flotilla::v1;

TEST(NegotiateVersion, PicksTheNewestVersionBothSpeak) {
  EXPECT_EQ(*negotiate_version(1, 0), 1u);  // a v1 agent: one version behind keeps working
  EXPECT_EQ(*negotiate_version(2, 1), 2u);
  EXPECT_EQ(*negotiate_version(5, 1), kProtocolVersion);  // a newer agent talks down to us
  auto newer_only = negotiate_version(7, 5);
  ASSERT_FALSE(newer_only.ok());
  EXPECT_NE(newer_only.error().message().find("5..7"), std::string::npos);
  EXPECT_FALSE(negotiate_version(0, 0).ok());
  EXPECT_FALSE(negotiate_version(1, 2).ok());  // min above max
}

pb::DesiredState big_desired(int workloads, size_t env_bytes) {
  pb::DesiredState d;
  d.set_node("edge-1");
  d.set_from_revision(4);
  d.set_to_revision(9);
  for (int i = 0; i < workloads; ++i) {
    auto* w = d.add_upserts();
    w->set_name("w" + std::to_string(i));
    w->set_type("process");
    (*w->mutable_process()->mutable_env())["PAD"] = std::string(env_bytes, 'x');
    d.add_deletes("gone" + std::to_string(i));
  }
  return d;
}

TEST(SplitDesired, AMessageThatFitsStaysWhole) {
  auto d = big_desired(3, 10);
  auto parts = split_desired(d, 1000);
  ASSERT_TRUE(parts.ok());
  ASSERT_EQ(parts->size(), 1u);
  EXPECT_EQ(parts->at(0).parts(), 0u);
  EXPECT_EQ(parts->at(0).SerializeAsString(), d.SerializeAsString());
}

TEST(SplitDesired, PartsFitAndReassembleInAnyOrderWithRepeats) {
  const auto d = big_desired(40, 300);
  const size_t cap = 2000;
  auto parts = split_desired(d, cap);
  ASSERT_TRUE(parts.ok()) << parts.error().message();
  ASSERT_GT(parts->size(), 5u);
  for (const auto& p : *parts) {
    EXPECT_LE(p.ByteSizeLong(), cap);
    EXPECT_EQ(p.parts(), parts->size());
    EXPECT_EQ(p.to_revision(), 9u);
  }
  std::vector<pb::DesiredState> shuffled = *parts;
  shuffled.push_back(parts->at(1));
  std::shuffle(shuffled.begin(), shuffled.end(), std::mt19937(7));
  DesiredAssembler assembler;
  std::optional<pb::DesiredState> whole;
  size_t fed = 0;
  for (const auto& p : shuffled) {
    ++fed;
    auto r = assembler.add(p);
    ASSERT_TRUE(r.ok()) << r.error().message();
    if (*r) {
      whole = **r;
      break;
    }
  }
  ASSERT_TRUE(whole.has_value());
  EXPECT_GE(fed, parts->size());
  EXPECT_EQ(whole->SerializeAsString(), d.SerializeAsString());
  EXPECT_EQ(assembler.collected(), 0u);
}

TEST(SplitDesired, AWorkloadLargerThanAMessageIsAnError) {
  auto r = split_desired(big_desired(2, 5000), 2000);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("workload 'w0'"), std::string::npos);
}

TEST(DesiredAssembler, APartOfAnotherMessageStartsOverAndBadPartsAreRefused) {
  auto old_parts = *split_desired(big_desired(20, 300), 2000);
  auto d = big_desired(20, 300);
  d.set_to_revision(10);
  auto new_parts = *split_desired(d, 2000);
  DesiredAssembler assembler;
  ASSERT_TRUE(assembler.add(old_parts[0]).ok());
  ASSERT_TRUE(assembler.add(old_parts[1]).ok());
  EXPECT_EQ(assembler.collected(), 2u);
  std::optional<pb::DesiredState> whole;
  for (const auto& p : new_parts) {
    auto r = assembler.add(p);
    ASSERT_TRUE(r.ok());
    if (*r) whole = **r;
  }
  ASSERT_TRUE(whole.has_value());
  EXPECT_EQ(whole->to_revision(), 10u);
  EXPECT_EQ(whole->upserts_size(), 20);

  pb::DesiredState bad = new_parts[0];
  bad.set_part(bad.parts());
  EXPECT_FALSE(assembler.add(bad).ok());
  bad.set_part(0);
  bad.set_parts(DesiredAssembler::kMaxParts + 1);
  EXPECT_FALSE(assembler.add(bad).ok());
  bad.set_parts(1);
  EXPECT_FALSE(assembler.add(bad).ok());
  EXPECT_EQ(assembler.collected(), 0u);
}

}  // namespace
}  // namespace flotilla::sync
