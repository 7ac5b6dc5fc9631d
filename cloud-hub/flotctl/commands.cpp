#include "cloud-hub/flotctl/commands.hpp"

#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <iostream>
#include <iterator>
#include <optional>

#include "cloud-hub/flotctl/artifact.hpp"
#include "cloud-hub/flotctl/auth.hpp"
#include "cloud-hub/flotctl/client.hpp"
#include "cloud-hub/flotctl/pki.hpp"
#include "cloud-hub/flotctl/printers.hpp"
#include "cloud-hub/flotctl/rollout.hpp"
#include "cloud-hub/flotctl/twin.hpp"
#include "cloud-hub/flotctl/watch.hpp"
#include "cloud-hub/manifest.hpp"
#include "common/fs.hpp"

namespace flotilla::flotctl {
namespace {

constexpr int kOk = 0;
constexpr int kFailed = 1;
constexpr int kUsage = 2;

struct Args {
  std::string hub;
  std::string file;
  std::string output;
  std::string selector;  // -l k=v,k2=v2
  std::vector<std::string> positional;
  std::optional<uint64_t> if_version;  // --if-version N (twin set)
  bool help = false;
  bool force = false;         // --force: past the hub's blast-radius guard
  bool watch = false;         // -w, --watch
  bool watch_events = false;  // --output-watch-events
};

// Accepts "--name VALUE", "--name=VALUE" and, for short flags, "-xVALUE".
Expected<Args> parse_args(const std::vector<std::string>& args) {
  Args a;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    auto value_of = [&](const std::string& long_name,
                        const std::string& short_name) -> std::optional<Expected<std::string>> {
      for (const auto& name : {long_name, short_name}) {
        if (name.empty()) continue;
        if (arg == name) {
          if (i + 1 >= args.size()) return Expected<std::string>(Error(name + " needs a value"));
          return Expected<std::string>(args[++i]);
        }
        if (arg.rfind(name + "=", 0) == 0)
          return Expected<std::string>(arg.substr(name.size() + 1));
        if (name.size() == 2 && arg.size() > 2 && arg.rfind(name, 0) == 0) {
          return Expected<std::string>(arg.substr(2));
        }
      }
      return std::nullopt;
    };
    if (arg == "-h" || arg == "--help") {
      a.help = true;
    } else if (arg == "--force") {
      a.force = true;
    } else if (arg == "-w" || arg == "--watch") {
      a.watch = true;
    } else if (arg == "--output-watch-events") {
      a.watch_events = true;
    } else if (auto v = value_of("--hub", "")) {
      if (!*v) return v->error();
      a.hub = **v;
    } else if (auto f = value_of("--filename", "-f")) {
      if (!*f) return f->error();
      a.file = **f;
    } else if (auto o = value_of("--output", "-o")) {
      if (!*o) return o->error();
      a.output = **o;
    } else if (auto iv = value_of("--if-version", "")) {
      if (!*iv) return iv->error();
      const std::string& text = **iv;
      char* end = nullptr;
      errno = 0;
      const unsigned long long number = std::strtoull(text.c_str(), &end, 10);
      if (text.empty() || text[0] == '-' || *end != '\0' || errno != 0) {
        return Error("--if-version wants a whole number, got '" + text + "'");
      }
      a.if_version = number;
    } else if (auto l = value_of("--selector", "-l")) {
      if (!*l) return l->error();
      a.selector = **l;
    } else if (arg.size() > 1 && arg[0] == '-') {
      return Error("unknown flag '" + arg + "'");
    } else {
      a.positional.push_back(arg);
    }
  }
  return a;
}

// nodes | workloads | events, or an Error saying what is wrong with `kind`.
Expected<std::string> normalize_kind(const std::string& kind) {
  if (kind == "nodes" || kind == "node" || kind == "no") return std::string("nodes");
  if (kind == "workloads" || kind == "workload" || kind == "wl") return std::string("workloads");
  if (kind == "events" || kind == "event" || kind == "ev") return std::string("events");
  if (kind == "devices" || kind == "device" || kind == "dev") return std::string("devices");
  if (kind == "rollouts" || kind == "rollout" || kind == "ro") return std::string("rollouts");
  for (const char* later : {"artifacts", "artifact"}) {
    if (kind == later) return Error(kind + " are not supported yet");
  }
  return Error("unknown kind '" + kind + "' (want nodes, workloads, events or devices)");
}

std::string singular(const std::string& kind) { return kind.substr(0, kind.size() - 1); }

class Runner {
 public:
  Runner(Args args, const Context& ctx, const ClientAuth& auth, std::ostream& out,
         std::ostream& err)
      : args_(std::move(args)),
        ctx_(ctx),
        out_(out),
        err_(err),
        client_(args_.hub.empty() ? ctx.default_hub : args_.hub, 30000, auth) {}

  int run() {
    const std::string& verb = args_.positional[0];
    if (verb == "apply") return apply();
    if (verb == "get") return get();
    if (verb == "describe") return describe();
    if (verb == "delete") return remove();
    if (verb == "twin") {
      if (args_.watch) return twin_watch();
      int rc = twin_command(client_, {args_.positional.begin() + 1, args_.positional.end()},
                            args_.if_version, args_.output, out_, err_);
      if (rc == kUsage) err_ << "\n" << usage();
      return rc;
    }
    if (verb == "rollout") {
      int rc = rollout_command(client_, {args_.positional.begin() + 1, args_.positional.end()},
                               ctx_.now_ms, out_, err_);
      if (rc == kUsage) err_ << "\n" << usage();
      return rc;
    }
    return usage_error("unknown command '" + verb + "'");
  }

 private:
  int fail(const std::string& message) {
    err_ << "error: " << message << "\n";
    return kFailed;
  }

  const char* force_query() const { return args_.force ? "?force=true" : ""; }

  int usage_error(const std::string& message) {
    err_ << "flotctl: " << message << "\n\n" << usage();
    return kUsage;
  }

  // GETs `path` and parses the JSON answer; nullopt after printing why not.
  std::optional<json> get_json(const std::string& path, const std::string& what) {
    auto j = client_.request_json("GET", path, {.not_found = what});
    if (!j) {
      fail(j.error().message());
      return std::nullopt;
    }
    return std::move(*j);
  }

  int apply() {
    if (args_.positional.size() != 1) return usage_error("apply takes no arguments besides -f");
    if (args_.file.empty()) return usage_error("apply needs -f FILE");
    std::string text;
    std::string source = args_.file;
    if (args_.file == "-") {
      text.assign(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
      source = "<stdin>";
    } else {
      auto read = fs::read_file(args_.file);
      if (!read) return fail(read.error().message());
      text = std::move(*read);
    }
    // Validate here first: precise file:line errors and nothing sent when the file is bad.
    auto manifests = hub::parse_all_manifests(text, source);
    if (!manifests) return fail(manifests.error().message());
    auto first = text.find_first_not_of(" \t\r\n");
    bool is_json = first != std::string::npos && text[first] == '{';
    auto j = client_.request_json(
        "PUT", std::string("/api/v1/workloads") + force_query(),
        {.body = text, .content_type = is_json ? "application/json" : "application/yaml"});
    if (!j) return fail(j.error().message());
    if (!j->contains("items")) return fail("hub sent an unexpected answer");
    for (const auto& item : (*j)["items"]) {
      std::string kind = item.value("kind", "Workload");
      kind[0] = static_cast<char>(std::tolower(static_cast<unsigned char>(kind[0])));
      out_ << kind << "/" << item.value("name", "?") << " " << item.value("action", "?") << "\n";
    }
    return kOk;
  }

  int get() {
    if (args_.positional.size() < 2 || args_.positional.size() > 3) {
      return usage_error("usage: flotctl get KIND [NAME] [-o json|yaml] [-w]");
    }
    const std::string& out_format = args_.output;
    if (!out_format.empty() && out_format != "json" && out_format != "yaml" &&
        out_format != "table") {
      return usage_error("-o wants json or yaml, got '" + out_format + "'");
    }
    auto kind = normalize_kind(args_.positional[1]);
    if (!kind) return fail(kind.error().message());
    if (args_.watch_events && !args_.watch) {
      return usage_error("--output-watch-events goes with --watch");
    }
    if (args_.watch) return watch(*kind);
    std::string path = "/api/v1/" + *kind;
    std::optional<std::string> name;
    if (args_.positional.size() == 3) {
      if (*kind == "events") return usage_error("get events takes no NAME (see describe)");
      name = args_.positional[2];
      path += "/" + url_escape(*name);
    } else if (*kind == "events") {
      path += "?limit=200";
    }
    if (!args_.selector.empty()) {
      if (name || *kind == "events") {
        return usage_error("-l selects from lists of nodes, workloads or devices (no NAME)");
      }
      path += "?labelSelector=" + url_escape(args_.selector);
    }
    auto j = get_json(path, name ? singular(*kind) + " '" + *name + "'" : *kind);
    if (!j) return kFailed;
    if (out_format == "json") {
      out_ << j->dump(2) << "\n";
      return kOk;
    }
    if (out_format == "yaml") {
      out_ << to_yaml(*j);
      return kOk;
    }
    json list = name ? json{{"items", json::array({*j})}} : *j;
    if (*kind == "nodes") out_ << nodes_table(list);
    if (*kind == "workloads") out_ << workloads_table(list, ctx_.now_ms);
    if (*kind == "events") out_ << events_table(list, ctx_.now_ms);
    if (*kind == "devices") out_ << devices_table(list);
    if (*kind == "rollouts") out_ << rollouts_table(list, ctx_.now_ms);
    return kOk;
  }

  // flotctl twin get DEVICE -w: the device's row, then one per change.
  int twin_watch() {
    if (args_.positional.size() != 3 || args_.positional[1] != "get") {
      return usage_error("--watch goes with twin get DEVICE");
    }
    return watch("devices", args_.positional[2]);
  }

  int watch(const std::string& kind, std::optional<std::string> name = std::nullopt) {
    if (kind == "events") return usage_error("--watch takes nodes, workloads or devices");
    WatchRequest req;
    req.kind = kind;
    if (args_.positional.size() == 3 && !name) name = args_.positional[2];
    req.name = name;
    if (!args_.selector.empty() && req.name) {
      return usage_error("-l selects from lists of nodes, workloads or devices (no NAME)");
    }
    req.selector = args_.selector;
    req.output = args_.output == "table" ? "" : args_.output;
    req.watch_events = args_.watch_events;
    req.interrupted = ctx_.interrupted;
    const Context& ctx = ctx_;
    req.now_ms = [&ctx] { return ctx.clock_ms ? ctx.clock_ms() : ctx.now_ms; };
    req.retry_ms = ctx_.retry_ms;
    return flotctl::watch(client_, req, out_, err_);
  }

  int describe() {
    if (args_.positional.size() != 3) return usage_error("usage: flotctl describe KIND NAME");
    auto kind = normalize_kind(args_.positional[1]);
    if (!kind) return fail(kind.error().message());
    if (*kind == "events" || *kind == "devices") {
      return usage_error("describe takes nodes, workloads or rollouts (see twin get DEVICE)");
    }
    const std::string& name = args_.positional[2];
    auto j =
        get_json("/api/v1/" + *kind + "/" + url_escape(name), singular(*kind) + " '" + name + "'");
    if (!j) return kFailed;
    std::string filter = *kind == "nodes" ? "node" : "workload";
    const std::string object = *kind == "rollouts" ? "rollout/" + name : name;
    auto events =
        get_json("/api/v1/events?limit=20&" + filter + "=" + url_escape(object), "events");
    if (!events) return kFailed;
    if (*kind == "rollouts") {
      out_ << describe_rollout(*j, *events, ctx_.now_ms);
      return kOk;
    }
    out_ << (*kind == "nodes" ? describe_node(*j, *events, ctx_.now_ms)
                              : describe_workload(*j, *events, ctx_.now_ms));
    return kOk;
  }

  int remove() {
    if (args_.positional.size() != 3) return usage_error("usage: flotctl delete KIND NAME");
    auto kind = normalize_kind(args_.positional[1]);
    if (!kind) return fail(kind.error().message());
    if (*kind == "events") return fail("events cannot be deleted");
    const std::string& name = args_.positional[2];
    auto res =
        client_.request("DELETE", "/api/v1/" + *kind + "/" + url_escape(name) + force_query());
    if (!res) return fail(res.error().message());
    if (res->status != 200) return fail(hub_error(*res));
    out_ << singular(*kind) << "/" << name << " deleted\n";
    return kOk;
  }

  Args args_;
  const Context& ctx_;
  std::ostream& out_;
  std::ostream& err_;
  Client client_;
};

}  // namespace

std::string usage() {
  return "Usage: flotctl [--hub URL] COMMAND\n"
         "Talks to a Flotilla hub (default: $FLOTILLA_HUB or http://127.0.0.1:8080).\n\n"
         "Commands:\n"
         "  apply -f FILE [--force]     validate and apply manifests: workloads and devices\n"
         "                              (YAML or JSON; - for stdin)\n"
         "  get KIND [NAME] [-o FMT]    list or show nodes, workloads, events or devices\n"
         "                              (FMT: json|yaml)\n"
         "      [-l k=v,k2=v2]          only the nodes, workloads or devices with these labels\n"
         "      [-w] [--output-watch-events]\n"
         "                              then follow each change until Ctrl-C (nodes, workloads,\n"
         "                              devices; with the event ADDED|MODIFIED|DELETED first)\n"
         "  describe KIND NAME          a node or workload in detail, with recent events\n"
         "  delete KIND NAME [--force]  delete a workload or node\n"
         "  twin get DEVICE [-o FMT] [-w]\n"
         "                              a device's desired, reported, versions and delta; with\n"
         "                              -w its row, then one per change until Ctrl-C\n"
         "  twin set DEVICE K=V... [--if-version N]\n"
         "                              merge into desired (V as JSON if it parses, else a\n"
         "                              string; K=null deletes; a.b=V nests); with N, refused\n"
         "                              unless desired is still at version N\n"
         "  rollout status|pause|resume|abort NAME\n"
         "                              an OTA rollout's progress, or pause, resume (accepting\n"
         "                              the failures so far) or abort it; each idempotent\n"
         "  artifact keygen|build|sign|verify|push\n"
         "                              signed OTA bundles (flotctl artifact --help)\n"
         "  token create NAME --role viewer|operator|admin\n"
         "                              a new API token and its line for the hub's\n"
         "                              --api-tokens file\n"
         "  audit [--limit N] [--since ID] [-o json]\n"
         "                              the hub's audit log of changes (admin)\n"
         "  pki init|issue|revoke|crl|signing-key\n"
         "                              the fleet's CA, TLS certificates and the hub's signing\n"
         "                              key (flotctl pki --help)\n\n"
         "--token TOKEN (else $FLOTILLA_TOKEN) is sent as a bearer token; --ca FILE (else\n"
         "$FLOTILLA_CA) is the PEM CA of an https:// hub.\n"
         "--force passes the hub's blast-radius guard (a change stopping much of the fleet).\n"
         "KIND: nodes (node, no), workloads (workload, wl), events (event, ev), devices (device,\n"
         "dev), rollouts (rollout, ro)\n";
}

int run(const std::vector<std::string>& all, const Context& ctx, std::ostream& out,
        std::ostream& err) {
  std::vector<std::string> raw = all;
  ClientAuth auth{ctx.default_token, ctx.default_ca};
  if (auto st = take_auth_flags(raw, auth); !st) {
    err << "flotctl: " << st.error().message() << "\n\n" << usage();
    return kUsage;
  }
  if (is_artifact_command(raw)) return artifact_command(raw, ctx.default_hub, out, err, auth);
  if (is_pki_command(raw)) return pki_command(raw, ctx.now_ms / 1000, out, err);
  // token and audit have flags of their own, after the global --hub.
  size_t word = 0;
  std::string hub = ctx.default_hub;
  while (word < raw.size()) {
    if (raw[word] == "--hub" && word + 1 < raw.size()) {
      hub = raw[word + 1];
      word += 2;
    } else if (raw[word].rfind("--hub=", 0) == 0) {
      hub = raw[word++].substr(6);
    } else {
      break;
    }
  }
  if (word < raw.size() && (raw[word] == "token" || raw[word] == "audit")) {
    const std::vector<std::string> rest(raw.begin() + static_cast<long>(word) + 1, raw.end());
    if (raw[word] == "token") return token_command(rest, out, err);
    Client client(hub, 30000, auth);
    return audit_command(client, rest, out, err);
  }
  auto args = parse_args(raw);
  if (!args) {
    err << "flotctl: " << args.error().message() << "\n\n" << usage();
    return kUsage;
  }
  if (args->help) {
    out << usage();
    return kOk;
  }
  if (args->positional.empty()) {
    err << "flotctl: missing command\n\n" << usage();
    return kUsage;
  }
  return Runner(std::move(*args), ctx, auth, out, err).run();
}

}  // namespace flotilla::flotctl
