// Parsing of admission policy files (admission.hpp), built on the manifest Checker so that errors
// read like manifest errors: "<file>:<line>: rule '<name>'.<key>: <why>".
#include <algorithm>
#include <array>
#include <cctype>
#include <set>

#include "cloud-hub/admission.hpp"
#include "cloud-hub/manifest_checker.hpp"
#include "cloud-hub/manifest_doc.hpp"
#include "common/fs.hpp"

namespace flotilla::hub {
namespace {

using Kind = DocNode::Kind;

constexpr std::array<std::string_view, 10> kChecks = {
    "denyHostNetwork",    "requireImageDigest",
    "allowedRegistries",  "requireResourceLimits",
    "allowedTypes",       "maxReplicas",
    "requireNonRootUser", "requireReadOnlyRootFilesystem",
    "allowedHostPaths",   "requireReadOnlyMounts"};

// host[:port] as image references and URLs name registries: letters, digits, '-', '.', an
// optional :port, or a bracketed IPv6 literal. Compared in lower case.
bool valid_registry(const std::string& r) {
  if (r.empty() || r.size() > 255 || r.front() == '.' || r.front() == '-') return false;
  return std::all_of(r.begin(), r.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.' || c == ':' ||
           c == '[' || c == ']';
  });
}

// A `true` that turns a check on; false is refused rather than silently meaning "no rule".
bool must_be_true(Checker& c, const DocNode& n, const std::string& path) {
  bool v = c.boolean(n, path);
  if (!c.failed() && !v) c.fail(n, path, "want true (delete the rule to turn the check off)");
  return v;
}

void read_match(Checker& c, const DocNode& n, const std::string& path, AdmissionRule& r) {
  if (!c.want_map(n, path)) return;
  c.only_fields(n, path, {"names", "labels"});
  if (n.fields.empty()) c.fail(n, path, "want names or labels (or no match at all)");
  if (const DocNode* names = n.find("names")) {
    const std::string p = join_path(path, "names");
    r.match_names = c.text_list(*names, p);
    if (!c.failed() && r.match_names.empty()) c.fail(*names, p, "must not be empty");
    for (size_t i = 0; i < r.match_names.size() && !c.failed(); ++i) {
      if (auto st = validate_name(r.match_names[i]); !st) {
        c.fail(names->items[i], p + "[" + std::to_string(i) + "]", st.error().message());
      }
    }
  }
  if (const DocNode* labels = n.find("labels")) {
    const std::string p = join_path(path, "labels");
    r.match_labels = c.labels(*labels, p);
    if (!c.failed() && r.match_labels.empty()) c.fail(*labels, p, "must not be empty");
  }
}

void read_check(Checker& c, const std::string& key, const DocNode& n, const std::string& path,
                AdmissionRule& r) {
  if (key == "denyHostNetwork") {
    r.deny_host_network = must_be_true(c, n, path);
  } else if (key == "requireImageDigest") {
    r.require_image_digest = must_be_true(c, n, path);
  } else if (key == "requireResourceLimits") {
    r.require_resource_limits = must_be_true(c, n, path);
  } else if (key == "requireNonRootUser") {
    r.require_non_root_user = must_be_true(c, n, path);
  } else if (key == "requireReadOnlyRootFilesystem") {
    r.require_read_only_root = must_be_true(c, n, path);
  } else if (key == "requireReadOnlyMounts") {
    r.require_read_only_mounts = must_be_true(c, n, path);
  } else if (key == "maxReplicas") {
    r.max_replicas = c.whole(n, path, 0, 1'000'000);
  } else if (key == "allowedRegistries") {
    r.allowed_registries = c.text_list(n, path);
    if (!c.failed() && r.allowed_registries.empty()) {
      c.fail(n, path, "must not be empty (list the registries images may come from)");
    }
    for (size_t i = 0; i < r.allowed_registries.size() && !c.failed(); ++i) {
      std::string& reg = r.allowed_registries[i];
      if (!valid_registry(reg)) {
        c.fail(n.items[i], path + "[" + std::to_string(i) + "]",
               "want a registry HOST[:PORT] such as registry.example.com or 127.0.0.1:5000, "
               "got '" +
                   reg + "'");
      }
      std::transform(reg.begin(), reg.end(), reg.begin(),
                     [](unsigned char ch) { return static_cast<char>(std::tolower(ch)); });
    }
  } else if (key == "allowedTypes") {
    r.allowed_types = c.text_list(n, path);
    if (!c.failed() && r.allowed_types.empty()) c.fail(n, path, "must not be empty");
    for (size_t i = 0; i < r.allowed_types.size() && !c.failed(); ++i) {
      const std::string& t = r.allowed_types[i];
      if (t != "container" && t != "vm" && t != "process") {
        c.fail(n.items[i], path + "[" + std::to_string(i) + "]",
               "want container, vm or process, got '" + t + "'");
      }
    }
  } else if (key == "allowedHostPaths") {
    // An empty list is meaningful: no host mounts at all.
    std::vector<std::string> paths;
    if (n.kind != Kind::kList) {
      c.fail(n, path, "want a list, got " + describe_kind(n.kind));
    } else {
      for (size_t i = 0; i < n.items.size() && !c.failed(); ++i) {
        std::string p = c.absolute_path(n.items[i], path + "[" + std::to_string(i) + "]");
        while (p.size() > 1 && p.back() == '/') p.pop_back();
        paths.push_back(p);
      }
    }
    r.allowed_host_paths = std::move(paths);
  }
}

AdmissionRule read_rule(Checker& c, const DocNode& n, size_t index, std::set<std::string>& seen) {
  AdmissionRule r;
  std::string path = "rules[" + std::to_string(index) + "]";
  if (!c.want_map(n, path)) return r;
  const DocNode* name = c.require(n, "name", path, "e.g. no-host-network");
  if (name == nullptr) return r;
  r.name = c.nonempty_text(*name, join_path(path, "name"));
  r.line = name->line;
  if (c.failed()) return r;
  if (auto st = validate_name(r.name); !st) {
    c.fail(*name, join_path(path, "name"), st.error().message());
    return r;
  }
  if (!seen.insert(r.name).second) {
    c.fail(*name, join_path(path, "name"), "duplicate rule name '" + r.name + "'");
    return r;
  }
  path = "rule '" + r.name + "'";
  if (const DocNode* priv = n.find("denyPrivileged")) {
    c.fail(*priv, join_path(path, "denyPrivileged"),
           "Flotilla has no privileged containers (they always run with Docker's default "
           "capabilities and no host devices); use requireNonRootUser, denyHostNetwork, "
           "allowedHostPaths or allowedTypes");
    return r;
  }
  c.only_fields(n, path,
                {"name", "match", "denyHostNetwork", "requireImageDigest", "allowedRegistries",
                 "requireResourceLimits", "allowedTypes", "maxReplicas", "requireNonRootUser",
                 "requireReadOnlyRootFilesystem", "allowedHostPaths", "requireReadOnlyMounts"});
  if (c.failed()) return r;
  std::vector<std::string> checks;
  for (const auto& [key, value] : n.fields) {
    if (std::find(kChecks.begin(), kChecks.end(), key) == kChecks.end()) continue;
    checks.push_back(key);
    read_check(c, key, value, join_path(path, key), r);
  }
  if (c.failed()) return r;
  if (checks.size() != 1) {
    std::string list;
    for (auto k : kChecks) list += (list.empty() ? "" : ", ") + std::string(k);
    c.fail(n, path,
           checks.empty() ? "has no check; want exactly one of " + list
                          : "has " + std::to_string(checks.size()) + " checks (" + checks[0] +
                                ", " + checks[1] +
                                "); want exactly one per rule, so that a "
                                "refusal names the check that failed");
    return r;
  }
  if (const DocNode* m = n.find("match")) read_match(c, *m, join_path(path, "match"), r);
  return r;
}

}  // namespace

Expected<AdmissionPolicy> parse_admission_policy(std::string_view text, const std::string& source) {
  auto docs = parse_documents(text, source);
  if (!docs) return docs.error();
  if (docs->size() != 1) {
    return Error(source + ": want one AdmissionPolicy document, got " +
                 std::to_string(docs->size()));
  }
  const DocNode& doc = docs->front();
  Checker c(source);
  AdmissionPolicy policy;
  policy.source = source;
  if (!c.want_map(doc, "")) return c.error();
  c.only_fields(doc, "", {"apiVersion", "kind", "metadata", "rules"});
  if (const DocNode* v = c.require(doc, "apiVersion", "", kApiVersion)) {
    if (std::string got = c.text(*v, "apiVersion"); !c.failed() && got != kApiVersion) {
      c.fail(*v, "apiVersion", "want " + std::string(kApiVersion) + ", got '" + got + "'");
    }
  }
  if (const DocNode* k = c.require(doc, "kind", "", "AdmissionPolicy")) {
    if (std::string got = c.text(*k, "kind"); !c.failed() && got != "AdmissionPolicy") {
      c.fail(*k, "kind", "want AdmissionPolicy, got '" + got + "'");
    }
  }
  if (const DocNode* meta = doc.find("metadata"); meta != nullptr && !c.failed()) {
    if (c.want_map(*meta, "metadata")) {
      c.only_fields(*meta, "metadata", {"name", "labels"});
      if (const DocNode* n = meta->find("name")) c.nonempty_text(*n, "metadata.name");
      if (const DocNode* l = meta->find("labels")) c.labels(*l, "metadata.labels");
    }
  }
  if (c.failed()) return c.error();
  const DocNode* rules = c.require(doc, "rules", "", "a list of rules");
  if (rules == nullptr) return c.error();
  if (rules->kind != Kind::kList) {
    c.fail(*rules, "rules", "want a list, got " + describe_kind(rules->kind));
    return c.error();
  }
  std::set<std::string> seen;
  for (size_t i = 0; i < rules->items.size(); ++i) {
    AdmissionRule r = read_rule(c, rules->items[i], i, seen);
    if (c.failed()) return c.error();
    policy.rules.push_back(std::move(r));
  }
  return policy;
}

Expected<AdmissionPolicy> load_admission_policy(const std::string& path) {
  auto text = fs::read_file(path);
  if (!text) return text.error().WithContext("admission policy");
  if (text->size() > kMaxManifestBytes) {
    return Error("admission policy '" + path + "': larger than " +
                 std::to_string(kMaxManifestBytes) + " bytes");
  }
  return parse_admission_policy(*text, path);
}

}  // namespace flotilla::hub
