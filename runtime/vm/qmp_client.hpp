// QmpClient: a client for QEMU's machine protocol (QMP) over a unix socket: the greeting,
// capability negotiation, commands (query-status, system_powerdown, quit, ...) and the
// asynchronous events QEMU sends in between (SHUTDOWN, POWERDOWN, ...).
//
// Every call is bounded by a timeout, so a wedged QEMU can stall the caller for at most that long.
// QMP serves one client at a time per socket, so the vm driver connects on demand and lets go
// after the command rather than holding a connection per VM.
//
// parse_qmp_message() decodes one line QEMU sent; its input is untrusted (a guest can sway what
// QEMU says) and it reports bad input as an Error, never by crashing.
//
// Ownership: a QmpClient owns its socket and closes it when destroyed. Thread-safety: none; use
// one client from one thread.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/expected.hpp"

namespace flotilla::runtime::vm {

struct QmpMessage {
  enum class Kind { kGreeting, kReturn, kError, kEvent };
  Kind kind = Kind::kReturn;
  nlohmann::json value;     // greeting: the "QMP" object; return: "return"; event: "data"
  std::string event;        // kEvent: its name ("SHUTDOWN")
  std::string error_class;  // kError: "GenericError", "CommandNotFound", ...
  std::string error_desc;   // kError: QEMU's human text
  nlohmann::json id;        // kReturn/kError: the "id" the command carried, if any
};

// Longest line accepted from QEMU; a longer one is an error rather than unbounded memory.
inline constexpr size_t kMaxQmpLineBytes = 1 << 20;

// Decodes one QMP line (a JSON object). An Error says what was wrong with it.
Expected<QmpMessage> parse_qmp_message(std::string_view line);

class QmpClient {
 public:
  ~QmpClient();
  QmpClient(const QmpClient&) = delete;
  QmpClient& operator=(const QmpClient&) = delete;

  // Connects to `socket_path`, reads the greeting and negotiates capabilities, all within
  // `timeout`. Paths longer than a unix socket address allows are reached through their folder.
  static Expected<std::unique_ptr<QmpClient>> connect(const std::string& socket_path,
                                                      std::chrono::milliseconds timeout);

  // Runs `command` (with `arguments` when not null) and returns its "return" value. A QMP error
  // reply becomes an Error naming the command, the class and QEMU's text.
  Expected<nlohmann::json> execute(const std::string& command,
                                   const nlohmann::json& arguments = nullptr,
                                   std::chrono::milliseconds timeout = std::chrono::seconds(2));

  // Waits for an event named `name` (one already received counts) and returns it.
  Expected<QmpMessage> wait_event(const std::string& name, std::chrono::milliseconds timeout);

  // Events received so far, oldest first.
  const std::vector<QmpMessage>& events() const { return events_; }
  const nlohmann::json& greeting() const { return greeting_; }

 private:
  QmpClient(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}
  Expected<QmpMessage> read_message(std::chrono::steady_clock::time_point deadline);
  Status write_line(const std::string& line, std::chrono::steady_clock::time_point deadline);
  Error failure(const std::string& what, const std::string& why) const;

  int fd_ = -1;
  std::string path_;
  std::string buffer_;  // bytes read but not yet consumed as a line
  nlohmann::json greeting_;
  std::vector<QmpMessage> events_;
  int64_t next_id_ = 1;
};

}  // namespace flotilla::runtime::vm
