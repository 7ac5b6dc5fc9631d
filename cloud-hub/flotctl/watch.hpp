// flotctl get KIND [NAME] --watch (and twin get DEVICE --watch): what is there now, then each
// change as the hub reports it, like `kubectl get -w`, until interrupted.
//
// It lists (keeping the list's resourceVersion), prints the table (or the objects in JSON or
// YAML), then follows GET ...?watch=true&resourceVersion=N and prints one row (or object) per
// change. When the stream drops it reconnects from the id of the last event it got; when the hub
// answers 410 (that version is no longer held) it lists again and prints what changed meanwhile.
// With --output-watch-events every line starts with the event: ADDED, MODIFIED or DELETED (the
// first table's rows are ADDED), and JSON/YAML objects come as {type, object}.
//
// Thread-safety: one call at a time per Client.
#pragma once

#include <cstdint>
#include <functional>
#include <iosfwd>
#include <optional>
#include <string>

#include "cloud-hub/flotctl/client.hpp"

namespace flotilla::flotctl {

struct WatchRequest {
  std::string kind;                   // nodes | workloads | devices
  std::optional<std::string> name;    // one object
  std::string selector;               // k=v,k2=v2 (lists only)
  std::string output;                 // "" (table), json or yaml
  bool watch_events = false;          // --output-watch-events
  std::function<bool()> interrupted;  // polled about once a second; true ends the watch
  std::function<int64_t()> now_ms;    // for AGE
  int64_t retry_ms = 1000;            // pause before reconnecting
};

// Returns flotctl's exit code: 0 when interrupted, 1 when the first list fails or the hub
// refuses the watch (bad request).
int watch(Client& client, const WatchRequest& request, std::ostream& out, std::ostream& err);

// Parses a text/event-stream as it arrives, calling `on_message` per message. Comments are
// skipped; a block with only an id (a keepalive's progress) is a message with no event.
class SseParser {
 public:
  struct Message {
    std::string event;
    std::string id;
    std::string data;
  };
  void feed(const std::string& chunk, const std::function<void(const Message&)>& on_message);

 private:
  std::string line_;
  Message current_;
  bool any_ = false;
};

}  // namespace flotilla::flotctl
