// ChangeFeed: the changes one hub instance commits, told to the other instances that share its
// PostgreSQL database, so that a watch (GET ...?watch=true) on any instance follows the whole
// fleet (docs/multi-hub.md).
//
// Each instance keeps one connection that LISTENs on the channel "flotilla_changes". publish()
// queues the (kind, name) of objects whose views changed, after their commit; the feed's thread
// sends them with pg_notify, several hundred per notification (a payload stays under
// PostgreSQL's 8000-byte limit), and hands what the other instances sent to `on_changes`. Its own
// notifications (the server echoes them to a listening session) are skipped. Receivers read the
// views from the database again, as they do for their own changes: a notification carries names,
// never state, so a late or repeated one changes nothing.
//
// PostgreSQL keeps no notification for a session that is not listening. When the connection
// breaks, the feed reconnects (every `reconnect_delay`), LISTENs again and then calls `on_gap`:
// what the others changed in between is unknown, and the hub makes its watchers list again.
// What this instance published meanwhile stays queued and is sent once connected.
//
// Payload (the decoder is fuzzed, test/fuzz/fuzz_change_feed.cpp): the line "flotilla-changes 1",
// then one line per change: a kind letter (n node, w workload, d device, r rollout), a space and
// the name. Names hold no line break (the API's names are DNS labels or paths).
//
// Thread-safety: publish() and stats() from any thread; stop() once.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "cloud-hub/change.hpp"
#include "cloud-hub/pg.hpp"
#include "common/clock.hpp"
#include "common/expected.hpp"

namespace flotilla::hub {

inline constexpr size_t kMaxChangePayload = 7900;  // PostgreSQL refuses 8000 bytes and more

// The notification payloads for `changes`, each at most `max_bytes` long, in the order of the
// set. A name that cannot fit in one payload, or holds a line break, is left out.
std::vector<std::string> encode_changes(const std::set<Change>& changes,
                                        size_t max_bytes = kMaxChangePayload);
// The changes of one payload; an error names what is wrong (and nothing is delivered).
Expected<std::set<Change>> decode_changes(const std::string& payload);

struct ChangeFeedOptions {
  std::string conninfo;  // as for --store
  Millis reconnect_delay{500};
  int connect_timeout_s = 5;
};

struct ChangeFeedStats {
  uint64_t published = 0;  // changes sent
  uint64_t received = 0;   // changes handed to on_changes
  uint64_t rejected = 0;   // payloads that did not decode (logged)
  uint64_t gaps = 0;       // reconnects after which on_gap was called
};

class ChangeFeed {
 public:
  // Connects and LISTENs before returning (an error says why not), then runs its thread.
  // `on_changes` and `on_gap` run on that thread.
  static Expected<std::unique_ptr<ChangeFeed>> start(ChangeFeedOptions options,
                                                     ChangeListener on_changes,
                                                     std::function<void()> on_gap);
  ~ChangeFeed();
  ChangeFeed(const ChangeFeed&) = delete;
  ChangeFeed& operator=(const ChangeFeed&) = delete;

  // Queues the changes for the other instances; never waits for the database.
  void publish(const std::set<Change>& changes);
  // Sends what is queued (when connected) and ends the thread.
  void stop();
  ChangeFeedStats stats() const;

 private:
  ChangeFeed(ChangeFeedOptions options, ChangeListener on_changes, std::function<void()> on_gap);
  Status connect();
  void run();
  // Sends the queued changes; false when the connection broke (they stay queued).
  bool send_queued();
  // Hands over what arrived; false when the connection broke.
  bool receive();
  void wake();

  const ChangeFeedOptions options_;
  const ChangeListener on_changes_;
  const std::function<void()> on_gap_;
  pg::Conn conn_;  // the thread's
  int wake_fd_ = -1;
  mutable std::mutex mu_;
  std::set<Change> queued_;
  bool stopping_ = false;
  std::atomic<uint64_t> published_{0};
  std::atomic<uint64_t> received_{0};
  std::atomic<uint64_t> rejected_{0};
  std::atomic<uint64_t> gaps_{0};
  std::thread thread_;
};

}  // namespace flotilla::hub
