// Watch streams: the changes a WatchLog holds, sent to one HTTP client as server-sent events
// (text/event-stream) over cpp-httplib's chunked content provider. The Api parses the request;
// this file writes the stream (formats in docs/hub.md):
//
//   event: MODIFIED
//   id: 1733000000000042
//   data: {"type":"MODIFIED","object":{...}}
//
// A ": keepalive" comment (with the id the watcher has got to, when its filter skipped changes)
// goes out when the stream was idle for `keepalive`; an ERROR event with a Kubernetes-style
// Status (code 410, reason Expired) ends a stream whose version the log no longer holds.
//
// The stream ends when the client goes away (checked every `poll` while idle, and on each write),
// when the log is closed (the hub stops), or when httplib's server stops: an open watch never
// holds up Hub::stop() for longer than one `poll`.
//
// Thread-safety: each stream runs on the httplib worker thread that serves its request.
#pragma once

#include <httplib.h>

#include <cstdint>
#include <functional>
#include <string>

#include "cloud-hub/watch.hpp"
#include "common/clock.hpp"

namespace flotilla::hub {

struct WatchStreamOptions {
  Millis keepalive{10000};
  Millis poll{500};
};

// Answers `res` with the stream of what `filter` wants after version `after`. `on_end` runs once,
// when the stream is over (or was never started).
void start_watch_stream(WatchLog& log, WatchFilter filter, uint64_t after,
                        WatchStreamOptions options, httplib::Response& res,
                        std::function<void()> on_end);

// The frame of one event, of an error that ends a stream (a Status object with the HTTP `code`),
// and of the one for a stream whose version is gone (410 Expired).
std::string sse_event(const Delivery& delivery);
std::string sse_error(int code, const std::string& reason, const std::string& message);
std::string sse_gone(uint64_t asked, uint64_t oldest);

}  // namespace flotilla::hub
