#include "cloud-hub/taints.hpp"

namespace flotilla::hub {

bool tolerates(const Toleration& t, const Taint& taint) {
  if (!t.effect.empty() && t.effect != taint.effect) return false;
  if (t.op == "Exists") return t.key.empty() || t.key == taint.key;
  return t.key == taint.key && t.value == taint.value;
}

const Taint* untolerated(const std::vector<Taint>& taints,
                         const std::vector<Toleration>& tolerations, const std::string& effect) {
  for (const Taint& taint : taints) {
    if (taint.effect != effect) continue;
    bool ok = false;
    for (const Toleration& t : tolerations) ok = ok || tolerates(t, taint);
    if (!ok) return &taint;
  }
  return nullptr;
}

std::string taint_text(const Taint& t) {
  return t.key + (t.value.empty() ? "" : "=" + t.value) + ":" + t.effect;
}

}  // namespace flotilla::hub
