#include "test/support/postgres.hpp"

#include <pwd.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <stdexcept>

#include "cloud-hub/pg.hpp"
#include "test/support/peers.hpp"
#include "test/support/temp_dir.hpp"

namespace flotilla::testing {
namespace {

// $FLOTILLA_PG_BINDIR, else the newest /usr/lib/postgresql/<major>/bin holding a server.
std::string server_bin_dir() {
  if (const char* dir = std::getenv("FLOTILLA_PG_BINDIR"); dir != nullptr && *dir != '\0') {
    return dir;
  }
  std::string best;
  int best_major = -1;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator("/usr/lib/postgresql", ec)) {
    const std::string bin = entry.path().string() + "/bin";
    const int major = std::atoi(entry.path().filename().c_str());
    if (major > best_major && ::access((bin + "/postgres").c_str(), X_OK) == 0 &&
        ::access((bin + "/initdb").c_str(), X_OK) == 0) {
      best = bin;
      best_major = major;
    }
  }
  return best;
}

std::string tail(const std::string& text, size_t n = 1500) {
  return text.size() > n ? "..." + text.substr(text.size() - n) : text;
}

}  // namespace

std::string Postgres::unavailable_reason() {
  if (server_bin_dir().empty()) {
    return "no PostgreSQL server in /usr/lib/postgresql/*/bin (run scripts/setup, or set "
           "FLOTILLA_PG_BINDIR)";
  }
  if (::geteuid() == 0 && find_executable("setpriv").empty()) {
    return "running as root and setpriv (util-linux) is missing: PostgreSQL refuses to run as root";
  }
  return "";
}

Postgres::Postgres() : bin_dir_(server_bin_dir()), port_(free_port()) {
  std::string tmpl = std::filesystem::temp_directory_path().string() + "/flotilla-pg-XXXXXX";
  if (::mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed for " + tmpl);
  dir_ = tmpl;
  if (::geteuid() == 0) {
    const passwd* pw = ::getpwnam("postgres");
    if (pw == nullptr) pw = ::getpwnam("nobody");
    if (pw == nullptr) throw std::runtime_error("neither user 'postgres' nor 'nobody' exists");
    uid_ = pw->pw_uid;
    gid_ = pw->pw_gid;
    drop_root_ = true;
    // mkdtemp made it 0700: the server's user must own it (initdb insists on that for data/).
    if (::chown(dir_.c_str(), uid_, gid_) != 0) {
      throw std::runtime_error("chown of " + dir_ + " failed");
    }
  }
}

Postgres::~Postgres() {
  stop();
  if (std::getenv("FLOTILLA_KEEP_TEST_DIRS") != nullptr) return;
  std::error_code ec;
  std::filesystem::remove_all(dir_, ec);
}

std::vector<std::string> Postgres::as_server_user(std::vector<std::string> argv) const {
  if (!drop_root_) return argv;
  // setpriv and env both exec in place: the pid stays the server's. env -C: the server's user
  // may not be allowed into the test's working directory.
  std::vector<std::string> out = {find_executable("setpriv"),
                                  "--reuid=" + std::to_string(uid_),
                                  "--regid=" + std::to_string(gid_),
                                  "--clear-groups",
                                  "--",
                                  find_executable("env"),
                                  "-C",
                                  dir_};
  out.insert(out.end(), argv.begin(), argv.end());
  return out;
}

Status Postgres::start() {
  if (auto why = unavailable_reason(); !why.empty())
    return Error("Failed to start PostgreSQL: " + why);
  const std::string data = dir_ + "/data";
  if (!initialised_) {
    auto r = run_command(
        as_server_user({bin_dir_ + "/initdb", "-D", data, "-U", "flotilla", "--auth=trust", "-E",
                        "UTF8", "--no-sync", "--no-instructions"}),
        std::chrono::seconds(60));
    if (r.exit_code != 0) {
      return Error("Failed to initdb '" + data + "' (exit " + std::to_string(r.exit_code) +
                   "): " + tail(r.out + r.err));
    }
    initialised_ = true;
  }
  // free_port() only says the port was free a moment ago: a first start (never a restart, which
  // must keep its port) that lost the race tries another.
  const int attempts = started_once_ ? 1 : 3;
  for (int attempt = 1;; ++attempt) {
    const size_t log_start = proc_.log().size();
    proc_.start(
        as_server_user({bin_dir_ + "/postgres", "-D", data, "-k", dir_, "-p", std::to_string(port_),
                        "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c",
                        "synchronous_commit=off", "-c", "full_page_writes=off"}),
        dir_ + "/postgres.log");
    pg::ConnectOptions quick;
    quick.connect_timeout_s = 2;
    const bool up = eventually(
        [&] { return !proc_.running() || pg::Conn::connect(conninfo("postgres"), quick).ok(); },
        std::chrono::seconds(30));
    if (up && proc_.running()) break;
    const std::string log = proc_.log().substr(std::min(log_start, proc_.log().size()));
    if (attempt < attempts && !proc_.running() && log.find("could not bind") != std::string::npos) {
      port_ = free_port();
      continue;
    }
    stop();
    return Error("Failed to start PostgreSQL on 127.0.0.1:" + std::to_string(port_) + ": " +
                 tail(log));
  }
  started_once_ = true;
  return Ok();
}

void Postgres::stop() {
  if (!proc_.running()) return;
  proc_.signal(SIGINT);
  if (!proc_.wait_exit(std::chrono::seconds(15))) kill9();
}

void Postgres::kill9() {
  if (!proc_.running()) return;
  // The whole group: backends left behind would keep the shared memory a restart needs.
  ::kill(-proc_.pid(), SIGKILL);
  proc_.kill9();
}

Expected<std::string> Postgres::create_database(const std::string& name) {
  const bool plain = !name.empty() && std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
  });
  if (!plain) return Error("Failed to create database '" + name + "': use [a-z0-9_] only");
  auto conn = pg::Conn::connect(conninfo("postgres"));
  if (!conn) return conn.error();
  if (auto st = conn->exec("CREATE DATABASE " + name); !st) return st.error();
  return conninfo(name);
}

std::string Postgres::conninfo(const std::string& db) const {
  return "host=127.0.0.1 port=" + std::to_string(port_) + " user=flotilla dbname=" + db;
}

}  // namespace flotilla::testing
