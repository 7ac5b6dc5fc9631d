// Label selectors (matchLabels, ?labelSelector=): one rule for lists, watches, scheduling
// queries and admission policies.
#pragma once

#include <map>
#include <string>

namespace flotilla::hub {

// Whether `labels` has every key of `selector` with the same value (an empty selector matches
// everything).
inline bool labels_match(const std::map<std::string, std::string>& selector,
                         const std::map<std::string, std::string>& labels) {
  for (const auto& [k, v] : selector) {
    auto it = labels.find(k);
    if (it == labels.end() || it->second != v) return false;
  }
  return true;
}

}  // namespace flotilla::hub
