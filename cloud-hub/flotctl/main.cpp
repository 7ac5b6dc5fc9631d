// flotctl: the Flotilla command line. Wires libcurl, the environment, the clock and Ctrl-C to
// run().
#include <curl/curl.h>

#include <chrono>
#include <csignal>
#include <cstdlib>
#include <iostream>

#include "cloud-hub/flotctl/commands.hpp"

namespace {

volatile std::sig_atomic_t g_interrupted = 0;

void on_interrupt(int) { g_interrupted = 1; }

int64_t wall_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

int main(int argc, char** argv) {
  curl_global_init(CURL_GLOBAL_DEFAULT);
  flotilla::flotctl::Context ctx;
  const char* hub = std::getenv("FLOTILLA_HUB");
  ctx.default_hub = hub != nullptr && *hub != '\0' ? hub : "http://127.0.0.1:8080";
  for (auto [field, name] : {std::pair{&ctx.default_token, "FLOTILLA_TOKEN"},
                             std::pair{&ctx.default_ca, "FLOTILLA_CA"}}) {
    const char* value = std::getenv(name);
    if (value != nullptr) *field = value;
  }
  ctx.now_ms = wall_ms();
  ctx.clock_ms = wall_ms;
  std::vector<std::string> args(argv + 1, argv + argc);
  // get --watch runs until Ctrl-C (or SIGTERM) and then ends cleanly; other commands keep the
  // default: the signal ends them at once.
  for (const auto& a : args) {
    if (a == "-w" || a == "--watch") {
      std::signal(SIGINT, on_interrupt);
      std::signal(SIGTERM, on_interrupt);
    }
  }
  ctx.interrupted = [] { return g_interrupted != 0; };
  int rc = flotilla::flotctl::run(args, ctx, std::cout, std::cerr);
  curl_global_cleanup();
  return rc;
}
