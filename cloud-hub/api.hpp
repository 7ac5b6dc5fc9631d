// Api: the REST interface under /api/v1/ on cpp-httplib, plus GET /metrics and a minimal GET /.
//
//   GET    /healthz                          200 while the process serves
//   GET    /readyz                           200 once ready (store open, MQTT connected), else
//                                            503 {"status": "not ready", "reason": ...}
//   GET    /api/v1/nodes[/NAME]              registered nodes
//   DELETE /api/v1/nodes/NAME                forget a node; its workloads are placed elsewhere
//   GET    /api/v1/workloads[/NAME]          manifests with status
//   PUT|POST /api/v1/workloads[/NAME]        apply a manifest (YAML or JSON; several documents
//                                            apply all or nothing)
//   DELETE /api/v1/workloads/NAME
//   (apply and delete take ?force=true past the blast-radius guard; else 409 over its limit)
//   GET    /api/v1/events?node=&workload=&limit=
//   Lists of nodes and workloads take ?labelSelector=k=v,k2=v2&limit=N&continue=TOKEN and
//   answer {"items": [...], "continue": TOKEN} (TOKEN empty on the last page).
//   /api/v1/devices, /rollouts, /artifacts   501: not supported yet
//
// Errors are JSON {"error": "..."} with a 4xx/5xx status; a rejected request changes nothing.
//
// Thread-safety: handlers run on httplib's worker threads; the Controller serialises.
#pragma once

#include <httplib.h>

#include <functional>
#include <string>

#include "cloud-hub/controller.hpp"
#include "cloud-hub/metrics.hpp"

namespace flotilla::hub {

class Api {
 public:
  Api(Controller& controller, Metrics& metrics);
  // Registers every route on `server`.
  void install(httplib::Server& server);
  // What /readyz asks: empty when ready, else why not. Unset: always ready.
  void set_readiness(std::function<std::string()> why_not_ready) {
    not_ready_ = std::move(why_not_ready);
  }

 private:
  void apply(const httplib::Request& req, httplib::Response& res, const std::string& name);

  Controller& controller_;
  Metrics& metrics_;
  std::function<std::string()> not_ready_;
};

}  // namespace flotilla::hub
