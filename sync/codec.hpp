// Encoding and bounded decoding of protocol messages.
//
// decode() refuses payloads over the size cap before parsing and reports protobuf parse
// failures as Errors; callers count and log the drop, and nothing else changes.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "common/expected.hpp"
#include "sync/flotilla.pb.h"

namespace flotilla::sync {

// Largest message either side publishes or accepts. Batches are cut to stay below it.
inline constexpr size_t kMaxMessageBytes = 256 * 1024;

template <typename M>
std::string encode(const M& msg) {
  return msg.SerializeAsString();
}

template <typename M>
Expected<M> decode(std::string_view bytes, size_t max_bytes = kMaxMessageBytes) {
  if (bytes.size() > max_bytes) {
    return Error("Failed to decode " + M().GetTypeName() + ": " + std::to_string(bytes.size()) +
                 " bytes is over the " + std::to_string(max_bytes) + "-byte limit");
  }
  M msg;
  if (!msg.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
    return Error("Failed to decode " + M().GetTypeName() + ": malformed protobuf (" +
                 std::to_string(bytes.size()) + " bytes)");
  }
  return msg;
}

}  // namespace flotilla::sync
