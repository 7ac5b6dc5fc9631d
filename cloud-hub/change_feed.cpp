#include "cloud-hub/change_feed.hpp"

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/log.hpp"
#include "common/thread_name.hpp"

namespace flotilla::hub {
namespace {

constexpr char kHeader[] = "flotilla-changes 1\n";
constexpr char kNotifySql[] = "SELECT pg_notify('flotilla_changes', $1)";

char kind_letter(Change::Kind kind) {
  switch (kind) {
    case Change::Kind::kNode:
      return 'n';
    case Change::Kind::kWorkload:
      return 'w';
    case Change::Kind::kDevice:
      return 'd';
    case Change::Kind::kRollout:
      return 'r';
  }
  return '?';
}

}  // namespace

std::vector<std::string> encode_changes(const std::set<Change>& changes, size_t max_bytes) {
  const std::string header = kHeader;
  std::vector<std::string> out;
  std::string payload;
  for (const auto& c : changes) {
    const size_t line = c.name.size() + 3;  // letter, space, name, newline
    if (c.name.empty() || c.name.find('\n') != std::string::npos ||
        header.size() + line > max_bytes) {
      continue;
    }
    if (!payload.empty() && payload.size() + line > max_bytes) {
      out.push_back(std::move(payload));
      payload.clear();
    }
    if (payload.empty()) payload = header;
    payload += kind_letter(c.kind);
    payload += ' ';
    payload += c.name;
    payload += '\n';
  }
  if (!payload.empty()) out.push_back(std::move(payload));
  return out;
}

Expected<std::set<Change>> decode_changes(const std::string& payload) {
  if (!payload.starts_with(kHeader)) {
    return Error("change notification does not start with '" +
                 std::string(kHeader, sizeof(kHeader) - 2) + "'");
  }
  std::set<Change> changes;
  size_t pos = sizeof(kHeader) - 1;
  int line_number = 1;
  while (pos < payload.size()) {
    ++line_number;
    const size_t end = payload.find('\n', pos);
    if (end == std::string::npos) {
      return Error("change notification line " + std::to_string(line_number) + " has no line end");
    }
    const std::string_view line(payload.data() + pos, end - pos);
    pos = end + 1;
    if (line.size() < 3 || line[1] != ' ') {
      return Error("change notification line " + std::to_string(line_number) +
                   " is not '<kind> <name>'");
    }
    Change c{Change::Kind::kNode, std::string(line.substr(2))};
    switch (line[0]) {
      case 'n':
        c.kind = Change::Kind::kNode;
        break;
      case 'w':
        c.kind = Change::Kind::kWorkload;
        break;
      case 'd':
        c.kind = Change::Kind::kDevice;
        break;
      case 'r':
        c.kind = Change::Kind::kRollout;
        break;
      default:
        return Error("change notification line " + std::to_string(line_number) +
                     " has unknown kind '" + std::string(1, line[0]) + "'");
    }
    changes.insert(std::move(c));
  }
  return changes;
}

ChangeFeed::ChangeFeed(ChangeFeedOptions options, ChangeListener on_changes,
                       std::function<void()> on_gap)
    : options_(std::move(options)),
      on_changes_(std::move(on_changes)),
      on_gap_(std::move(on_gap)) {}

Expected<std::unique_ptr<ChangeFeed>> ChangeFeed::start(ChangeFeedOptions options,
                                                        ChangeListener on_changes,
                                                        std::function<void()> on_gap) {
  std::unique_ptr<ChangeFeed> feed(
      new ChangeFeed(std::move(options), std::move(on_changes), std::move(on_gap)));
  feed->wake_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (feed->wake_fd_ < 0) {
    return Error(std::string("Failed to start the change feed: eventfd: ") + std::strerror(errno));
  }
  if (auto st = feed->connect(); !st) {
    return st.error().WithContext("Failed to start the change feed");
  }
  ChangeFeed* self = feed.get();
  feed->thread_ = std::thread([self] { self->run(); });
  return feed;
}

ChangeFeed::~ChangeFeed() {
  stop();
  if (wake_fd_ >= 0) close(wake_fd_);
}

Status ChangeFeed::connect() {
  pg::ConnectOptions c;
  c.connect_timeout_s = options_.connect_timeout_s;
  auto conn = pg::Conn::connect(options_.conninfo, c);
  if (!conn) return conn.error();
  if (auto st = conn->exec("LISTEN flotilla_changes"); !st) return st;
  conn_ = std::move(*conn);
  return Ok();
}

void ChangeFeed::publish(const std::set<Change>& changes) {
  if (changes.empty()) return;
  {
    std::lock_guard lock(mu_);
    if (stopping_) return;
    queued_.insert(changes.begin(), changes.end());
  }
  wake();
}

void ChangeFeed::wake() {
  const uint64_t one = 1;
  (void)!write(wake_fd_, &one, sizeof(one));
}

void ChangeFeed::stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  if (thread_.joinable()) {
    wake();
    thread_.join();
  }
}

ChangeFeedStats ChangeFeed::stats() const {
  return {published_.load(), received_.load(), rejected_.load(), gaps_.load()};
}

bool ChangeFeed::send_queued() {
  std::set<Change> changes;
  {
    std::lock_guard lock(mu_);
    changes.swap(queued_);
  }
  for (const auto& payload : encode_changes(changes)) {
    auto sent = conn_.query(kNotifySql, {payload});
    if (sent) continue;
    if (conn_.broken()) {
      // All of them again once connected: a notification sent twice only makes the others read
      // some views once more.
      std::lock_guard lock(mu_);
      queued_.insert(changes.begin(), changes.end());
      return false;
    }
    log::get("changes")->error("change notification not sent error='{}'", sent.error().message());
  }
  published_ += changes.size();
  return true;
}

bool ChangeFeed::receive() {
  auto notes = conn_.notifications();
  if (!notes) return false;
  const int self = conn_.backend_pid();
  std::set<Change> changes;
  for (const auto& n : *notes) {
    if (n.sender_pid == self) continue;
    auto decoded = decode_changes(n.payload);
    if (!decoded) {
      rejected_ += 1;
      log::get("changes")->warn("change notification dropped sender_pid={} error='{}'",
                                n.sender_pid, decoded.error().message());
      continue;
    }
    changes.merge(*decoded);
  }
  if (!changes.empty()) {
    received_ += changes.size();
    on_changes_(changes);
  }
  return true;
}

void ChangeFeed::run() {
  set_thread_name("hub-changes");
  auto log = log::get("changes");
  bool connected = true;
  bool warned = false;
  for (;;) {
    bool stopping = false;
    {
      std::lock_guard lock(mu_);
      stopping = stopping_;
    }
    if (stopping) break;
    if (!connected) {
      pollfd wait_fd{wake_fd_, POLLIN, 0};
      poll(&wait_fd, 1, static_cast<int>(options_.reconnect_delay.count()));
      uint64_t drained = 0;
      (void)!read(wake_fd_, &drained, sizeof(drained));
      {
        std::lock_guard lock(mu_);
        if (stopping_) break;
      }
      if (auto st = connect(); !st) {
        if (!warned) log->warn("change feed cannot reconnect yet error='{}'", st.error().message());
        warned = true;
        continue;
      }
      connected = true;
      warned = false;
      gaps_ += 1;
      log->info("change feed reconnected: what the other instances changed meanwhile is unknown");
      on_gap_();
      continue;
    }
    if (!send_queued() || !receive()) {
      log->warn("change feed lost its database connection; reconnecting");
      connected = false;
      continue;
    }
    pollfd fds[2] = {{conn_.socket(), POLLIN, 0}, {wake_fd_, POLLIN, 0}};
    poll(fds, 2, 1000);
    if ((fds[1].revents & POLLIN) != 0) {
      uint64_t drained = 0;
      (void)!read(wake_fd_, &drained, sizeof(drained));
    }
    if ((fds[0].revents & (POLLIN | POLLERR | POLLHUP)) != 0 && !receive()) {
      log->warn("change feed lost its database connection; reconnecting");
      connected = false;
    }
  }
  if (connected) send_queued();
}

}  // namespace flotilla::hub
