// flotctl's commands: argument parsing and the verbs apply, get, describe, delete and twin.
//
//   flotctl [--hub URL] apply -f FILE.yaml | get KIND [NAME] [-o json|yaml] [-w] |
//           describe KIND NAME | delete KIND NAME |
//           twin get DEVICE | twin set DEVICE K=V... [--if-version N] (twin.hpp) |
//           token create NAME --role ROLE | audit [--limit N] (auth.hpp)
// Every command takes --token TOKEN and --ca FILE (auth.hpp).
//
// get -w (--watch) follows the changes until interrupted (watch.hpp).
// KIND is nodes|node|no, workloads|workload|wl, events|event|ev, or devices|device|dev. `apply`
// validates the file locally first (file:line errors, nothing sent) and then PUTs it. Exit codes: 0
// ok, 1 failed (bad manifest, hub error, hub unreachable, not supported yet), 2 bad usage.
//
// Thread-safety: run() uses only its arguments and the streams given.
#pragma once

#include <cstdint>
#include <functional>
#include <iosfwd>
#include <string>
#include <vector>

namespace flotilla::flotctl {

struct Context {
  std::string default_hub;    // $FLOTILLA_HUB or http://127.0.0.1:8080
  std::string default_token;  // $FLOTILLA_TOKEN (--token overrides)
  std::string default_ca;     // $FLOTILLA_CA (--ca overrides)
  int64_t now_ms = 0;         // for AGE columns
  // For get --watch: the clock for the AGE of each change (unset: now_ms), whether the user
  // interrupted (Ctrl-C; unset: never), and the pause before reconnecting.
  std::function<int64_t()> clock_ms;
  std::function<bool()> interrupted;
  int64_t retry_ms = 1000;
};

int run(const std::vector<std::string>& args, const Context& ctx, std::ostream& out,
        std::ostream& err);

std::string usage();

}  // namespace flotilla::flotctl
