// An Api on a real httplib::Server bound to a free loopback port, over a HubHarness, with a
// WatchLog fed by the controller's changes as in the hub.
#pragma once

#include <httplib.h>

#include <chrono>
#include <thread>

#include "cloud-hub/api.hpp"
#include "cloud-hub/watch.hpp"
#include "cloud-hub/watch_feeder.hpp"
#include "test/hub/fake_agent.hpp"

namespace flotilla::hub::testing {

struct ApiServer {
  explicit ApiServer(ApiOptions options = {}, WatchLogOptions watch_options = {})
      : watch(watch_options),
        feeder(watch, *harness.controller, harness.metrics),
        api(*harness.controller, harness.metrics, watch, options) {
    // Set after the harness started its controller, but before anything changes.
    harness.controller->set_change_listener(feeder.listener());
    api.install(server);
    port = server.bind_to_any_port("127.0.0.1");
    thread = std::thread([this] { server.listen_after_bind(); });
    while (!server.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ~ApiServer() {
    server.stop();
    watch.close();
    thread.join();
  }
  // Returns once the watch log holds every change made so far (the feeder is asynchronous).
  void settle() { feeder.settle(); }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port); }
  httplib::Client client() const { return httplib::Client("127.0.0.1", port); }

  HubHarness harness;
  WatchLog watch;
  WatchFeeder feeder;
  Api api;
  httplib::Server server;
  int port = 0;
  std::thread thread;
};

}  // namespace flotilla::hub::testing
