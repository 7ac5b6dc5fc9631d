#include "test/support/peers.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

namespace flotilla::testing {

std::string find_executable(const std::string& name) {
  std::string path = std::getenv("PATH") ? std::getenv("PATH") : "";
  path += ":/usr/sbin:/sbin:/usr/bin";
  std::stringstream ss(path);
  std::string dir;
  while (std::getline(ss, dir, ':')) {
    std::string candidate = dir + "/" + name;
    if (!dir.empty() && ::access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return "";
}

bool wait_for_port(int port, std::chrono::milliseconds timeout) {
  return eventually(
      [port] {
        int fd = ::socket(AF_INET, SOCK_STREAM, 0);
        sockaddr_in addr{};
        addr.sin_family = AF_INET;
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        addr.sin_port = htons(static_cast<uint16_t>(port));
        bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
        ::close(fd);
        return ok;
      },
      timeout);
}

Mosquitto::Mosquitto(std::string dir, int port, std::string extra)
    : dir_(std::move(dir)), port_(port), extra_(std::move(extra)) {}

bool Mosquitto::start() {
  std::string conf = dir_ + "/mosquitto.conf";
  std::ofstream out(conf);
  out << "listener " << port_ << " 127.0.0.1\n"
      << "allow_anonymous true\n"
      << "persistence false\n"
      << "max_queued_messages 100000\n"
      << "log_dest stderr\n"
      << (std::getenv("FLOTILLA_MOSQUITTO_DEBUG") ? "log_type all\n" : "") << extra_;
  out.close();
  std::string bin = find_executable("mosquitto");
  if (bin.empty()) return false;
  proc_.start({bin, "-c", conf}, dir_ + "/mosquitto.log");
  return wait_for_port(port_, std::chrono::seconds(10));
}

void Mosquitto::stop() { proc_.stop(std::chrono::seconds(3)); }

void Mosquitto::kill9() { proc_.kill9(); }

bool Mosquitto::restart(bool crash) {
  if (crash) {
    kill9();
  } else {
    stop();
  }
  return start();
}

}  // namespace flotilla::testing
