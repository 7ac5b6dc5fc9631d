// Node taints and workload tolerations, with Kubernetes semantics.
//
// A node reports taints (key, optional value, effect). A workload runs on a tainted node only
// if one of its tolerations matches each taint: same key (an empty key with Exists matches
// every key), operator Equal with the same value or Exists with any value, and the same effect
// (an empty effect matches both). NoSchedule keeps new instances away; NoExecute also removes
// the instances placed there.
//
// Thread-safety: values and pure functions.
#pragma once

#include <string>
#include <vector>

namespace flotilla::hub {

inline constexpr const char* kNoSchedule = "NoSchedule";
inline constexpr const char* kNoExecute = "NoExecute";

struct Taint {
  std::string key;
  std::string value;   // may be empty
  std::string effect;  // NoSchedule | NoExecute
  bool operator==(const Taint&) const = default;
};

struct Toleration {
  std::string key;           // empty: every key (operator Exists only)
  std::string op = "Equal";  // Equal | Exists
  std::string value;         // Equal: must match; Exists: empty
  std::string effect;        // empty: both effects
  bool operator==(const Toleration&) const = default;
};

bool tolerates(const Toleration& t, const Taint& taint);
// The first of `taints` with `effect` that none of `tolerations` tolerates; nullptr if none.
const Taint* untolerated(const std::vector<Taint>& taints,
                         const std::vector<Toleration>& tolerations, const std::string& effect);
// "key=value:Effect", or "key:Effect" without a value.
std::string taint_text(const Taint& t);

}  // namespace flotilla::hub
