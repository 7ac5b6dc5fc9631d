#include "bench/device_names.hpp"

#include <charconv>
#include <cstdio>

namespace flotilla::bench {
namespace {

constexpr std::string_view kPrefix = "dev-";

}  // namespace

std::string device_name(uint32_t index) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "dev-%07u", index);
  return buf;
}

std::optional<uint32_t> device_index(std::string_view name) {
  if (name.size() < kPrefix.size() + 7 || name.substr(0, kPrefix.size()) != kPrefix) return {};
  const std::string_view digits = name.substr(kPrefix.size());
  uint32_t v = 0;
  auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), v);
  if (ec != std::errc() || end != digits.data() + digits.size()) return {};
  if (device_name(v) != name) return {};  // extra leading zeros: not a name we made
  return v;
}

}  // namespace flotilla::bench
