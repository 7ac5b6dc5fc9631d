// Api: the REST interface under /api/v1/ on cpp-httplib, plus GET /metrics and a minimal GET /.
//
//   GET    /api/v1/nodes[/NAME]              registered nodes
//   DELETE /api/v1/nodes/NAME                forget a node; its workloads are placed elsewhere
//   GET    /api/v1/workloads[/NAME]          manifests with status
//   PUT|POST /api/v1/workloads[/NAME]        apply a manifest (YAML or JSON; several documents
//                                            apply all or nothing)
//   DELETE /api/v1/workloads/NAME
//   (apply and delete take ?force=true past the blast-radius guard; else 409 over its limit)
//   GET    /api/v1/events?node=&workload=&limit=
//   /api/v1/devices, /rollouts, /artifacts   501: not supported yet
//
// Errors are JSON {"error": "..."} with a 4xx/5xx status; a rejected request changes nothing.
//
// Thread-safety: handlers run on httplib's worker threads; the Controller serialises.
#pragma once

#include <httplib.h>

#include "cloud-hub/controller.hpp"
#include "cloud-hub/metrics.hpp"

namespace flotilla::hub {

class Api {
 public:
  Api(Controller& controller, Metrics& metrics);
  // Registers every route on `server`.
  void install(httplib::Server& server);

 private:
  void apply(const httplib::Request& req, httplib::Response& res, const std::string& name);

  Controller& controller_;
  Metrics& metrics_;
};

}  // namespace flotilla::hub
