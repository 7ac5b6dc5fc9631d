// flotctl: the Flotilla command line. Wires libcurl, the environment and the clock to run().
#include <curl/curl.h>

#include <chrono>
#include <cstdlib>
#include <iostream>

#include "cloud-hub/flotctl/commands.hpp"

int main(int argc, char** argv) {
  curl_global_init(CURL_GLOBAL_DEFAULT);
  flotilla::flotctl::Context ctx;
  const char* hub = std::getenv("FLOTILLA_HUB");
  ctx.default_hub = hub != nullptr && *hub != '\0' ? hub : "http://127.0.0.1:8080";
  ctx.now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                   std::chrono::system_clock::now().time_since_epoch())
                   .count();
  std::vector<std::string> args(argv + 1, argv + argc);
  int rc = flotilla::flotctl::run(args, ctx, std::cout, std::cerr);
  curl_global_cleanup();
  return rc;
}
