// Reading the twin messages an agent sent to the hub in tests (by exact topic: the fixture's
// parse_topic-based helpers need not know the `twin` kind).
#pragma once

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "sync/codec.hpp"
#include "sync/topics.hpp"
#include "sync/transport.hpp"

namespace flotilla::agent::testing {

// Every DeviceReported in the TwinReported messages among `received`, in order.
inline std::vector<v1::DeviceReported> reported_to_hub(const std::vector<sync::Message>& received,
                                                       const std::string& node) {
  std::vector<v1::DeviceReported> out;
  for (const auto& m : received) {
    if (m.topic != sync::up_topic(node, 16, "twin")) continue;
    auto batch = sync::decode<v1::TwinReported>(m.payload);
    EXPECT_TRUE(batch.ok());
    if (!batch) continue;
    EXPECT_EQ(batch->node(), node);
    out.insert(out.end(), batch->devices().begin(), batch->devices().end());
  }
  return out;
}

}  // namespace flotilla::agent::testing
