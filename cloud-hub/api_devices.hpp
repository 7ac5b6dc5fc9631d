// The REST routes that change device twins (docs/hub.md "Devices"), installed by Api::install.
// The reads are Api's, as for nodes and workloads (lists with resourceVersion, ?watch=true):
//
//   GET    /api/v1/devices[?node=N]          {"items": [device...], "continue": TOKEN,
//                                            "resourceVersion": "V"}, by name (limit, continue)
//   GET    /api/v1/devices/NAME              one device: name, node, desired, desiredVersion,
//                                            reported, reportedVersion, observedDesired, delta,
//                                            updatedAt
//   GET    /api/v1/devices[/NAME]?watch=true[&node=N]   their changes (server-sent events)
//   PUT    /api/v1/devices/NAME              create (201) or replace (200) from
//                                            {"node": N, "desired": {...}}
//   PATCH|POST /api/v1/devices/NAME/desired  {"desired": merge patch, "ifVersion": N}: 200 with
//                                            the device, 400 invalid, 404, 409 when ifVersion is
//                                            not the current desiredVersion
//   DELETE /api/v1/devices/NAME
//
// Thread-safety: as Api's; the Controller serialises.
#pragma once

#include <httplib.h>

#include "cloud-hub/controller.hpp"

namespace flotilla::hub {

void install_device_routes(httplib::Server& server, Controller& controller);

}  // namespace flotilla::hub
