// A real PostgreSQL server for tests: initdb into a fresh temporary folder, the server on
// 127.0.0.1 at a free port (its Unix socket in the same folder, never /var/run), trust
// authentication for the superuser "flotilla", fsync off (tests need no durability across an OS
// crash). stop() shuts it down fast; the destructor also removes the folder.
//
// PostgreSQL refuses to run as root. When the test runs as root, initdb and the server run as
// the unprivileged user "postgres" (created by Debian's postgresql package; "nobody" if absent)
// through setpriv, which execs in place so signals reach the server itself; the folder is made
// theirs. The binaries come from $FLOTILLA_PG_BINDIR, else the newest /usr/lib/postgresql/*/bin.
//
// Thread-safety: none; one test thread drives it.
#pragma once

#include <string>

#include "common/expected.hpp"
#include "test/support/process.hpp"

namespace flotilla::testing {

class Postgres {
 public:
  Postgres();
  ~Postgres();
  Postgres(const Postgres&) = delete;
  Postgres& operator=(const Postgres&) = delete;

  // Why no server can run here (binaries or setpriv missing), empty when one can.
  static std::string unavailable_reason();

  // initdb (first time only), then the server; Error with the end of its log if it did not come
  // up within 30 s. The first start moves to another free port if its port was taken meanwhile;
  // a restart keeps the port.
  Status start();
  void stop();   // SIGINT: fast shutdown (open sessions are cut)
  void kill9();  // a crash; start() again runs crash recovery
  bool running() { return proc_.running(); }

  // CREATE DATABASE `name` and its connection string.
  Expected<std::string> create_database(const std::string& name);
  // key=value connection string for database `db` (libpq syntax).
  std::string conninfo(const std::string& db) const;
  int port() const { return port_; }
  std::string log() const { return proc_.log(); }

 private:
  std::vector<std::string> as_server_user(std::vector<std::string> argv) const;

  std::string dir_;  // owned by the server's user; data/ and the socket live here
  std::string bin_dir_;
  int port_ = 0;
  uid_t uid_ = 0;
  gid_t gid_ = 0;
  bool drop_root_ = false;
  bool initialised_ = false;
  bool started_once_ = false;
  ChildProcess proc_;
};

}  // namespace flotilla::testing
