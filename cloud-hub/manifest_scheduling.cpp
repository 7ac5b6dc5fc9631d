// Readers of the scheduling fields of a Workload spec: tolerations, arch, nodePool, spread.
#include "cloud-hub/manifest_sections.hpp"

namespace flotilla::hub {
namespace {

using Kind = DocNode::Kind;

Toleration read_toleration(Checker& c, const DocNode& n, const std::string& path) {
  Toleration t;
  if (!c.want_map(n, path)) return t;
  c.only_fields(n, path, {"key", "operator", "value", "effect"}, {"tolerationSeconds"});
  if (const DocNode* op = n.find("operator")) {
    t.op = c.text(*op, join_path(path, "operator"));
    if (!c.failed() && t.op != "Equal" && t.op != "Exists") {
      c.fail(*op, join_path(path, "operator"), "want Equal or Exists, got '" + t.op + "'");
    }
  }
  if (const DocNode* key = n.find("key")) {
    t.key = c.text(*key, join_path(path, "key"));
    if (!c.failed() && !t.key.empty() && !valid_label_key(t.key)) {
      c.fail(*key, join_path(path, "key"),
             "'" + t.key + "' is not a label key (letters, digits, '-', '_', '.', '/')");
    }
  }
  if (const DocNode* value = n.find("value")) {
    t.value = c.text(*value, join_path(path, "value"));
    if (!c.failed() && !valid_label_value(t.value)) {
      c.fail(*value, join_path(path, "value"),
             "'" + t.value + "' is not a label value (letters, digits, '-', '_', '.')");
    }
    if (!c.failed() && t.op == "Exists" && !t.value.empty()) {
      c.fail(*value, join_path(path, "value"), "must be empty with operator Exists");
    }
  }
  if (!c.failed() && t.op == "Equal" && t.key.empty()) {
    c.fail(n, join_path(path, "key"), "required with operator Equal (Exists alone matches all)");
  }
  if (const DocNode* effect = n.find("effect")) {
    t.effect = c.text(*effect, join_path(path, "effect"));
    if (!c.failed() && !t.effect.empty() && t.effect != kNoSchedule && t.effect != kNoExecute) {
      c.fail(*effect, join_path(path, "effect"),
             "want NoSchedule or NoExecute (or none for both), got '" + t.effect + "'");
    }
  }
  return t;
}

}  // namespace

void read_tolerations(Checker& c, const DocNode& n, const std::string& path, WorkloadManifest& m) {
  if (n.kind == Kind::kNull) return;
  if (n.kind != Kind::kList) {
    c.fail(n, path, "want a list, got " + describe_kind(n.kind));
    return;
  }
  for (size_t i = 0; i < n.items.size() && !c.failed(); ++i) {
    m.tolerations.push_back(read_toleration(c, n.items[i], path + "[" + std::to_string(i) + "]"));
  }
}

void read_node_choice(Checker& c, const DocNode& spec, WorkloadManifest& m) {
  if (const DocNode* arch = spec.find("arch"); arch != nullptr && arch->kind != Kind::kNull) {
    m.arch = c.text_list(*arch, "spec.arch");
    for (const auto& a : m.arch) {
      if (c.failed()) break;
      if (a != "amd64" && a != "arm64" && a != "arm" && a != "riscv64") {
        c.fail(*arch, "spec.arch", "want amd64, arm64, arm or riscv64, got '" + a + "'");
      }
    }
  }
  if (const DocNode* pool = spec.find("nodePool"); pool != nullptr && pool->kind != Kind::kNull) {
    m.node_pool = c.nonempty_text(*pool, "spec.nodePool");
    if (!c.failed() && !valid_label_value(m.node_pool)) {
      c.fail(*pool, "spec.nodePool",
             "'" + m.node_pool + "' is not a label value (letters, digits, '-', '_', '.')");
    }
  }
  const DocNode* spread = spec.find("spread");
  if (spread == nullptr || spread->kind == Kind::kNull || c.failed()) return;
  if (!c.want_map(*spread, "spec.spread")) return;
  c.only_fields(*spread, "spec.spread", {"topologyKey", "maxSkew"});
  if (m.every_node) {
    c.fail(*spread, "spec.spread", "applies to replicas, not to placement.everyNode");
    return;
  }
  if (const DocNode* key = c.require(*spread, "topologyKey", "spec.spread", "a node label key")) {
    m.spread_key = c.nonempty_text(*key, "spec.spread.topologyKey");
    if (!c.failed() && !valid_label_key(m.spread_key)) {
      c.fail(*key, "spec.spread.topologyKey", "'" + m.spread_key + "' is not a label key");
    }
  }
  if (const DocNode* skew = spread->find("maxSkew")) {
    m.spread_max_skew = c.whole(*skew, "spec.spread.maxSkew", 1, 10000);
  }
}

}  // namespace flotilla::hub
