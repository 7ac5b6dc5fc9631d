// ApiGuard: the one check in front of every route (api_auth.hpp's role table) and the audit
// trail of every change (audit_log.hpp). Api::install wires it into httplib: check() runs in the
// pre-routing handler (and in the Expect: 100-continue handler, so a refused upload is not
// sent), finish() in the post-routing handler, which httplib calls on the same thread just
// before it writes the response.
//
//   no or unknown bearer token  -> 401 {"error": ...}, WWW-Authenticate: Bearer realm="flotilla"
//   a role below the route's    -> 403 {"error": "... needs role operator"}
//
// Without a TokenTable (no --api-tokens) every request passes as "anonymous".
//
// The audit record of a change: check() notes who and what, and reads the objects the path
// names before the change; note_body_targets() does the same for the objects an apply's body
// names (called by the handler, which has the body); finish() reads them again and appends one
// record per object (one without kind and name when the request named none, e.g. a body that
// did not parse) in one transaction. Before and after are read around the request, not in the
// same transaction as the change: a concurrent change to the same object by someone else can
// show in the difference. A 401 is not recorded (nobody to name); a 403 is, with no before or
// after. A failed audit write is logged and counted (flotilla_hub_audit_errors_total); the change
// it describes has been made.
//
// Thread-safety: httplib runs a request's handlers on one thread; the pending record is that
// thread's.
#pragma once

#include <httplib.h>

#include <functional>
#include <nlohmann/json.hpp>

#include "cloud-hub/api_auth.hpp"
#include "cloud-hub/audit_log.hpp"
#include "cloud-hub/metrics.hpp"
#include "common/clock.hpp"

namespace flotilla::hub {

class ApiGuard {
 public:
  // The object's JSON now, or null when it does not exist.
  using Snapshot = std::function<nlohmann::json(const RouteTarget&)>;

  // `tokens` null: authentication off. `audit` null: no audit trail.
  ApiGuard(const TokenTable* tokens, AuditLog* audit, const Clock& clock, Metrics& metrics,
           Snapshot snapshot);

  // 0 when the request may go on, else the status (401, 403) it was answered with.
  int check(const httplib::Request& req, httplib::Response& res);
  // For an apply of several documents: the objects its body names.
  void note_body_targets(const httplib::Request& req);
  void finish(const httplib::Request& req, const httplib::Response& res);

  // GET /api/v1/audit?limit=N&since=ID: {"items": [record...]} oldest first (501 without an
  // audit log).
  void install_audit_route(httplib::Server& server);

 private:
  const TokenTable* tokens_;
  AuditLog* audit_;
  const Clock& clock_;
  Metrics& metrics_;
  Snapshot snapshot_;
};

}  // namespace flotilla::hub
