// Validation of manifest documents into WorkloadManifest and DeviceManifest values.
//
// The readers below are built from Checker (manifest_checker.hpp), which keeps the first error.
#include "cloud-hub/manifest.hpp"

#include <algorithm>
#include <cctype>
#include <set>

#include "cloud-hub/manifest_checker.hpp"
#include "cloud-hub/manifest_doc.hpp"
#include "cloud-hub/manifest_sections.hpp"
#include "cloud-hub/quantity.hpp"
#include "common/twin.hpp"
#include "sync/topics.hpp"

namespace flotilla::hub {
namespace {

using Kind = DocNode::Kind;

ProcessSection read_process(Checker& c, const DocNode& n, const std::string& path) {
  ProcessSection p;
  if (!c.want_map(n, path)) return p;
  c.only_fields(n, path, {"command", "env", "workdir"});
  if (const DocNode* cmd = c.require(n, "command", path, "the program and its arguments")) {
    p.command = c.text_list(*cmd, join_path(path, "command"));
    if (!c.failed() && p.command.empty())
      c.fail(*cmd, join_path(path, "command"), "must not be empty");
    if (!c.failed() && p.command[0].empty()) {
      c.fail(*cmd, join_path(path, "command[0]"), "must not be empty");
    }
  }
  if (const DocNode* env = n.find("env")) p.env = c.env(*env, join_path(path, "env"));
  if (const DocNode* wd = n.find("workdir")) p.workdir = c.text(*wd, join_path(path, "workdir"));
  return p;
}

void read_resources(Checker& c, const DocNode& n, const std::string& path, WorkloadManifest& m) {
  if (n.kind == Kind::kNull || !c.want_map(n, path)) return;
  c.only_fields(n, path, {"cpu", "memory"});
  if (const DocNode* cpu = n.find("cpu")) {
    auto v = cpu->is_scalar() ? parse_cpu_millis(cpu->text) : Expected<int64_t>(Error(""));
    if (!v) {
      c.fail(*cpu, join_path(path, "cpu"),
             cpu->is_scalar() ? v.error().message() : "want a quantity such as 500m or 2");
    } else {
      m.cpu_millis = *v;
    }
  }
  if (const DocNode* mem = n.find("memory")) {
    auto v = mem->is_scalar() ? parse_memory_bytes(mem->text) : Expected<int64_t>(Error(""));
    if (!v) {
      c.fail(*mem, join_path(path, "memory"),
             mem->is_scalar() ? v.error().message() : "want a quantity such as 64Mi or 1Gi");
    } else {
      m.memory_bytes = *v;
    }
  }
}

void read_placement(Checker& c, const DocNode& spec, WorkloadManifest& m) {
  const DocNode* replicas = spec.find("replicas");
  const DocNode* placement = spec.find("placement");
  if (replicas != nullptr && placement != nullptr) {
    c.fail(*placement, "spec", "set either replicas or placement.everyNode, not both");
    return;
  }
  if (replicas == nullptr && placement == nullptr) {
    c.fail(spec, "spec", "set replicas (a number) or placement: {everyNode: true}");
    return;
  }
  if (replicas != nullptr) {
    m.replicas = c.whole(*replicas, "spec.replicas", 0, 10000);
    return;
  }
  if (!c.want_map(*placement, "spec.placement")) return;
  c.only_fields(*placement, "spec.placement", {"everyNode"});
  const DocNode* every = c.require(*placement, "everyNode", "spec.placement", "true");
  if (every == nullptr) return;
  if (every->kind != Kind::kBool || !every->b) {
    c.fail(*every, "spec.placement.everyNode", "want true (or use spec.replicas instead)");
    return;
  }
  m.every_node = true;
}

void read_spec(Checker& c, const DocNode& spec, WorkloadManifest& m) {
  if (!c.want_map(spec, "spec")) return;
  c.only_fields(spec, "spec",
                {"type", "replicas", "placement", "selector", "tolerations", "resources",
                 "restartPolicy", "terminationGracePeriodSeconds", "process", "container", "vm",
                 "probes", "evictAfterSeconds", "arch", "nodePool", "spread", "update"});
  if (c.failed()) return;
  if (const DocNode* type = c.require(spec, "type", "spec", "process, container or vm")) {
    m.type = c.text(*type, "spec.type");
    if (!c.failed() && m.type != "process" && m.type != "container" && m.type != "vm") {
      c.fail(*type, "spec.type", "want process, container or vm, got '" + m.type + "'");
    }
  }
  if (c.failed()) return;
  read_placement(c, spec, m);
  if (const DocNode* sel = spec.find("selector"); sel != nullptr && sel->kind != Kind::kNull) {
    if (c.want_map(*sel, "spec.selector")) {
      c.only_fields(*sel, "spec.selector", {"matchLabels"}, {"matchExpressions"});
      if (const DocNode* ml = sel->find("matchLabels")) {
        m.selector = c.labels(*ml, "spec.selector.matchLabels");
      }
    }
  }
  if (const DocNode* tol = spec.find("tolerations")) {
    read_tolerations(c, *tol, "spec.tolerations", m);
  }
  if (const DocNode* res = spec.find("resources")) read_resources(c, *res, "spec.resources", m);
  if (const DocNode* rp = spec.find("restartPolicy")) {
    m.restart_policy = c.text(*rp, "spec.restartPolicy");
    if (!c.failed() && m.restart_policy != "Always" && m.restart_policy != "OnFailure" &&
        m.restart_policy != "Never") {
      c.fail(*rp, "spec.restartPolicy",
             "want Always, OnFailure or Never, got '" + m.restart_policy + "'");
    }
  }
  read_node_choice(c, spec, m);
  if (const DocNode* e = spec.find("evictAfterSeconds")) {
    m.evict_after_seconds = c.whole(*e, "spec.evictAfterSeconds", 0, 365LL * 86400);
  }
  if (const DocNode* g = spec.find("terminationGracePeriodSeconds")) {
    m.grace_seconds = c.whole(*g, "spec.terminationGracePeriodSeconds", 0, 86400);
  }
  if (c.failed()) return;
  if (const DocNode* probes = spec.find("probes")) read_probes(c, *probes, "spec.probes", m);
  if (const DocNode* update = spec.find("update")) read_update(c, *update, "spec.update", m);
  if (c.failed()) return;
  // Exactly the section of the chosen type.
  for (const char* section : {"process", "container", "vm"}) {
    const DocNode* n = spec.find(section);
    if (section == m.type) {
      if (n == nullptr || n->kind == Kind::kNull) {
        c.fail(spec, std::string("spec.") + section, "required for type " + m.type);
        return;
      }
      if (m.type == "process") m.process = read_process(c, *n, "spec.process");
      if (m.type == "container") m.container = read_container(c, *n, "spec.container");
      if (m.type == "vm") m.vm = read_vm(c, *n, "spec.vm");
    } else if (n != nullptr) {
      c.fail(*n, std::string("spec.") + section, "not allowed for type " + m.type);
      return;
    }
  }
}

// kind Device: metadata {name, labels}, spec {node, desired}.
Expected<DeviceManifest> read_device(Checker& c, const DocNode& doc) {
  DeviceManifest d;
  if (const DocNode* meta = c.require(doc, "metadata", "", "with a name");
      meta != nullptr && c.want_map(*meta, "metadata")) {
    c.only_fields(*meta, "metadata", {"name", "labels"});
    if (const DocNode* name = c.require(*meta, "name", "metadata")) {
      d.line = name->line;
      d.name = c.text(*name, "metadata.name");
      if (auto st = sync::validate_node_name(d.name); !st && !c.failed()) {
        c.fail(*name, "metadata.name", "device " + st.error().message().substr(5));
      }
    }
    if (const DocNode* labels = meta->find("labels"))
      d.labels = c.labels(*labels, "metadata.labels");
  }
  if (c.failed()) return c.error();
  const DocNode* spec = c.require(doc, "spec", "", "with the node the device is attached to");
  if (spec == nullptr || !c.want_map(*spec, "spec")) return c.error();
  c.only_fields(*spec, "spec", {"node", "desired"});
  if (const DocNode* node = c.require(*spec, "node", "spec", "the node it is attached to")) {
    d.node = c.text(*node, "spec.node");
    if (auto st = sync::validate_node_name(d.node); !st && !c.failed()) {
      c.fail(*node, "spec.node", st.error().message());
    }
  }
  if (const DocNode* desired = spec->find("desired");
      desired != nullptr && desired->kind != Kind::kNull && c.want_map(*desired, "spec.desired")) {
    nlohmann::json doc_json = desired->to_json();
    // The twin's own rules (size, nesting; a whole document has no null properties).
    twin::Twin check;
    if (auto st = check.replace_desired(doc_json); !st && !c.failed()) {
      c.fail(*desired, "spec.desired", st.error().message());
    }
    d.desired = std::move(doc_json);
  }
  if (c.failed()) return c.error();
  return d;
}

// One document of either kind, added to `out`.
Status read_document(const DocNode& doc, const std::string& source, Manifests& out) {
  Checker c(source);
  WorkloadManifest m;
  if (doc.kind != Kind::kMap) {
    c.fail(
        doc, "",
        "want a mapping with apiVersion, kind, metadata and spec, got " + describe_kind(doc.kind));
    return c.error();
  }
  const DocNode* api = c.require(doc, "apiVersion", "", kApiVersion);
  if (api != nullptr && c.text(*api, "apiVersion") != kApiVersion && !c.failed()) {
    c.fail(*api, "apiVersion", std::string("want '") + kApiVersion + "', got '" + api->text + "'");
  }
  const DocNode* kind = c.require(doc, "kind", "", "Workload");
  if (c.failed()) return c.error();
  std::string k = c.text(*kind, "kind");
  if (k != "Workload" && k != "Device" && k != "Rollout" && !c.failed()) {
    c.fail(*kind, "kind", "unknown kind '" + k + "' (want Workload, Device or Rollout)");
  }
  c.only_fields(doc, "", {"apiVersion", "kind", "metadata", "spec", "status"});
  if (c.failed()) return c.error();
  if (k == "Rollout") {
    auto r = read_rollout(c, doc);
    if (!r) return r.error();
    out.rollouts.push_back(std::move(*r));
    return Ok();
  }
  if (k == "Device") {
    auto d = read_device(c, doc);
    if (!d) return d.error();
    out.devices.push_back(std::move(*d));
    return Ok();
  }

  // A missing or empty metadata is reported as the field the user must add.
  if (const DocNode* meta = doc.find("metadata"); meta == nullptr || meta->kind == Kind::kNull) {
    c.fail(meta != nullptr ? *meta : doc, "metadata.name", "required");
    return c.error();
  }
  if (const DocNode* meta = c.require(doc, "metadata", "", "with a name");
      meta != nullptr && c.want_map(*meta, "metadata")) {
    // The read-only fields the hub adds are accepted (and ignored), so the output of
    // `flotctl get workload NAME -o yaml` can be edited and applied again.
    c.only_fields(
        *meta, "metadata",
        {"name", "labels", "annotations", "generation", "creationTimestamp", "updateTimestamp"});
    if (const DocNode* name = c.require(*meta, "name", "metadata")) {
      m.line = name->line;
      m.name = c.text(*name, "metadata.name");
      if (auto st = validate_name(m.name); !st && !c.failed()) {
        c.fail(*name, "metadata.name", st.error().message());
      }
    }
    if (const DocNode* labels = meta->find("labels"))
      m.labels = c.labels(*labels, "metadata.labels");
    if (const DocNode* ann = meta->find("annotations")) {
      m.annotations = c.text_map(
          *ann, "metadata.annotations", [](const std::string& key) { return valid_label_key(key); },
          [](const std::string&) { return true; }, "letters, digits, '-', '_', '.', '/'", "");
    }
  }
  if (c.failed()) return c.error();
  if (const DocNode* spec = c.require(doc, "spec", "")) read_spec(c, *spec, m);
  if (c.failed()) return c.error();
  out.workloads.push_back(std::move(m));
  return Ok();
}

// "file.yaml:12" for a document's name line, or the file alone.
std::string where(const std::string& source, int line) {
  return line > 0 ? source + ":" + std::to_string(line) : source;
}

}  // namespace

Status validate_name(std::string_view name) {
  auto alnum = [](char ch) {
    return std::islower(static_cast<unsigned char>(ch)) ||
           std::isdigit(static_cast<unsigned char>(ch));
  };
  bool ok = !name.empty() && name.size() <= 63 && alnum(name.front()) && alnum(name.back()) &&
            std::all_of(name.begin(), name.end(), [&](char ch) { return alnum(ch) || ch == '-'; });
  if (ok) return Ok();
  return Error("'" + std::string(name) +
               "' is not a valid name (1-63 lowercase letters, digits and '-', starting and "
               "ending with a letter or digit)");
}

Expected<Manifests> parse_all_manifests(std::string_view text, const std::string& source) {
  auto docs = parse_documents(text, source);
  if (!docs) return docs.error();
  if (docs->empty()) return Error(source + ": no manifest found (the input is empty)");
  Manifests out;
  std::set<std::string> workloads;
  std::set<std::string> devices;
  std::set<std::string> rollouts;
  for (const DocNode& doc : *docs) {
    const size_t had_workloads = out.workloads.size();
    const size_t had_rollouts = out.rollouts.size();
    if (auto st = read_document(doc, source, out); !st) return st.error();
    if (out.rollouts.size() > had_rollouts) {
      const RolloutManifest& r = out.rollouts.back();
      if (!rollouts.insert(r.name).second) {
        return Error(where(source, r.line) + ": metadata.name: rollout '" + r.name +
                     "' appears twice");
      }
    } else if (out.workloads.size() > had_workloads) {
      const WorkloadManifest& m = out.workloads.back();
      if (!workloads.insert(m.name).second) {
        return Error(where(source, m.line) + ": metadata.name: workload '" + m.name +
                     "' appears twice");
      }
    } else if (const DeviceManifest& d = out.devices.back(); !devices.insert(d.name).second) {
      return Error(where(source, d.line) + ": metadata.name: device '" + d.name +
                   "' appears twice");
    }
  }
  return out;
}

Expected<std::vector<WorkloadManifest>> parse_manifests(std::string_view text,
                                                        const std::string& source) {
  auto all = parse_all_manifests(text, source);
  if (!all) return all.error();
  if (!all->devices.empty()) {
    const DeviceManifest& d = all->devices.front();
    return Error(where(source, d.line) + ": kind Device: device '" + d.name +
                 "' is not a workload (devices are applied with flotctl apply or PUT "
                 "/api/v1/devices/NAME)");
  }
  if (!all->rollouts.empty()) {
    const RolloutManifest& r = all->rollouts.front();
    return Error(where(source, r.line) + ": kind Rollout: rollout '" + r.name +
                 "' is not a workload (rollouts are applied with flotctl apply or PUT "
                 "/api/v1/rollouts/NAME)");
  }
  return std::move(all->workloads);
}

nlohmann::json device_body(const DeviceManifest& d) {
  nlohmann::json body = {{"node", d.node}, {"labels", d.labels}};
  if (d.desired) body["desired"] = *d.desired;
  return body;
}

}  // namespace flotilla::hub
