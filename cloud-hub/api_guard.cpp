#include "cloud-hub/api_guard.hpp"

#include <cctype>
#include <optional>

#include "cloud-hub/api_forward.hpp"
#include "cloud-hub/api_reply.hpp"
#include "cloud-hub/manifest.hpp"
#include "common/log.hpp"

namespace flotilla::hub {
namespace {

using json = nlohmann::json;

// The change the current thread's request is making.
struct Pending {
  const void* guard = nullptr;
  const httplib::Request* req = nullptr;
  std::string who;
  std::string role;
  bool denied = false;
  std::vector<RouteTarget> targets;
  std::vector<json> before;
};

thread_local std::optional<Pending> t_pending;

// The token of "Authorization: Bearer TOKEN" (scheme case-insensitive); empty when absent.
std::string bearer_token(const httplib::Request& req) {
  const std::string header = req.get_header_value("Authorization");
  const std::string scheme = "bearer ";
  if (header.size() <= scheme.size()) return "";
  for (size_t i = 0; i < scheme.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(header[i])) != scheme[i]) return "";
  }
  size_t start = header.find_first_not_of(' ', scheme.size());
  size_t end = header.find_last_not_of(" \t\r\n");
  if (start == std::string::npos || end < start) return "";
  return header.substr(start, end - start + 1);
}

std::optional<int64_t> whole_param(const httplib::Request& req, httplib::Response& res,
                                   const std::string& name, int64_t low, int64_t high,
                                   int64_t fallback) {
  if (!req.has_param(name)) return fallback;
  const std::string text = req.get_param_value(name);
  char* end = nullptr;
  long long v = std::strtoll(text.c_str(), &end, 10);
  if (text.empty() || *end != '\0' || v < low || v > high) {
    send_error(res, 400,
               name + ": want a whole number from " + std::to_string(low) + " to " +
                   std::to_string(high) + ", got '" + text + "'");
    return std::nullopt;
  }
  return v;
}

}  // namespace

ApiGuard::ApiGuard(const TokenTable* tokens, AuditLog* audit, const Clock& clock, Metrics& metrics,
                   Snapshot snapshot)
    : tokens_(tokens),
      audit_(audit),
      clock_(clock),
      metrics_(metrics),
      snapshot_(std::move(snapshot)) {}

int ApiGuard::check(const httplib::Request& req, httplib::Response& res) {
  t_pending.reset();
  const RouteRule rule = route_rule(req.method, req.path);
  std::string who = "anonymous";
  std::string role = "none";
  bool denied = false;
  if (tokens_ != nullptr && rule.role != Role::kOpen) {
    const std::string token = bearer_token(req);
    const ApiToken* found = token.empty() ? nullptr : tokens_->find(token);
    if (found == nullptr) {
      metrics_.count("flotilla_hub_api_denied_total", {{"status", "401"}});
      log::get("api")->info("request refused status=401 method={} path={} token={}", req.method,
                            req.path, token.empty() ? "none" : "unknown");
      send_error(res, 401,
                 token.empty() ? "this hub wants a bearer token (Authorization: Bearer TOKEN)"
                               : "the bearer token is not one this hub knows");
      res.set_header("WWW-Authenticate",
                     token.empty() ? "Bearer realm=\"flotilla\""
                                   : "Bearer realm=\"flotilla\", error=\"invalid_token\"");
      res.set_header("Connection", "close");  // its body, if any, is not read
      return 401;
    }
    who = found->name;
    role = role_name(found->role);
    denied = found->role < rule.role;
  }
  if (is_change(req.method)) {
    Pending p;
    p.guard = this;
    p.req = &req;
    p.who = who;
    p.role = role;
    p.denied = denied;
    if (!denied && !rule.target.kind.empty()) {
      p.targets.push_back(rule.target);
      p.before.push_back(snapshot_(rule.target));
    }
    t_pending = std::move(p);
  }
  if (!denied) return 0;
  metrics_.count("flotilla_hub_api_denied_total", {{"status", "403"}});
  log::get("api")->info("request refused status=403 method={} path={} who={} role={} needs={}",
                        req.method, req.path, who, role, role_name(rule.role));
  send_error(res, 403,
             "token '" + who + "' has role " + role + "; " + req.method + " " + req.path +
                 " needs role " + role_name(rule.role));
  res.set_header("Connection", "close");
  return 403;
}

void ApiGuard::note_body_targets(const httplib::Request& req) {
  if (!t_pending || t_pending->req != &req || t_pending->guard != this) return;
  auto all = parse_all_manifests(req.body, "request body");
  if (!all) return;  // the handler answers 400; the record has no target
  auto add = [&](const char* kind, const std::string& name) {
    RouteTarget t{kind, name};
    t_pending->before.push_back(snapshot_(t));
    t_pending->targets.push_back(std::move(t));
  };
  for (const auto& w : all->workloads) add("Workload", w.name);
  for (const auto& d : all->devices) add("Device", d.name);
  for (const auto& r : all->rollouts) add("Rollout", r.name);
}

void ApiGuard::finish(const httplib::Request& req, const httplib::Response& res) {
  if (!t_pending || t_pending->req != &req || t_pending->guard != this) return;
  Pending p = std::move(*t_pending);
  t_pending.reset();
  // A call forwarded to another instance is audited there (api_forward.hpp).
  if (audit_ == nullptr || res.has_header(kForwardedTo)) return;
  AuditRecord base;
  base.time = utc_time(clock_.wall_ms());
  base.who = p.who;
  base.role = p.role;
  base.method = req.method;
  base.target = req.target.empty() ? req.path : req.target;
  base.status = res.status;
  std::vector<AuditRecord> records;
  for (size_t i = 0; i < p.targets.size(); ++i) {
    AuditRecord r = base;
    r.kind = p.targets[i].kind;
    r.name = p.targets[i].name;
    r.before = p.before[i];
    r.after = snapshot_(p.targets[i]);
    records.push_back(std::move(r));
  }
  if (records.empty()) records.push_back(base);
  if (auto st = audit_->append(records); !st) {
    metrics_.count("flotilla_hub_audit_errors_total");
    log::get("api")->error("audit record lost method={} path={} who={} status={} error='{}'",
                           req.method, req.path, p.who, res.status, st.error().message());
  }
}

void ApiGuard::install_audit_route(httplib::Server& server) {
  server.Get("/api/v1/audit", [this](const httplib::Request& req, httplib::Response& res) {
    if (audit_ == nullptr) return send_error(res, 501, "this hub keeps no audit log");
    auto limit = whole_param(req, res, "limit", 1, 10000, 100);
    if (!limit) return;
    auto since = whole_param(req, res, "since", 0, INT64_MAX, 0);
    if (!since) return;
    auto records = audit_->list(*since, static_cast<int>(*limit));
    if (!records) return send_error(res, 500, records.error().message());
    json items = json::array();
    for (const auto& r : *records) items.push_back(audit_json(r));
    send_json(res, 200, {{"items", items}});
  });
}

}  // namespace flotilla::hub
