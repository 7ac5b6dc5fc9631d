#include "cloud-hub/disruption.hpp"

#include <cmath>

namespace flotilla::hub {

Disruption count_disruption(const std::set<InstanceKey>& running, const Placements& after,
                            const std::set<std::string>& replaced) {
  Disruption d;
  d.running = static_cast<int64_t>(running.size());
  for (const auto& [workload, node] : running) {
    auto it = after.find(workload);
    const bool kept = it != after.end() && it->second.count(node) > 0;
    if (!kept || replaced.count(workload) > 0) ++d.stopped;
  }
  return d;
}

namespace {

std::string percent(double share) {
  double p = share * 100;
  if (std::abs(p - std::round(p)) < 0.05) return std::to_string(std::lround(p)) + "%";
  std::string s = std::to_string(std::round(p * 10) / 10);
  return s.substr(0, s.find('.') + 2) + "%";
}

}  // namespace

std::string disruption_refusal(const std::string& verb, const Disruption& d, double max_share) {
  if (d.stopped <= 1 || d.running == 0) return "";
  const double share = static_cast<double>(d.stopped) / static_cast<double>(d.running);
  if (share <= max_share) return "";
  return "refused: this " + verb + " stops " + std::to_string(d.stopped) + " of " +
         std::to_string(d.running) + " running instances (" + percent(share) + "), over the " +
         percent(max_share) + " limit; use --force";
}

}  // namespace flotilla::hub
