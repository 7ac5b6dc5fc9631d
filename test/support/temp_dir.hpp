// Test helpers: a temporary folder removed at scope exit, and a free loopback TCP port.
#pragma once

#include <string>

namespace flotilla::testing {

class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// A TCP port on 127.0.0.1 that was free a moment ago.
int free_port();

}  // namespace flotilla::testing
