// Resource quantities as users write them in manifests: cpu in cores ("500m", "0.5", 1) and
// memory in bytes with binary or decimal suffixes ("64Mi", "1Gi", "1G", "1000").
//
// Parsers return a reason on failure (without the field name; the manifest parser adds it).
// Formatters produce the shortest exact text, so parse(format(x)) == x.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "common/expected.hpp"

namespace flotilla::hub {

// Largest values accepted: 1,000,000 cores and 2^60 bytes (far beyond any node, far from
// overflow when requests are summed).
inline constexpr int64_t kMaxCpuMillis = 1'000'000'000;
inline constexpr int64_t kMaxMemoryBytes = int64_t{1} << 60;

// "500m" -> 500, "0.5" -> 500, "2" -> 2000. Finer than 1m is an error.
Expected<int64_t> parse_cpu_millis(std::string_view text);
// "64Mi", "1Gi", "1G", "1000", "1.5Gi" (fractions are rounded up to a whole byte).
Expected<int64_t> parse_memory_bytes(std::string_view text);

std::string format_cpu_millis(int64_t millis);   // 2000 -> "2", 500 -> "500m"
std::string format_memory_bytes(int64_t bytes);  // 67108864 -> "64Mi", 1000000000 -> "1G"

}  // namespace flotilla::hub
