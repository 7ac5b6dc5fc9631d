#include "cloud-hub/api.hpp"

#include "cloud-hub/api_reply.hpp"

#include <cctype>
#include <cerrno>
#include <regex>

#include "cloud-hub/api_devices.hpp"
#include "cloud-hub/api_ota.hpp"
#include "cloud-hub/console_assets.hpp"
#include "cloud-hub/manifest_doc.hpp"
#include "cloud-hub/watch_stream.hpp"
#include "common/flags.hpp"
#include "common/log.hpp"

namespace flotilla::hub {
namespace {

using json = nlohmann::json;

// A console file with revalidation: the browser asks again each time (no-cache) and gets 304
// while the hub binary, and so the file, is the same.
void send_console_file(const httplib::Request& req, httplib::Response& res,
                       const ConsoleAsset& file) {
  const std::string etag = "\"" + std::to_string(std::hash<std::string_view>{}(file.body)) + "\"";
  res.set_header("Cache-Control", "no-cache");
  res.set_header("ETag", etag);
  res.set_header("X-Content-Type-Options", "nosniff");
  if (req.get_header_value("If-None-Match") == etag) {
    res.status = 304;
    return;
  }
  res.set_content(std::string(file.body), std::string(console_content_type(file.name)));
}

// Sends a view, or the error that kept it from being built.
template <typename View>
void send_view(httplib::Response& res, const Expected<View>& view) {
  if (!view) return send_error(res, 500, view.error().message());
  send_json(res, 200, *view);
}

template <typename View>
void send_one(httplib::Response& res, const Expected<std::optional<View>>& view,
              const std::string& what) {
  if (!view) return send_error(res, 500, view.error().message());
  if (!*view) return send_error(res, 404, what + " not found");
  send_json(res, 200, **view);
}

// ?labelSelector=k=v,k2=v2 into `selector`; false after answering 400.
bool selector_param(const httplib::Request& req, httplib::Response& res, Labels* selector) {
  if (!req.has_param("labelSelector")) return true;
  // Read from the raw query: httplib keeps only what follows the last '=' of a value, and a
  // selector written by hand (labelSelector=k=v,k2=v2) has several.
  std::string text;
  const std::string query = req.target.substr(std::min(req.target.find('?'), req.target.size()));
  const std::string key = "labelSelector=";
  for (size_t at = 0; at < query.size();) {
    size_t end = std::min(query.find('&', at + 1), query.size());
    std::string item = query.substr(at + 1, end - at - 1);
    if (item.rfind(key, 0) == 0) text = httplib::detail::decode_url(item.substr(key.size()), true);
    at = end;
  }
  auto sel = parse_labels(text);
  if (!sel) {
    send_error(res, 400, "labelSelector: want k=v,k2=v2: " + sel.error().message());
    return false;
  }
  *selector = std::move(*sel);
  return true;
}

// ?state=Ready|NotReady (nodes only) into `state`; false after answering 400.
bool state_param(const httplib::Request& req, httplib::Response& res, Change::Kind kind,
                 std::string* state) {
  if (!req.has_param("state")) return true;
  const std::string v = req.get_param_value("state");
  if (kind != Change::Kind::kNode) {
    send_error(res, 400, "state: only the node list takes a state filter");
    return false;
  }
  if (v != "Ready" && v != "NotReady") {
    send_error(res, 400, "state: want Ready or NotReady, got '" + v + "'");
    return false;
  }
  *state = v;
  return true;
}

// ?labelSelector=k=v,k2=v2&limit=N&continue=TOKEN; nullopt after answering 400.
std::optional<ListOptions> list_options(const httplib::Request& req, httplib::Response& res) {
  ListOptions o;
  if (!selector_param(req, res, &o.selector)) return std::nullopt;
  if (req.has_param("limit")) {
    const std::string text = req.get_param_value("limit");
    char* end = nullptr;
    long v = std::strtol(text.c_str(), &end, 10);
    if (text.empty() || *end != '\0' || v < 1 || v > 10000) {
      send_error(res, 400, "limit: want a whole number from 1 to 10000, got '" + text + "'");
      return std::nullopt;
    }
    o.limit = v;
  }
  if (req.has_param("continue")) {
    const std::string token = req.get_param_value("continue");
    auto after = list_token_decode(token);
    if (!after) {
      send_error(res, 400, "continue: '" + token + "' is not a token this hub gave out");
      return std::nullopt;
    }
    o.after = *after;
  }
  return o;
}

constexpr const char* kNoDriver =
    "no hub instance drives the rollouts now (shard 0's lease is being taken over); try again";

// ?NAME=true|false (absent: false); nullopt after answering 400.
std::optional<bool> bool_param(const httplib::Request& req, httplib::Response& res,
                               const std::string& name) {
  if (!req.has_param(name)) return false;
  const std::string v = req.get_param_value(name);
  if (v == "true" || v == "1") return true;
  if (v == "false" || v == "0") return false;
  send_error(res, 400, name + ": want true or false, got '" + v + "'");
  return std::nullopt;
}

std::optional<bool> force_param(const httplib::Request& req, httplib::Response& res) {
  return bool_param(req, res, "force");
}

// Where a watch starts: after the Last-Event-ID a reconnecting EventSource sends, else after
// ?resourceVersion=N, else now; nullopt after answering 400.
std::optional<uint64_t> resource_version_param(const httplib::Request& req, httplib::Response& res,
                                               uint64_t now) {
  const std::string text = req.has_header("Last-Event-ID") ? req.get_header_value("Last-Event-ID")
                                                           : req.get_param_value("resourceVersion");
  if (text.empty()) return now;
  char* end = nullptr;
  errno = 0;
  unsigned long long v = std::strtoull(text.c_str(), &end, 10);
  if (*end != '\0' || errno != 0 || !std::isdigit(static_cast<unsigned char>(text[0]))) {
    send_error(res, 400,
               "resourceVersion: want the resourceVersion of a list or the id of a watch event, "
               "got '" +
                   text + "'");
    return std::nullopt;
  }
  return static_cast<uint64_t>(v);
}

}  // namespace

Api::Api(Controller& controller, Metrics& metrics, WatchLog& watch, ApiOptions options)
    : controller_(controller), metrics_(metrics), watch_(watch), options_(options) {}

void Api::install(httplib::Server& server) {
  const bool ota = artifacts_ != nullptr && rollouts_ != nullptr;
  server.set_payload_max_length(ota ? kMaxArtifactBytes : kMaxManifestBytes + 1);
  guard_ = std::make_unique<ApiGuard>(tokens_, audit_, clock_, metrics_,
                                      [this](const RouteTarget& t) { return snapshot(t); });
  // One body limit per server: with OTA on, the small one is kept here for everything but file
  // uploads. The status a request gets before its body is read: 0 when it may go on.
  auto refuse = [ota](const httplib::Request& req) {
    static const std::regex kUpload(R"(/api/v1/artifacts/[^/]+/[^/]+/(payload|delta))");
    if (!ota || std::regex_match(req.path, kUpload)) return 0;
    if (req.get_header_value("Transfer-Encoding").find("chunked") != std::string::npos) {
      return 411;
    }
    const std::string length = req.get_header_value("Content-Length");
    if (!length.empty() && std::strtoull(length.c_str(), nullptr, 10) > kMaxManifestBytes + 1) {
      return 413;
    }
    return 0;
  };
  auto answer = [](int status, httplib::Response& res) {
    send_error(res, status,
               status == 411 ? "a request body must come with a Content-Length"
                             : "request body is too large");
    res.set_header("Connection", "close");  // its body is not read
  };
  // The guard (tokens, roles, audit) first, then the body size.
  ApiGuard* guard = guard_.get();
  server.set_pre_routing_handler(
      [this, guard, refuse, answer](const httplib::Request& req, httplib::Response& res) {
        if (guard->check(req, res) != 0) return httplib::Server::HandlerResponse::Handled;
        const int status = refuse(req);
        if (status == 0) {
          // A single hub (no forwarding) never pays for is_rollout_call's regexes.
          return forwarding_.where && is_rollout_call(req) && forward_target(req, res)
                     ? httplib::Server::HandlerResponse::Handled
                     : httplib::Server::HandlerResponse::Unhandled;
        }
        answer(status, res);
        return httplib::Server::HandlerResponse::Handled;
      });
  server.set_post_routing_handler(
      [guard](const httplib::Request& req, httplib::Response& res) { guard->finish(req, res); });
  // A client that waits for 100 Continue (curl, for large bodies) is told before it sends.
  server.set_expect_100_continue_handler(
      [guard, refuse, answer](const httplib::Request& req, httplib::Response& res) {
        if (const int denied = guard->check(req, res); denied != 0) return denied;
        const int status = refuse(req);
        if (status == 0) return 100;
        answer(status, res);
        return status;
      });
  // httplib serves each connection on one pool thread (its default pool: 8 threads), and an open
  // watch keeps its thread: room for every watch allowed, and the usual workers besides.
  const size_t threads = options_.max_watches + options_.workers;
  server.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  // httplib's default adds SO_REUSEPORT, which lets a second hub bind the same port silently.
  server.set_socket_options([](socket_t sock) {
    int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
  });
  // Without TCP_NODELAY a reply written as headers, then body, waits for the client's delayed
  // ACK: about 40 ms per request on a reused connection (measured by bench/run twin). Accepted
  // sockets inherit it from the listening one. A client may send 100 requests on one
  // connection (httplib's default: 5).
  server.set_tcp_nodelay(true);
  server.set_keep_alive_max_count(100);
  server.set_exception_handler(
      [](const httplib::Request&, httplib::Response& res, const std::exception_ptr& ep) {
        std::string what = "unknown error";
        try {
          if (ep) std::rethrow_exception(ep);
        } catch (const std::exception& e) {
          what = e.what();
        } catch (...) {
        }
        log::get("api")->error("request failed error='{}'", what);
        send_error(res, 500, "internal error: " + what);
      });
  server.set_error_handler([](const httplib::Request& req, httplib::Response& res) {
    // Only fill in errors that no handler described (unknown paths, oversized bodies).
    if (!res.body.empty()) return;
    std::string what = res.status == 404   ? "no such path: " + req.method + " " + req.path
                       : res.status == 413 ? "request body is too large"
                                           : "request failed";
    send_error(res, res.status, what);
  });

  // The web console (docs/console.md): its files hold no fleet data, the API calls they make
  // carry the user's token.
  for (const ConsoleAsset& file : console_assets()) {
    auto serve = [&file](const httplib::Request& req, httplib::Response& res) {
      send_console_file(req, res, file);
    };
    if (file.name == "index.html") server.Get("/", serve);
    server.Get("/console/" + std::string(file.name), serve);
  }
  server.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    std::string watches = "# TYPE flotilla_hub_watches_open gauge\nflotilla_hub_watches_open " +
                          std::to_string(open_watches_.load()) + "\n";
    res.set_content(controller_.gauges_text() + watches + metrics_.render(),
                    "text/plain; version=0.0.4");
  });

  server.Get("/healthz", [](const httplib::Request&, httplib::Response& res) {
    send_json(res, 200, {{"status", "ok"}});
  });
  server.Get("/readyz", [this](const httplib::Request&, httplib::Response& res) {
    std::string why = not_ready_ ? not_ready_() : "";
    if (!why.empty()) return send_json(res, 503, {{"status", "not ready"}, {"reason", why}});
    send_json(res, 200, {{"status", "ready"}});
  });

  for (Change::Kind kind : {Change::Kind::kNode, Change::Kind::kWorkload, Change::Kind::kDevice}) {
    const std::string path = std::string("/api/v1/") + kind_path(kind);
    server.Get(path, [this, kind](const httplib::Request& req, httplib::Response& res) {
      list(req, res, kind);
    });
    server.Get(path + "/([^/]+)", [this, kind](const httplib::Request& req,
                                               httplib::Response& res) { one(req, res, kind); });
  }
  server.Delete(R"(/api/v1/nodes/([^/]+))",
                [this](const httplib::Request& req, httplib::Response& res) {
                  std::string name = req.matches[1];
                  auto found = controller_.delete_node(name);
                  if (!found) return send_error(res, 500, found.error().message());
                  if (!*found) return send_error(res, 404, "node '" + name + "' not found");
                  send_json(res, 200, {{"name", name}, {"action", "deleted"}});
                });

  auto apply_all = [this](const httplib::Request& req, httplib::Response& res) {
    guard_->note_body_targets(req);
    apply(req, res, "");
  };
  auto apply_one = [this](const httplib::Request& req, httplib::Response& res) {
    apply(req, res, req.matches[1]);
  };
  server.Put("/api/v1/workloads", apply_all);
  server.Post("/api/v1/workloads", apply_all);
  server.Put(R"(/api/v1/workloads/([^/]+))", apply_one);
  server.Post(R"(/api/v1/workloads/([^/]+))", apply_one);
  server.Delete(R"(/api/v1/workloads/([^/]+))",
                [this](const httplib::Request& req, httplib::Response& res) {
                  std::string name = req.matches[1];
                  auto force = force_param(req, res);
                  if (!force) return;
                  auto done = controller_.delete_workload(name, *force);
                  if (!done) return send_error(res, 500, done.error().message());
                  if (!done->found)
                    return send_error(res, 404, "workload '" + name + "' not found");
                  if (!done->refused.empty()) return send_error(res, 409, done->refused);
                  send_json(res, 200, {{"name", name}, {"action", "deleted"}});
                });

  server.Get("/api/v1/events", [this](const httplib::Request& req, httplib::Response& res) {
    EventFilter f;
    f.node = req.get_param_value("node");
    f.workload = req.get_param_value("workload");
    if (req.has_param("limit")) {
      const std::string text = req.get_param_value("limit");
      char* end = nullptr;
      long v = std::strtol(text.c_str(), &end, 10);
      if (text.empty() || *end != '\0' || v < 1 || v > 10000) {
        return send_error(res, 400,
                          "limit: want a whole number from 1 to 10000, got '" + text + "'");
      }
      f.limit = v;
    }
    send_view(res, controller_.events_view(f));
  });

  guard_->install_audit_route(server);
  install_device_routes(server, controller_);
  if (ota) {
    // Rollouts are read here, where watches are served; install_ota_routes has the rest.
    server.Get("/api/v1/rollouts", [this](const httplib::Request& req, httplib::Response& res) {
      auto watching = bool_param(req, res, "watch");
      if (!watching) return;
      if (*watching) {
        WatchFilter filter;
        filter.kind = Change::Kind::kRollout;
        if (!selector_param(req, res, &filter.selector)) return;
        return watch(req, res, std::move(filter));
      }
      const uint64_t version = watch_.version();  // read first, as for the other lists
      json list = rollouts_->list_view();
      list["resourceVersion"] = std::to_string(version);
      send_json(res, 200, list);
    });
    server.Get(R"(/api/v1/rollouts/([^/]+))",
               [this](const httplib::Request& req, httplib::Response& res) {
                 const std::string name = req.matches[1];
                 auto watching = bool_param(req, res, "watch");
                 if (!watching) return;
                 if (*watching) {
                   WatchFilter filter;
                   filter.kind = Change::Kind::kRollout;
                   filter.name = name;
                   return watch(req, res, std::move(filter));
                 }
                 auto view = rollouts_->view(name);
                 if (!view) return send_error(res, 404, "rollout '" + name + "' not found");
                 send_json(res, 200, *view);
               });
    return install_ota_routes(server, *artifacts_, *rollouts_);
  }
  for (const char* kind : {"rollouts", "artifacts"}) {
    std::string pattern = std::string("/api/v1/") + kind + "(/.*)?";
    std::string message = std::string(kind) + " are not supported yet";
    auto not_yet = [message](const httplib::Request&, httplib::Response& res) {
      send_error(res, 501, message);
    };
    server.Get(pattern, not_yet);
    server.Put(pattern, not_yet);
    server.Post(pattern, not_yet);
    server.Delete(pattern, not_yet);
  }
}

nlohmann::json Api::snapshot(const RouteTarget& target) {
  auto or_null = [](const Expected<std::optional<json>>& view) -> json {
    return view && *view ? **view : json(nullptr);
  };
  const std::string& name = target.name;
  if (target.kind == "Node") return or_null(controller_.node_view(name));
  if (target.kind == "Workload") return or_null(controller_.workload_view(name));
  if (target.kind == "Device") return or_null(controller_.device_view(name));
  if (target.kind == "Rollout" && rollouts_ != nullptr) {
    auto view = rollouts_->view(name);
    return view ? *view : json(nullptr);
  }
  if (target.kind == "Artifact" && artifacts_ != nullptr) {
    const auto slash = name.find('/');
    auto a = artifacts_->get(name.substr(0, slash), name.substr(slash + 1));
    return a ? artifact_json(*a) : json(nullptr);
  }
  return nullptr;
}

void Api::list(const httplib::Request& req, httplib::Response& res, Change::Kind kind) {
  auto watching = bool_param(req, res, "watch");
  if (!watching) return;
  const std::string node = kind == Change::Kind::kDevice ? req.get_param_value("node") : "";
  if (*watching) {
    WatchFilter filter;
    filter.kind = kind;
    filter.node = node;
    if (!selector_param(req, res, &filter.selector)) return;
    if (!state_param(req, res, kind, &filter.state)) return;
    return watch(req, res, std::move(filter));
  }
  auto options = list_options(req, res);
  if (!options) return;
  std::string state;
  if (!state_param(req, res, kind, &state)) return;
  if (!state.empty()) options->ready = state == "Ready";
  // Read first: whatever changes while the list is built has a later version, so a watch from
  // this version misses nothing.
  const uint64_t version = watch_.version();
  auto view = kind == Change::Kind::kNode       ? controller_.nodes_view(*options)
              : kind == Change::Kind::kWorkload ? controller_.workloads_view(*options)
                                                : controller_.devices_view(node, *options);
  if (!view) return send_error(res, 500, view.error().message());
  (*view)["resourceVersion"] = std::to_string(version);
  send_json(res, 200, *view);
}

void Api::one(const httplib::Request& req, httplib::Response& res, Change::Kind kind) {
  const std::string name = req.matches[1];
  auto watching = bool_param(req, res, "watch");
  if (!watching) return;
  if (*watching) {
    WatchFilter filter;
    filter.kind = kind;
    filter.name = name;
    return watch(req, res, std::move(filter));
  }
  if (kind == Change::Kind::kNode)
    return send_one(res, controller_.node_view(name), "node '" + name + "'");
  if (kind == Change::Kind::kDevice)
    return send_one(res, controller_.device_view(name), "device '" + name + "'");
  send_one(res, controller_.workload_view(name), "workload '" + name + "'");
}

void Api::watch(const httplib::Request& req, httplib::Response& res, WatchFilter filter) {
  auto after = resource_version_param(req, res, watch_.version());
  if (!after) return;
  const MetricLabels kind = {{"kind", kind_path(filter.kind)}};
  // Claim a slot; the stream gives it back when it ends.
  if (open_watches_.fetch_add(1) >= options_.max_watches) {
    open_watches_.fetch_sub(1);
    metrics_.count("flotilla_hub_watches_refused_total", kind);
    log::get("api")->warn("watch refused: too many open limit={}", options_.max_watches);
    return send_error(res, 503,
                      "too many open watches (limit " + std::to_string(options_.max_watches) +
                          "); try again later");
  }
  metrics_.count("flotilla_hub_watches_total", kind);
  // Rollout changes are heard where the rollouts are driven: the watch is streamed from there.
  if (auto url = filter.kind == Change::Kind::kRollout ? driver_url(req) : std::nullopt) {
    if (url->empty()) {
      open_watches_.fetch_sub(1);
      return send_error(res, 503, kNoDriver);
    }
    metrics_.count("flotilla_hub_api_forwarded_total");
    return forward_watch(req, res, *url, forwarding_.instance, forwarding_.ca_file,
                         [this] { open_watches_.fetch_sub(1); });
  }
  if (*after < watch_.oldest() || *after > watch_.version()) {
    metrics_.count("flotilla_hub_watches_expired_total", kind);  // the stream answers 410
  }
  WatchStreamOptions stream;
  stream.keepalive = options_.keepalive;
  stream.poll = options_.watch_poll;
  start_watch_stream(watch_, std::move(filter), *after, stream, res,
                     [this] { open_watches_.fetch_sub(1); });
}

std::optional<std::string> Api::driver_url(const httplib::Request& req) {
  if (!forwarding_.where || req.has_header(kForwardedBy)) return std::nullopt;
  ForwardTarget target = forwarding_.where();
  if (target.here) return std::nullopt;
  return std::move(target.url);
}

bool Api::forward_target(const httplib::Request& req, httplib::Response& res) {
  auto url = driver_url(req);
  if (!url) return false;
  if (url->empty()) {
    send_error(res, 503, kNoDriver);
    return true;
  }
  metrics_.count("flotilla_hub_api_forwarded_total");
  forward_request(req, res, *url, forwarding_.instance, forwarding_.ca_file);
  return true;
}

void Api::set_admission(std::shared_ptr<const AdmissionPolicy> policy) {
  admission_ = std::move(policy);
  if (!admission_) return;
  for (const auto& r : admission_->rules) {
    metrics_.count(kAdmissionRejections, {{"rule", r.name}}, 0);
  }
}

void Api::apply(const httplib::Request& req, httplib::Response& res, const std::string& name) {
  auto force = force_param(req, res);
  if (!force) return;
  auto all = parse_all_manifests(req.body, "request body");
  if (!all) return send_error(res, 400, all.error().message());
  const std::vector<WorkloadManifest>& manifests = all->workloads;
  // Rollouts are made where they are driven: the whole document goes there, before anything in
  // it is applied here.
  if (!all->rollouts.empty() && forward_target(req, res)) return;
  if (!name.empty() && (manifests.size() != 1 || !all->devices.empty() || !all->rollouts.empty() ||
                        manifests.front().name != name)) {
    return send_error(
        res, 400, "the body must hold exactly one workload, named '" + name + "' like the path");
  }
  if (admission_) {
    std::vector<AdmissionViolation> violations;
    for (const auto& m : manifests) {
      for (auto& v : admit(*admission_, m)) violations.push_back(std::move(v));
    }
    if (!violations.empty()) {
      for (const auto& v : violations) {
        metrics_.count(kAdmissionRejections, {{"rule", v.rule}});
        log::get("api")->info("admission refused rule={} workload={} reason=\"{}\"", v.rule,
                              v.workload, v.reason);
      }
      return send_error(res, 403, admission_error(violations));
    }
  }
  // Devices are checked first (a device cannot change node), so that a document the controller
  // would refuse leaves the workloads alone too.
  for (const auto& d : all->devices) {
    auto existing = controller_.device_view(d.name);
    if (!existing) return send_error(res, 500, existing.error().message());
    if (*existing && (**existing)["node"] != d.node) {
      return send_error(res, 400,
                        "device '" + d.name + "' is attached to node '" +
                            (**existing)["node"].get<std::string>() +
                            "'; delete it to attach it to '" + d.node + "'");
    }
  }
  json items = json::array();
  if (!manifests.empty()) {
    auto done = controller_.apply(manifests, *force);
    if (!done) return send_error(res, 500, done.error().message());
    if (!done->refused.empty()) return send_error(res, 409, done->refused);
    for (const auto& r : done->results) {
      items.push_back({{"kind", "Workload"}, {"name", r.name}, {"action", r.action}});
    }
  }
  for (const auto& d : all->devices) {
    auto put = controller_.put_device(d.name, device_body(d));
    if (!put) return send_error(res, 500, put.error().message());
    if (put->code != DeviceOutcome::Code::kOk && put->code != DeviceOutcome::Code::kCreated) {
      return send_error(res, 400, put->message);
    }
    const char* action = put->code == DeviceOutcome::Code::kCreated ? "created"
                         : put->changed                             ? "configured"
                                                                    : "unchanged";
    items.push_back({{"kind", "Device"}, {"name", d.name}, {"action", action}});
  }
  if (!all->rollouts.empty() && rollouts_ == nullptr) {
    return send_error(res, 501, "rollouts are not supported by this hub");
  }
  for (const auto& r : all->rollouts) {
    auto done = rollouts_->apply(r);
    if (done.code == RolloutOutcome::Code::kFailed) return send_error(res, 500, done.message);
    if (done.code != RolloutOutcome::Code::kOk && done.code != RolloutOutcome::Code::kCreated) {
      return send_error(res, done.code == RolloutOutcome::Code::kConflict ? 409 : 400,
                        done.message);
    }
    items.push_back({{"kind", "Rollout"}, {"name", r.name}, {"action", done.action}});
  }
  send_json(res, 200, {{"items", items}});
}

}  // namespace flotilla::hub
