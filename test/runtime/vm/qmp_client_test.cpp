// QmpClient against a scripted fake QEMU on a unix socket, and parse_qmp_message on good and bad
// input.
#include "runtime/vm/qmp_client.hpp"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <functional>
#include <string>
#include <thread>

#include <gtest/gtest.h>

#include "common/fs.hpp"
#include "test/support/temp_dir.hpp"

namespace flotilla::runtime::vm {
namespace {

using namespace std::chrono_literals;
using flotilla::testing::TempDir;

constexpr const char* kGreeting =
    R"({"QMP": {"version": {"qemu": {"micro": 0, "minor": 2, "major": 7}}, "capabilities": []}})";

std::string read_line(int fd) {
  std::string line;
  char c;
  while (::read(fd, &c, 1) == 1 && c != '\n') line += c;
  return line;
}

void send_line(int fd, const std::string& line) {
  std::string out = line + "\n";
  (void)!::write(fd, out.data(), out.size());
}

// The "id" of a request line, as JSON text.
std::string id_of(const std::string& request) {
  return nlohmann::json::parse(request).at("id").dump();
}

// One connection served by `script` on a listening socket at `path`.
class FakeQemu {
 public:
  FakeQemu(const std::string& path, std::function<void(int)> script) {
    listen_fd_ = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", path.c_str());
    bound_ = ::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
             ::listen(listen_fd_, 1) == 0;
    thread_ = std::thread([this, script] {
      int fd = ::accept(listen_fd_, nullptr, nullptr);
      if (fd < 0) return;
      script(fd);
      ::close(fd);
    });
  }
  ~FakeQemu() {
    ::shutdown(listen_fd_, SHUT_RDWR);
    ::close(listen_fd_);
    thread_.join();
  }
  bool bound() const { return bound_; }

 private:
  int listen_fd_ = -1;
  bool bound_ = false;
  std::thread thread_;
};

// Greets and accepts qmp_capabilities, then hands over to `then`.
std::function<void(int)> negotiated(std::function<void(int)> then) {
  return [then](int fd) {
    send_line(fd, kGreeting);
    std::string caps = read_line(fd);
    if (caps.find("qmp_capabilities") == std::string::npos) return;
    send_line(fd, R"({"return": {}, "id": )" + id_of(caps) + "}");
    then(fd);
  };
}

TEST(QmpClientTest, NegotiatesRunsCommandsAndKeepsEventsThatArriveInBetween) {
  TempDir tmp;
  const std::string path = tmp / "qmp.sock";
  FakeQemu qemu(
      path, negotiated([](int fd) {
        std::string request = read_line(fd);
        send_line(fd, R"({"event": "POWERDOWN", "timestamp": {"seconds": 1, "microseconds": 2}})");
        send_line(fd, R"({"return": {"status": "paused", "running": false}, "id": )" +
                          id_of(request) + "}");
        send_line(fd,
                  R"({"event": "SHUTDOWN", "data": {"guest": true, "reason": "guest-shutdown"}})");
        read_line(fd);  // until the client hangs up
      }));
  ASSERT_TRUE(qemu.bound());
  auto client = QmpClient::connect(path, 2s);
  ASSERT_TRUE(client) << client.error().message();
  EXPECT_EQ((*client)->greeting()["version"]["qemu"]["major"], 7);
  auto status = (*client)->execute("query-status");
  ASSERT_TRUE(status) << status.error().message();
  EXPECT_EQ((*status)["status"], "paused");
  ASSERT_EQ((*client)->events().size(), 1u);
  EXPECT_EQ((*client)->events()[0].event, "POWERDOWN");
  auto shutdown = (*client)->wait_event("SHUTDOWN", 2s);
  ASSERT_TRUE(shutdown) << shutdown.error().message();
  EXPECT_EQ(shutdown->value["reason"], "guest-shutdown");
}

TEST(QmpClientTest, AnErrorReplyNamesTheCommandAndQemusReason) {
  TempDir tmp;
  const std::string path = tmp / "qmp.sock";
  FakeQemu qemu(
      path, negotiated([](int fd) {
        std::string request = read_line(fd);
        send_line(fd, R"({"error": {"class": "CommandNotFound", "desc": "The command nope has not )"
                      R"(been found"}, "id": )" +
                          id_of(request) + "}");
        read_line(fd);
      }));
  auto client = QmpClient::connect(path, 2s);
  ASSERT_TRUE(client) << client.error().message();
  auto reply = (*client)->execute("nope");
  ASSERT_FALSE(reply);
  EXPECT_NE(reply.error().message().find("Failed to run 'nope' over QMP socket"), std::string::npos)
      << reply.error().message();
  EXPECT_NE(reply.error().message().find("CommandNotFound: The command nope has not been found"),
            std::string::npos);
}

TEST(QmpClientTest, ASilentQemuTimesOutInsteadOfHanging) {
  TempDir tmp;
  const std::string path = tmp / "qmp.sock";
  FakeQemu qemu(path, [](int fd) { read_line(fd); });  // never greets
  auto start = std::chrono::steady_clock::now();
  auto client = QmpClient::connect(path, 300ms);
  ASSERT_FALSE(client);
  EXPECT_NE(client.error().message().find("timed out"), std::string::npos)
      << client.error().message();
  EXPECT_LT(std::chrono::steady_clock::now() - start, 5s);
}

TEST(QmpClientTest, GarbageFromQemuIsAnErrorNotACrash) {
  TempDir tmp;
  const std::string path = tmp / "qmp.sock";
  FakeQemu qemu(path, [](int fd) {
    send_line(fd, "{\"QMP\": {not json");
    read_line(fd);
  });
  auto client = QmpClient::connect(path, 2s);
  ASSERT_FALSE(client);
  EXPECT_NE(client.error().message().find("not valid JSON"), std::string::npos)
      << client.error().message();
}

TEST(QmpClientTest, NoSocketIsAClearError) {
  TempDir tmp;
  auto client = QmpClient::connect(tmp / "absent.sock", 1s);
  ASSERT_FALSE(client);
  EXPECT_NE(client.error().message().find("Failed to connect to QMP socket"), std::string::npos);
  EXPECT_NE(client.error().message().find("No such file or directory"), std::string::npos);
}

TEST(QmpClientTest, ReachesASocketWhosePathIsTooLongForSunPath) {
  TempDir tmp;
  std::string dir = tmp.path() + "/" + std::string(60, 'd') + "/" + std::string(60, 'e');
  ASSERT_TRUE(fs::make_dirs(dir));
  ASSERT_EQ(::chdir(dir.c_str()), 0);  // bind it through a relative path, as QEMU does
  FakeQemu qemu("qmp.sock", negotiated([](int fd) { read_line(fd); }));
  ASSERT_EQ(::chdir("/"), 0);
  ASSERT_TRUE(qemu.bound());
  const std::string path = dir + "/qmp.sock";
  ASSERT_GT(path.size(), sizeof(sockaddr_un::sun_path));
  auto client = QmpClient::connect(path, 2s);
  EXPECT_TRUE(client) << client.error().message();
}

TEST(ParseQmpMessageTest, DecodesEachKind) {
  auto greeting = parse_qmp_message(kGreeting);
  ASSERT_TRUE(greeting);
  EXPECT_EQ(greeting->kind, QmpMessage::Kind::kGreeting);
  auto ret = parse_qmp_message(R"({"return": {}, "id": 7})");
  ASSERT_TRUE(ret);
  EXPECT_EQ(ret->kind, QmpMessage::Kind::kReturn);
  EXPECT_EQ(ret->id, 7);
  auto err = parse_qmp_message(R"({"error": {"class": "GenericError", "desc": "no"}})");
  ASSERT_TRUE(err);
  EXPECT_EQ(err->kind, QmpMessage::Kind::kError);
  EXPECT_EQ(err->error_class, "GenericError");
  EXPECT_EQ(err->error_desc, "no");
  auto event = parse_qmp_message(R"({"event": "STOP", "timestamp": {}})");
  ASSERT_TRUE(event);
  EXPECT_EQ(event->kind, QmpMessage::Kind::kEvent);
  EXPECT_EQ(event->event, "STOP");
}

TEST(ParseQmpMessageTest, BadInputGivesAReason) {
  const std::pair<std::string, std::string> cases[] = {
      {"", "not valid JSON"},
      {"[1,2]", "not a JSON object"},
      {"42", "not a JSON object"},
      {R"({"QMP": 3})", "greeting is not an object"},
      {R"({"error": "x"})", "error reply is not an object"},
      {R"({"event": 5})", "event name is not a string"},
      {R"({"hello": 1})", "neither a greeting"},
      {std::string(kMaxQmpLineBytes + 1, ' '), "too long"},
      {std::string("{\"a\":\"\xff\xfe\"}"), "not valid JSON"},
      {std::string(100000, '['), "not valid JSON"},
  };
  for (const auto& [input, expected] : cases) {
    auto msg = parse_qmp_message(input);
    ASSERT_FALSE(msg) << input.substr(0, 40);
    EXPECT_NE(msg.error().message().find(expected), std::string::npos)
        << input.substr(0, 40) << ": " << msg.error().message();
  }
}

}  // namespace
}  // namespace flotilla::runtime::vm
