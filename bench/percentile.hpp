// Nearest-rank percentiles of benchmark samples.
#pragma once

#include <algorithm>
#include <cmath>
#include <vector>

namespace flotilla::bench {

// Percentile p (0..100) of sorted values, nearest rank: the smallest value with at least p% of
// the values at or below it (p 0: the smallest). -1 when there are none.
inline double percentile(const std::vector<double>& sorted, double p) {
  if (sorted.empty()) return -1;
  const auto idx = static_cast<size_t>(std::ceil(p / 100.0 * static_cast<double>(sorted.size())));
  return sorted[std::min(sorted.size() - 1, idx == 0 ? 0 : idx - 1)];
}

}  // namespace flotilla::bench
