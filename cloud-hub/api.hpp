// Api: the REST interface under /api/v1/ on cpp-httplib, plus GET /metrics and a minimal GET /.
//
//   GET    /healthz                          200 while the process serves
//   GET    /readyz                           200 once ready (store open, MQTT connected), else
//                                            503 {"status": "not ready", "reason": ...}
//   GET    /api/v1/nodes[/NAME]              registered nodes
//   GET    /api/v1/nodes[/NAME]?watch=true   their changes as server-sent events (watch_stream.hpp)
//   DELETE /api/v1/nodes/NAME                forget a node; its workloads are placed elsewhere
//   GET    /api/v1/workloads[/NAME]          manifests with status
//   GET    /api/v1/workloads[/NAME]?watch=true
//   PUT|POST /api/v1/workloads[/NAME]        apply a manifest (YAML or JSON; several documents
//                                            apply all or nothing; without NAME kind Device
//                                            too, each as PUT /api/v1/devices/NAME would)
//   DELETE /api/v1/workloads/NAME
//   (apply and delete take ?force=true past the blast-radius guard; else 409 over its limit;
//   with an admission policy, a workload breaking a rule refuses the whole apply with 403
//   {"error": "admission: rule 'R' denies workload 'W': ..."} before anything is written)
//   GET    /api/v1/events?node=&workload=&limit=
//   Lists of nodes and workloads take ?labelSelector=k=v,k2=v2&limit=N&continue=TOKEN and
//   answer {"items": [...], "continue": TOKEN, "resourceVersion": "N"} (TOKEN empty on the last
//   page; N the WatchLog's version, read before the list was built). A watch takes
//   ?resourceVersion=N (absent: from now; a Last-Event-ID header wins) and ?labelSelector=,
//   streams ADDED|MODIFIED|DELETED events, and ends with an ERROR event (410) when N is no
//   longer held: list again.
//   GET|PUT|DELETE /api/v1/devices[/NAME], PATCH|POST /api/v1/devices/NAME/desired
//                                            device twins (api_devices.hpp); their list and
//                                            watch as above, also by ?node=N
//   /api/v1/artifacts, /api/v1/rollouts      OTA artifacts and rollouts (api_ota.hpp), when
//                                            set_ota() gave them; else 501. PUT|POST
//                                            /api/v1/workloads applies kind Rollout too.
//
// Request bodies are capped at kMaxManifestBytes, except artifact uploads (kMaxArtifactBytes,
// streamed to disk): with OTA on, a pre-routing check refuses a larger Content-Length (413) or a
// chunked body (411) on every other path, since httplib has one limit for the whole server.
//
// Errors are JSON {"error": "..."} with a 4xx/5xx status; a rejected request changes nothing.
//
// Every request passes one ApiGuard first (api_guard.hpp): bearer tokens and roles when
// set_auth() gave a TokenTable, and an audit record of every change when it gave an AuditLog
// (GET /api/v1/audit, admin).
//
// Each open watch holds one of httplib's worker threads, so install() gives the server a pool of
// max_watches + workers threads and refuses a watch past max_watches with 503: watches never
// starve the other requests.
//
// Thread-safety: handlers run on httplib's worker threads; the Controller serialises.
#pragma once

#include <httplib.h>

#include <atomic>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "cloud-hub/admission.hpp"
#include "cloud-hub/api_forward.hpp"
#include "cloud-hub/api_guard.hpp"
#include "cloud-hub/artifact_store.hpp"
#include "cloud-hub/controller.hpp"
#include "cloud-hub/metrics.hpp"
#include "cloud-hub/update_rollouts.hpp"
#include "cloud-hub/watch.hpp"
#include "common/clock.hpp"

namespace flotilla::hub {

struct ApiOptions {
  size_t max_watches = 256;  // open watch streams at most
  size_t workers = 8;        // worker threads for everything else
  Millis keepalive{10000};   // a ": keepalive" comment on a watch idle this long
  Millis watch_poll{500};    // how often an idle watch checks that its client is still there
};

class Api {
 public:
  // `watch` is filled by a WatchFeeder; the caller closes it when stopping, which ends every
  // open watch.
  Api(Controller& controller, Metrics& metrics, WatchLog& watch, ApiOptions options = {});
  // OTA artifacts and rollouts; set before install(). Unset: their routes answer 501.
  void set_ota(ArtifactStore* artifacts, UpdateRollouts* rollouts) {
    artifacts_ = artifacts;
    rollouts_ = rollouts;
  }
  // Authentication (`tokens` null: off, every caller is "anonymous") and the audit log (null:
  // none); set before install(). Both must outlive the server.
  void set_auth(const TokenTable* tokens, AuditLog* audit) {
    tokens_ = tokens;
    audit_ = audit;
  }
  // The admission policy every applied workload is checked against (admission.hpp); set before
  // install(). Unset: no admission checks. Seeds its per-rule rejection counters at 0.
  void set_admission(std::shared_ptr<const AdmissionPolicy> policy);
  // Several hub instances (api_forward.hpp): `where` tells where rollout calls are answered
  // now; this instance forwards them as `instance`, verifying an https driver with `ca_file`.
  // Set before install(). Unset: every call is answered here.
  struct Forwarding {
    std::function<ForwardTarget()> where;
    std::string instance;
    std::string ca_file;
  };
  void set_forwarding(Forwarding forwarding) { forwarding_ = std::move(forwarding); }
  // Registers every route on `server` and sizes its worker pool (see above).
  void install(httplib::Server& server);
  // Watch streams open now.
  size_t open_watches() const { return open_watches_.load(); }
  // What /readyz asks: empty when ready, else why not. Unset: always ready.
  void set_readiness(std::function<std::string()> why_not_ready) {
    not_ready_ = std::move(why_not_ready);
  }

 private:
  void apply(const httplib::Request& req, httplib::Response& res, const std::string& name);
  // The driver's API address when another instance answers `req` ("" while none is known);
  // nullopt when this one does.
  std::optional<std::string> driver_url(const httplib::Request& req);
  // When the call is answered by another instance: forwards it there (or answers 503 while
  // none is known) and returns true. The caller has checked that only the driver answers it.
  bool forward_target(const httplib::Request& req, httplib::Response& res);
  // GET of a list: with ?watch=true a watch stream, else the list with its resourceVersion.
  void list(const httplib::Request& req, httplib::Response& res, Change::Kind kind);
  // GET of one object: with ?watch=true a watch stream of it, else its view.
  void one(const httplib::Request& req, httplib::Response& res, Change::Kind kind);
  void watch(const httplib::Request& req, httplib::Response& res, WatchFilter filter);
  // The JSON of an audited object now (null: absent), from the views GET answers with.
  nlohmann::json snapshot(const RouteTarget& target);

  Controller& controller_;
  Metrics& metrics_;
  WatchLog& watch_;
  const ApiOptions options_;
  std::atomic<size_t> open_watches_{0};
  std::function<std::string()> not_ready_;
  ArtifactStore* artifacts_ = nullptr;
  UpdateRollouts* rollouts_ = nullptr;
  const TokenTable* tokens_ = nullptr;
  AuditLog* audit_ = nullptr;
  SystemClock clock_;
  std::unique_ptr<ApiGuard> guard_;
  std::shared_ptr<const AdmissionPolicy> admission_;
  Forwarding forwarding_;
};

}  // namespace flotilla::hub
