// Evaluation of admission rules (admission.hpp). Image references are parsed with the agent's
// own parser (runtime/image/reference.hpp), so the registry a rule sees is the one the agent
// would pull from ("busybox" is docker.io).
#include "cloud-hub/admission.hpp"

#include <algorithm>
#include <cctype>

#include "cloud-hub/labels.hpp"
#include "runtime/image/reference.hpp"

namespace flotilla::hub {
namespace {

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

bool matches(const AdmissionRule& r, const WorkloadManifest& w) {
  if (!r.match_names.empty() &&
      std::find(r.match_names.begin(), r.match_names.end(), w.name) == r.match_names.end()) {
    return false;
  }
  return labels_match(r.match_labels, w.labels);
}

bool starts_with(const std::string& s, std::string_view prefix) {
  return s.compare(0, prefix.size(), prefix) == 0;
}

// Something the node fetches: a container image, a VM disk image, kernel or initrd. `what`
// names it in reasons ("container image 'web:1'").
struct Fetched {
  std::string what;
  std::string location;
  bool pinned = false;  // a digest the agent checks before use
};

std::vector<Fetched> fetched_of(const WorkloadManifest& w) {
  std::vector<Fetched> out;
  if (w.container) {
    auto ref = runtime::image::parse_reference(w.container->image);
    out.push_back({"container image '" + w.container->image + "'", w.container->image,
                   ref && !ref->digest.empty()});
  }
  if (w.vm) {
    out.push_back({"vm image '" + w.vm->image + "'", w.vm->image, !w.vm->sha256.empty()});
    if (!w.vm->kernel.empty()) out.push_back({"vm kernel '" + w.vm->kernel + "'", w.vm->kernel});
    if (!w.vm->initrd.empty()) out.push_back({"vm initrd '" + w.vm->initrd + "'", w.vm->initrd});
  }
  return out;
}

// The registry (host[:port]) a location is fetched from, or an error saying why there is none.
Expected<std::string> registry_of(const Fetched& f, bool container) {
  std::string loc = f.location;
  if (!container) {
    for (std::string_view scheme : {"http://", "https://"}) {
      if (starts_with(loc, scheme)) {
        std::string rest = loc.substr(scheme.size());
        std::string host = rest.substr(0, rest.find_first_of("/?#"));
        if (auto at = host.rfind('@'); at != std::string::npos) host = host.substr(at + 1);
        return lower(host);
      }
    }
    if (!starts_with(loc, "oci://")) {
      return Error("is a path on the node, not from an allowed registry");
    }
    loc = loc.substr(6);
  }
  auto ref = runtime::image::parse_reference(loc);
  if (!ref) return Error("is not a valid image reference (" + ref.error().message() + ")");
  return lower(ref->registry);
}

std::string join(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& i : items) out += (out.empty() ? "" : ", ") + i;
  return out;
}

bool root_user(const std::string& user) {
  std::string uid = user.substr(0, user.find(':'));
  return !uid.empty() && std::all_of(uid.begin(), uid.end(), [](char c) { return c == '0'; });
}

bool under(const std::string& path, const std::string& dir) {
  if (dir == "/") return true;
  return path == dir || (starts_with(path, dir) && path[dir.size()] == '/');
}

// Every reason `w` breaks `r` (empty when it complies).
std::vector<std::string> reasons(const AdmissionRule& r, const WorkloadManifest& w) {
  std::vector<std::string> out;
  const ContainerSection* c = w.container ? &*w.container : nullptr;
  if (r.deny_host_network && c != nullptr && c->host_network) {
    out.push_back(
        "container uses the host's network (hostNetwork is true by default; set "
        "hostNetwork: false)");
  }
  if (r.require_image_digest) {
    for (const auto& f : fetched_of(w)) {
      if (f.pinned) continue;
      if (c != nullptr) {
        out.push_back(f.what + " is not pinned by digest (want IMAGE@sha256:<64 hex digits>)");
      } else if (f.what.rfind("vm image", 0) == 0) {
        out.push_back(f.what + " has no sha256");
      } else {
        out.push_back(f.what + " cannot be pinned by digest");
      }
    }
  }
  if (!r.allowed_registries.empty()) {
    for (const auto& f : fetched_of(w)) {
      auto reg = registry_of(f, c != nullptr);
      if (!reg) {
        out.push_back(f.what + " " + reg.error().message());
      } else if (std::find(r.allowed_registries.begin(), r.allowed_registries.end(), *reg) ==
                 r.allowed_registries.end()) {
        out.push_back(f.what + " comes from registry '" + *reg + "', not one of " +
                      join(r.allowed_registries));
      }
    }
  }
  if (r.require_resource_limits) {
    std::vector<std::string> missing;
    if (w.cpu_millis <= 0) missing.push_back("cpu");
    if (w.memory_bytes <= 0) missing.push_back("memory");
    if (!missing.empty()) {
      out.push_back("spec.resources sets no " +
                    (missing.size() == 2 ? "cpu or memory" : missing[0]) + " (" +
                    (missing.size() == 2 ? "both are" : "it is") + " required)");
    }
  }
  if (!r.allowed_types.empty() &&
      std::find(r.allowed_types.begin(), r.allowed_types.end(), w.type) == r.allowed_types.end()) {
    out.push_back("type " + w.type + " is not allowed (allowed: " + join(r.allowed_types) + ")");
  }
  if (r.max_replicas && w.replicas && *w.replicas > *r.max_replicas) {
    out.push_back(std::to_string(*w.replicas) + " replicas, more than the " +
                  std::to_string(*r.max_replicas) + " allowed");
  }
  if (r.require_non_root_user && c != nullptr) {
    if (c->user.empty()) {
      out.push_back("container sets no user (the image's user may be root; set user: UID[:GID])");
    } else if (root_user(c->user)) {
      out.push_back("container runs as root (user '" + c->user + "')");
    }
  }
  if (r.require_read_only_root && c != nullptr && !c->read_only_root) {
    out.push_back("container's root filesystem is writable (set readOnlyRootFilesystem: true)");
  }
  if (r.allowed_host_paths && c != nullptr) {
    for (const auto& m : c->mounts) {
      bool ok = std::any_of(r.allowed_host_paths->begin(), r.allowed_host_paths->end(),
                            [&](const std::string& dir) { return under(m.source, dir); });
      if (ok) continue;
      out.push_back(r.allowed_host_paths->empty()
                        ? "container mounts host path '" + m.source + "' (no host paths allowed)"
                        : "container mounts host path '" + m.source + "', not under " +
                              join(*r.allowed_host_paths));
    }
  }
  if (r.require_read_only_mounts && c != nullptr) {
    for (const auto& m : c->mounts) {
      if (!m.read_only) {
        out.push_back("container mounts host path '" + m.source +
                      "' writable (set readOnly: true)");
      }
    }
  }
  return out;
}

}  // namespace

std::string AdmissionViolation::message() const {
  return "rule '" + rule + "' denies workload '" + workload + "': " + reason;
}

std::vector<AdmissionViolation> admit(const AdmissionPolicy& policy, const WorkloadManifest& w) {
  std::vector<AdmissionViolation> out;
  for (const auto& rule : policy.rules) {
    if (!matches(rule, w)) continue;
    auto why = reasons(rule, w);
    if (!why.empty()) {
      std::string reason = why.front();
      for (size_t i = 1; i < why.size(); ++i) reason += ", and " + why[i];
      out.push_back({rule.name, w.name, reason});
    }
  }
  return out;
}

std::string admission_error(const std::vector<AdmissionViolation>& violations) {
  std::string out = "admission:";
  for (size_t i = 0; i < violations.size(); ++i) {
    out += (i == 0 ? " " : "; ") + violations[i].message();
  }
  return out;
}

}  // namespace flotilla::hub
