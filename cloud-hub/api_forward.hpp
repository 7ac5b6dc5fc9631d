// Forwarding of the API calls that only one hub instance can answer, when several share one
// PostgreSQL database (docs/multi-hub.md): the OTA rollouts live in the instance that drives them
// (the holder of shard 0's lease, UpdateRollouts::set_driving), so any other instance sends a
// rollout call there and hands back its answer. Every instance then serves the whole API, behind
// one load balancer.
//
// The forwarded request carries the caller's Authorization header (every instance is given the
// same --api-tokens), so the driver authenticates, authorises and audits it; the forwarding
// instance audits nothing of it (its answer carries kForwardedTo). A request that was forwarded
// once (kForwardedBy) is never forwarded again, so two instances that briefly disagree about
// the driver cannot bounce a call between them: the receiver answers it itself.
#pragma once

#include <httplib.h>

#include <functional>
#include <string>

namespace flotilla::hub {

inline constexpr const char* kForwardedBy = "X-Flotilla-Forwarded-By";  // request: the sender
inline constexpr const char* kForwardedTo = "X-Flotilla-Forwarded-To";  // answer: the driver

// Where a call is answered.
struct ForwardTarget {
  bool here = true;  // by this instance
  std::string url;   // else by the instance at this API address; empty: none known now (503)
};

// Whether `req` is one that only the driver of the rollouts answers: any call under
// /api/v1/rollouts but a watch (forward_watch), and the deletion of an artifact (refused while
// an unfinished rollout uses it).
bool is_rollout_call(const httplib::Request& req);

// Sends `req` to the instance at `url` (http://host:port or https://...; `ca_file` verifies
// an https instance, empty: the system's CAs) as `from`, and copies its status, body and
// content type into `res`. An instance that does not answer gets 503 with the reason.
void forward_request(const httplib::Request& req, httplib::Response& res, const std::string& url,
                     const std::string& from, const std::string& ca_file);

// A rollout watch made here, streamed from the driver: answers 200 text/event-stream and copies
// the driver's stream (its events, versions and keepalives) until either side ends it. A driver
// that does not answer, or answers other than 200, ends the stream with an ERROR event carrying
// its status (503 when it did not answer), as a watch whose version is gone ends with 410; the
// client reconnects, and lists again when its version is unknown there. `on_end` runs once,
// when the stream is over.
void forward_watch(const httplib::Request& req, httplib::Response& res, const std::string& url,
                   const std::string& from, const std::string& ca_file,
                   std::function<void()> on_end);

}  // namespace flotilla::hub
