// fuzz_change_feed: the payloads hub instances tell each other their changes with
// (cloud-hub/change_feed.hpp decode_changes / encode_changes), on arbitrary bytes.
//
// Invariants: a rejected payload gets a reason; an accepted one is a fixed point: encoding what
// it decoded gives payloads within the size limit (a small one too, so the changes span several)
// that decode, together, to exactly the same changes.
#include <cstddef>
#include <cstdint>
#include <set>
#include <string>

#include "cloud-hub/change_feed.hpp"
#include "test/fuzz/fuzz_check.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace flotilla::hub;
  const std::string input(reinterpret_cast<const char*>(data), size);
  auto decoded = decode_changes(input);
  if (!decoded) {
    FUZZ_CHECK(!decoded.error().message().empty(), "decode_changes rejected without a reason");
    return 0;
  }
  for (const size_t limit : {kMaxChangePayload, size_t{64}}) {
    std::set<Change> back;
    for (const auto& payload : encode_changes(*decoded, limit)) {
      FUZZ_CHECK(payload.size() <= limit, "a payload of " + std::to_string(payload.size()) +
                                              " bytes over the limit " + std::to_string(limit));
      auto again = decode_changes(payload);
      FUZZ_CHECK(again.ok(), "an encoded payload does not decode: " + again.error().message());
      back.merge(*again);
    }
    // Only names too long for the limit may be left out.
    for (const auto& c : *decoded) {
      const bool fits = c.name.size() + 3 + 19 <= limit;
      FUZZ_CHECK(back.count(c) == (fits ? 1u : 0u),
                 "change '" + c.name + "' " + (fits ? "lost" : "kept over the limit"));
    }
    FUZZ_CHECK(back.size() <= decoded->size(), "encoding made up changes");
  }
  return 0;
}
