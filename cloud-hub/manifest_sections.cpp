#include "cloud-hub/manifest_sections.hpp"

#include <algorithm>
#include <cctype>

#include "cloud-hub/quantity.hpp"

namespace flotilla::hub {
namespace {

using Kind = DocNode::Kind;

constexpr int64_t kMaxPort = 65535;

std::vector<MountSection> read_mounts(Checker& c, const DocNode& n, const std::string& path) {
  std::vector<MountSection> out;
  if (n.kind != Kind::kList) {
    c.fail(n, path, "want a list of {source, destination, readOnly}");
    return out;
  }
  for (size_t i = 0; i < n.items.size() && !c.failed(); ++i) {
    const DocNode& item = n.items[i];
    std::string at = path + "[" + std::to_string(i) + "]";
    if (!c.want_map(item, at)) break;
    c.only_fields(item, at, {"source", "destination", "readOnly"});
    MountSection m;
    if (const DocNode* src = c.require(item, "source", at, "an absolute path on the node")) {
      m.source = c.absolute_path(*src, join_path(at, "source"));
    }
    if (const DocNode* dst = c.require(item, "destination", at, "an absolute path")) {
      m.destination = c.absolute_path(*dst, join_path(at, "destination"));
    }
    if (const DocNode* ro = item.find("readOnly")) {
      m.read_only = c.boolean(*ro, join_path(at, "readOnly"));
    }
    out.push_back(std::move(m));
  }
  return out;
}

std::vector<PortSection> read_ports(Checker& c, const DocNode& n, const std::string& path) {
  std::vector<PortSection> out;
  if (n.kind != Kind::kList) {
    c.fail(n, path, "want a list of {host, guest, protocol}");
    return out;
  }
  for (size_t i = 0; i < n.items.size() && !c.failed(); ++i) {
    const DocNode& item = n.items[i];
    std::string at = path + "[" + std::to_string(i) + "]";
    if (!c.want_map(item, at)) break;
    c.only_fields(item, at, {"host", "guest", "protocol"});
    PortSection p;
    if (const DocNode* h = c.require(item, "host", at, "a port on the node's 127.0.0.1")) {
      p.host = c.whole(*h, join_path(at, "host"), 1, kMaxPort);
    }
    if (const DocNode* g = c.require(item, "guest", at, "a port in the guest")) {
      p.guest = c.whole(*g, join_path(at, "guest"), 1, kMaxPort);
    }
    if (const DocNode* proto = item.find("protocol")) {
      p.protocol = c.text(*proto, join_path(at, "protocol"));
      if (!c.failed() && p.protocol != "tcp" && p.protocol != "udp") {
        c.fail(*proto, join_path(at, "protocol"), "want tcp or udp, got '" + p.protocol + "'");
      }
    }
    out.push_back(std::move(p));
  }
  return out;
}

bool valid_user(const std::string& user) {
  auto digits = [](std::string_view s) {
    return !s.empty() && s.size() <= 10 &&
           std::all_of(s.begin(), s.end(), [](char ch) { return ch >= '0' && ch <= '9'; });
  };
  auto colon = user.find(':');
  if (colon == std::string::npos) return digits(user);
  return digits(std::string_view(user).substr(0, colon)) &&
         digits(std::string_view(user).substr(colon + 1));
}

ProbeSection read_probe(Checker& c, const DocNode& n, const std::string& path) {
  ProbeSection p;
  if (!c.want_map(n, path)) return p;
  c.only_fields(n, path,
                {"exec", "httpGet", "tcpSocket", "initialDelaySeconds", "periodSeconds",
                 "timeoutSeconds", "failureThreshold", "successThreshold"});
  int actions = 0;
  if (const DocNode* e = n.find("exec")) {
    ++actions;
    std::string at = join_path(path, "exec");
    if (c.want_map(*e, at)) {
      c.only_fields(*e, at, {"command"});
      if (const DocNode* cmd = c.require(*e, "command", at, "the program and its arguments")) {
        p.exec = c.text_list(*cmd, join_path(at, "command"));
        if (!c.failed() && (p.exec.empty() || p.exec[0].empty())) {
          c.fail(*cmd, join_path(at, "command"), "must not be empty");
        }
      }
    }
  }
  if (const DocNode* h = n.find("httpGet")) {
    ++actions;
    std::string at = join_path(path, "httpGet");
    if (c.want_map(*h, at)) {
      c.only_fields(*h, at, {"path", "port"});
      p.http_path = "/";
      if (const DocNode* hp = h->find("path")) p.http_path = c.nonempty_text(*hp, at + ".path");
      if (!c.failed() && p.http_path[0] != '/') {
        c.fail(*h->find("path"), at + ".path", "want a path starting with '/'");
      }
      if (const DocNode* port = c.require(*h, "port", at, "the port to GET on 127.0.0.1")) {
        p.http_port = c.whole(*port, at + ".port", 1, kMaxPort);
      }
    }
  }
  if (const DocNode* t = n.find("tcpSocket")) {
    ++actions;
    std::string at = join_path(path, "tcpSocket");
    if (c.want_map(*t, at)) {
      c.only_fields(*t, at, {"port"});
      if (const DocNode* port = c.require(*t, "port", at, "the port to connect to")) {
        p.tcp_port = c.whole(*port, at + ".port", 1, kMaxPort);
      }
    }
  }
  if (!c.failed() && actions != 1) {
    c.fail(n, path, "want exactly one of exec, httpGet or tcpSocket");
  }
  auto seconds = [&](const char* key, int64_t& out, int64_t min) {
    if (const DocNode* v = n.find(key)) out = c.whole(*v, join_path(path, key), min, 86400);
  };
  seconds("initialDelaySeconds", p.initial_delay_seconds, 0);
  seconds("periodSeconds", p.period_seconds, 1);
  seconds("timeoutSeconds", p.timeout_seconds, 1);
  seconds("failureThreshold", p.failure_threshold, 1);
  seconds("successThreshold", p.success_threshold, 1);
  return p;
}

}  // namespace

ContainerSection read_container(Checker& c, const DocNode& n, const std::string& path) {
  ContainerSection s;
  if (!c.want_map(n, path)) return s;
  c.only_fields(n, path,
                {"image", "command", "args", "env", "workdir", "user", "mounts",
                 "readOnlyRootFilesystem", "hostNetwork", "pidsLimit"});
  if (const DocNode* image = c.require(n, "image", path, "e.g. registry.local/app:1")) {
    s.image = c.nonempty_text(*image, join_path(path, "image"));
    if (!c.failed() && s.image.find_first_of(" \t\n") != std::string::npos) {
      c.fail(*image, join_path(path, "image"), "must not contain spaces");
    }
  }
  if (const DocNode* cmd = n.find("command"))
    s.command = c.text_list(*cmd, join_path(path, "command"));
  if (const DocNode* args = n.find("args")) s.args = c.text_list(*args, join_path(path, "args"));
  if (const DocNode* env = n.find("env")) s.env = c.env(*env, join_path(path, "env"));
  if (const DocNode* wd = n.find("workdir"))
    s.workdir = c.absolute_path(*wd, join_path(path, "workdir"));
  if (const DocNode* user = n.find("user")) {
    s.user = c.text(*user, join_path(path, "user"));
    if (!c.failed() && !valid_user(s.user)) {
      c.fail(*user, join_path(path, "user"), "want a numeric uid or uid:gid, got '" + s.user + "'");
    }
  }
  if (const DocNode* mounts = n.find("mounts"))
    s.mounts = read_mounts(c, *mounts, join_path(path, "mounts"));
  if (const DocNode* ro = n.find("readOnlyRootFilesystem")) {
    s.read_only_root = c.boolean(*ro, join_path(path, "readOnlyRootFilesystem"));
  }
  if (const DocNode* hn = n.find("hostNetwork"))
    s.host_network = c.boolean(*hn, join_path(path, "hostNetwork"));
  if (const DocNode* pl = n.find("pidsLimit"))
    s.pids_limit = c.whole(*pl, join_path(path, "pidsLimit"), 1, 4194304);
  return s;
}

VmSection read_vm(Checker& c, const DocNode& n, const std::string& path) {
  VmSection s;
  if (!c.want_map(n, path)) return s;
  c.only_fields(n, path,
                {"image", "sha256", "cpus", "memory", "ports", "kernel", "initrd", "kernelArgs"});
  if (const DocNode* image = c.require(n, "image", path, "a disk image URL or path")) {
    s.image = c.nonempty_text(*image, join_path(path, "image"));
  }
  if (const DocNode* sha = n.find("sha256")) {
    s.sha256 = c.text(*sha, join_path(path, "sha256"));
    bool hex = s.sha256.size() == 64 && std::all_of(s.sha256.begin(), s.sha256.end(), [](char ch) {
                 return std::isxdigit(static_cast<unsigned char>(ch));
               });
    if (!c.failed() && !hex) c.fail(*sha, join_path(path, "sha256"), "want 64 hex digits");
    std::transform(s.sha256.begin(), s.sha256.end(), s.sha256.begin(),
                   [](unsigned char ch) { return static_cast<char>(std::tolower(ch)); });
  }
  bool remote = s.image.rfind("http://", 0) == 0 || s.image.rfind("https://", 0) == 0 ||
                s.image.rfind("oci://", 0) == 0;
  if (!c.failed() && remote && s.sha256.empty()) {
    c.fail(n, join_path(path, "sha256"), "required for an image fetched over http(s) or oci://");
  }
  if (const DocNode* cpus = n.find("cpus"))
    s.cpus = c.whole(*cpus, join_path(path, "cpus"), 1, 1024);
  if (const DocNode* mem = n.find("memory")) {
    auto v = parse_memory_bytes(mem->text);
    if (!mem->is_scalar() || !v) {
      c.fail(*mem, join_path(path, "memory"),
             v ? "want a quantity such as 512Mi" : v.error().message());
    } else {
      s.memory_bytes = *v;
    }
  }
  if (const DocNode* ports = n.find("ports"))
    s.ports = read_ports(c, *ports, join_path(path, "ports"));
  if (const DocNode* k = n.find("kernel"))
    s.kernel = c.nonempty_text(*k, join_path(path, "kernel"));
  if (const DocNode* i = n.find("initrd"))
    s.initrd = c.nonempty_text(*i, join_path(path, "initrd"));
  if (const DocNode* a = n.find("kernelArgs"))
    s.kernel_args = c.text(*a, join_path(path, "kernelArgs"));
  if (!c.failed() && s.kernel.empty() && (!s.initrd.empty() || !s.kernel_args.empty())) {
    c.fail(n, join_path(path, "kernel"), "required with initrd or kernelArgs");
  }
  return s;
}

void read_probes(Checker& c, const DocNode& n, const std::string& path, WorkloadManifest& m) {
  if (n.kind == Kind::kNull || !c.want_map(n, path)) return;
  c.only_fields(n, path, {"liveness", "readiness"});
  if (const DocNode* l = n.find("liveness"); l != nullptr && l->kind != Kind::kNull) {
    m.liveness = read_probe(c, *l, join_path(path, "liveness"));
  }
  if (const DocNode* r = n.find("readiness"); r != nullptr && r->kind != Kind::kNull) {
    m.readiness = read_probe(c, *r, join_path(path, "readiness"));
  }
  if (m.type == "vm" && (m.liveness || m.readiness)) {
    bool exec =
        (m.liveness && !m.liveness->exec.empty()) || (m.readiness && !m.readiness->exec.empty());
    if (exec && !c.failed()) c.fail(n, path, "exec probes are not available for vm workloads");
  }
}

}  // namespace flotilla::hub
