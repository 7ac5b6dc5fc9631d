#include "runtime/vm/qmp_client.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace flotilla::runtime::vm {
namespace {

using SteadyClock = std::chrono::steady_clock;
using nlohmann::json;

std::string errno_text() { return std::strerror(errno); }

int millis_left(SteadyClock::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - SteadyClock::now());
  return static_cast<int>(std::max<int64_t>(left.count(), 0));
}

// Waits until `fd` is ready for `events` or the deadline passes.
Status wait_fd(int fd, short events, SteadyClock::time_point deadline) {
  for (;;) {
    pollfd p{fd, events, 0};
    int n = ::poll(&p, 1, millis_left(deadline));
    if (n > 0) return Ok();
    if (n == 0) return Error("timed out");
    if (errno != EINTR) return Error(errno_text());
  }
}

// A unix socket address for `path`; a path too long for sun_path is reached through
// /proc/self/fd/<folder fd>/<name>, with the folder held open in `*dir_fd` until connected.
Expected<sockaddr_un> socket_address(const std::string& path, int* dir_fd) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::string target = path;
  if (path.size() >= sizeof(addr.sun_path)) {
    size_t slash = path.rfind('/');
    if (slash == std::string::npos) return Error("socket path is too long");
    std::string dir = slash == 0 ? "/" : path.substr(0, slash);
    *dir_fd = ::open(dir.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (*dir_fd < 0) return Error("Failed to open folder '" + dir + "': " + errno_text());
    target = "/proc/self/fd/" + std::to_string(*dir_fd) + path.substr(slash);
    if (target.size() >= sizeof(addr.sun_path)) return Error("socket name is too long");
  }
  std::memcpy(addr.sun_path, target.c_str(), target.size() + 1);
  return addr;
}

}  // namespace

Expected<QmpMessage> parse_qmp_message(std::string_view line) {
  if (line.size() > kMaxQmpLineBytes) return Error("QMP message is too long");
  json doc = json::parse(line.begin(), line.end(), nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) return Error("QMP message is not valid JSON");
  if (!doc.is_object()) return Error("QMP message is not a JSON object");
  QmpMessage msg;
  if (auto id = doc.find("id"); id != doc.end()) msg.id = *id;
  if (auto qmp = doc.find("QMP"); qmp != doc.end()) {
    if (!qmp->is_object()) return Error("QMP greeting is not an object");
    msg.kind = QmpMessage::Kind::kGreeting;
    msg.value = *qmp;
    return msg;
  }
  if (auto ret = doc.find("return"); ret != doc.end()) {
    msg.kind = QmpMessage::Kind::kReturn;
    msg.value = *ret;
    return msg;
  }
  if (auto err = doc.find("error"); err != doc.end()) {
    if (!err->is_object()) return Error("QMP error reply is not an object");
    msg.kind = QmpMessage::Kind::kError;
    auto cls = err->find("class");
    auto desc = err->find("desc");
    msg.error_class = cls != err->end() && cls->is_string() ? cls->get<std::string>() : "unknown";
    msg.error_desc = desc != err->end() && desc->is_string() ? desc->get<std::string>() : "";
    return msg;
  }
  if (auto event = doc.find("event"); event != doc.end()) {
    if (!event->is_string()) return Error("QMP event name is not a string");
    msg.kind = QmpMessage::Kind::kEvent;
    msg.event = event->get<std::string>();
    if (auto data = doc.find("data"); data != doc.end()) msg.value = *data;
    return msg;
  }
  return Error("QMP message is neither a greeting, a reply nor an event");
}

QmpClient::~QmpClient() {
  if (fd_ >= 0) ::close(fd_);
}

Error QmpClient::failure(const std::string& what, const std::string& why) const {
  return Error("Failed to " + what + " over QMP socket '" + path_ + "': " + why);
}

Expected<std::unique_ptr<QmpClient>> QmpClient::connect(const std::string& socket_path,
                                                        std::chrono::milliseconds timeout) {
  const auto deadline = SteadyClock::now() + timeout;
  auto fail = [&](const std::string& why) {
    return Error("Failed to connect to QMP socket '" + socket_path + "': " + why);
  };
  int dir_fd = -1;
  auto addr = socket_address(socket_path, &dir_fd);
  if (!addr) return fail(addr.error().message());
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) {
    if (dir_fd >= 0) ::close(dir_fd);
    return fail("Failed to create socket: " + errno_text());
  }
  std::unique_ptr<QmpClient> client(new QmpClient(fd, socket_path));
  int rc = ::connect(fd, reinterpret_cast<const sockaddr*>(&*addr), sizeof(sockaddr_un));
  int err = errno;
  if (dir_fd >= 0) ::close(dir_fd);
  if (rc != 0 && err != EINPROGRESS && err != EAGAIN) return fail(std::strerror(err));
  if (rc != 0) {
    if (Status s = wait_fd(fd, POLLOUT, deadline); !s) return fail(s.error().message());
    int so_error = 0;
    socklen_t len = sizeof so_error;
    ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &so_error, &len);
    if (so_error != 0) return fail(std::strerror(so_error));
  }
  auto greeting = client->read_message(deadline);
  if (!greeting) return greeting.error();
  if (greeting->kind != QmpMessage::Kind::kGreeting) return fail("QEMU sent no greeting");
  client->greeting_ = greeting->value;
  auto caps = client->execute("qmp_capabilities", nullptr,
                              std::chrono::milliseconds(millis_left(deadline)));
  if (!caps) return caps.error();
  return client;
}

Status QmpClient::write_line(const std::string& line, SteadyClock::time_point deadline) {
  size_t off = 0;
  while (off < line.size()) {
    ssize_t n = ::send(fd_, line.data() + off, line.size() - off, MSG_NOSIGNAL);
    if (n > 0) {
      off += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      if (Status s = wait_fd(fd_, POLLOUT, deadline); !s) return s;
      continue;
    }
    return Error(n == 0 ? "connection closed" : errno_text());
  }
  return Ok();
}

Expected<QmpMessage> QmpClient::read_message(SteadyClock::time_point deadline) {
  for (;;) {
    size_t newline = buffer_.find('\n');
    if (newline != std::string::npos) {
      std::string line = buffer_.substr(0, newline);
      buffer_.erase(0, newline + 1);
      if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
      auto msg = parse_qmp_message(line);
      if (!msg) return failure("read", msg.error().message());
      return msg;
    }
    if (buffer_.size() > kMaxQmpLineBytes) return failure("read", "QMP message is too long");
    if (Status s = wait_fd(fd_, POLLIN, deadline); !s) {
      return failure("read", s.error().message());
    }
    char chunk[8192];
    ssize_t n = ::recv(fd_, chunk, sizeof chunk, 0);
    if (n < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)) continue;
    if (n < 0) return failure("read", errno_text());
    if (n == 0) return failure("read", "QEMU closed the connection");
    buffer_.append(chunk, static_cast<size_t>(n));
  }
}

Expected<json> QmpClient::execute(const std::string& command, const json& arguments,
                                  std::chrono::milliseconds timeout) {
  const auto deadline = SteadyClock::now() + timeout;
  const int64_t id = next_id_++;
  json request = {{"execute", command}, {"id", id}};
  if (!arguments.is_null()) request["arguments"] = arguments;
  if (Status s = write_line(request.dump() + "\n", deadline); !s) {
    return failure("send '" + command + "'", s.error().message());
  }
  for (;;) {
    auto msg = read_message(deadline);
    if (!msg) return Error(msg.error().message() + " (waiting for the reply to '" + command + "')");
    if (msg->kind == QmpMessage::Kind::kEvent) {
      events_.push_back(std::move(*msg));
      continue;
    }
    if (msg->kind == QmpMessage::Kind::kGreeting) continue;
    if (msg->id != json(id)) continue;  // a late reply to an earlier, timed-out command
    if (msg->kind == QmpMessage::Kind::kError) {
      return failure("run '" + command + "'", msg->error_class + ": " + msg->error_desc);
    }
    return msg->value;
  }
}

Expected<QmpMessage> QmpClient::wait_event(const std::string& name,
                                           std::chrono::milliseconds timeout) {
  for (const QmpMessage& e : events_) {
    if (e.event == name) return e;
  }
  const auto deadline = SteadyClock::now() + timeout;
  for (;;) {
    auto msg = read_message(deadline);
    if (!msg) return Error(msg.error().message() + " (waiting for event '" + name + "')");
    if (msg->kind != QmpMessage::Kind::kEvent) continue;
    events_.push_back(*msg);
    if (msg->event == name) return *msg;
  }
}

}  // namespace flotilla::runtime::vm
