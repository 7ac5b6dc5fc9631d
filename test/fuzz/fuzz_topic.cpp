// fuzz_topic: sync::parse_topic and sync::topic_matches on arbitrary bytes.
//
// Invariants: a topic that parses is exactly what make_topic() writes for the parsed value (the
// parser accepts nothing else, so two spellings can never name one node's stream); a rejected
// topic gets a reason; topic_matches never crashes, every string matches itself, and a filter
// without wildcard levels matches only the identical topic.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "sync/topics.hpp"
#include "test/fuzz/fuzz_check.hpp"

namespace flotilla::fuzz {
namespace {

bool has_wildcard_level(std::string_view filter) {
  size_t start = 0;
  while (true) {
    size_t end = filter.find('/', start);
    std::string_view level =
        filter.substr(start, end == std::string_view::npos ? end : end - start);
    if (level == "+" || level == "#") return true;
    if (end == std::string_view::npos) return false;
    start = end + 1;
  }
}

void check_parse(std::string_view input) {
  auto parsed = sync::parse_topic(input);
  if (!parsed) {
    FUZZ_CHECK(!parsed.error().message().empty(), "parse_topic rejected without a reason");
    return;
  }
  const std::string canonical = sync::make_topic(*parsed);
  FUZZ_CHECK(canonical == input, "parse_topic accepted '" + std::string(input) +
                                     "' but make_topic gives '" + canonical + "'");
  FUZZ_CHECK(sync::validate_node_name(parsed->node).ok(),
             "parse_topic accepted invalid node '" + parsed->node + "'");
  const std::string level = "flotilla/v1/s/" + std::to_string(parsed->shard) + "/n/";
  if (parsed->direction == sync::Direction::kUp) {
    FUZZ_CHECK(sync::topic_matches(sync::shard_up_filter(parsed->shard), input),
               "up topic '" + std::string(input) + "' not matched by its shard's filter");
  } else {
    FUZZ_CHECK(sync::topic_matches(level + parsed->node + "/down/+", input),
               "down topic '" + std::string(input) + "' not matched by its node's filter");
  }
}

void check_matches(std::string_view filter, std::string_view topic) {
  const bool match = sync::topic_matches(filter, topic);
  FUZZ_CHECK(sync::topic_matches(filter, filter),
             "'" + std::string(filter) + "' does not match itself");
  if (!has_wildcard_level(filter)) {
    FUZZ_CHECK(match == (filter == topic), "filter '" + std::string(filter) +
                                               "' without wildcards vs topic '" +
                                               std::string(topic) + "'");
  }
  if (match) FUZZ_CHECK(sync::topic_matches("#", topic), "'#' does not match everything");
}

}  // namespace
}  // namespace flotilla::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace flotilla::fuzz;
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  check_parse(input);
  // The input also reads as "filter NUL topic".
  const size_t nul = input.find('\0');
  if (nul == std::string_view::npos) {
    check_matches(input, input);
  } else {
    check_matches(input.substr(0, nul), input.substr(nul + 1));
  }
  return 0;
}
