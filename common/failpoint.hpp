// Fail points: named spots in product code where a fault test can make a real process fail.
//
// Some crash windows are too narrow to hit from outside: an agent killed "after it persisted a
// desired state but before it acked it" cannot be produced reliably by a test sending SIGKILL at
// a guessed moment. The fault tests (test/integration/) set FLOTILLA_FAILPOINT=<name> in one
// process's environment to act at exactly that spot. Production never sets the variable; the
// check is a comparison against a string read once.
//
// Thread-safety: safe from any thread (the variable is read once, under C++ static-init rules).
#pragma once

#include <cstdlib>
#include <string>
#include <string_view>

namespace flotilla {

// True when the environment variable FLOTILLA_FAILPOINT equals `name`.
inline bool failpoint(std::string_view name) {
  static const std::string active = [] {
    const char* value = std::getenv("FLOTILLA_FAILPOINT");
    return std::string(value != nullptr ? value : "");
  }();
  return !active.empty() && active == name;
}

}  // namespace flotilla
