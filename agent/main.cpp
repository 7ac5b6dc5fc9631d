// flotilla-agent: wiring only. Flags -> config, store, runtime drivers, MQTT transport, agent
// loop; SIGTERM/SIGINT end the loop and leave workloads running.
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstring>
#include <iostream>

#include "agent/agent.hpp"
#include "agent/config_flags.hpp"
#include "agent/node_drivers.hpp"
#include "agent/node_info.hpp"
#include "agent/status_report.hpp"
#include "common/fs.hpp"
#include "common/log.hpp"

namespace {

std::atomic<bool> g_stop{false};

void on_signal(int) { g_stop.store(true); }

int usage_error(const std::string& message, const flotilla::Flags& flags) {
  std::cerr << "flotilla-agent: " << message << "\n" << flags.usage();
  return 2;
}

int run_status(int argc, const char* const* argv) {
  flotilla::Flags flags = flotilla::agent::make_status_flags();
  if (auto st = flags.parse(argc, argv); !st) return usage_error(st.error().message(), flags);
  if (flags.help_requested()) {
    std::cout << flags.usage();
    return 0;
  }
  if (auto st = flotilla::agent::print_status(flags.get("data"), std::cout); !st) {
    std::cerr << "flotilla-agent: " << st.error().message() << "\n";
    return 1;
  }
  return 0;
}

int run_agent(int argc, const char* const* argv) {
  using namespace flotilla;
  Flags flags = agent::make_agent_flags();
  if (auto st = flags.parse(argc, argv); !st) return usage_error(st.error().message(), flags);
  if (flags.help_requested()) {
    std::cout << flags.usage();
    return 0;
  }
  auto config = agent::config_from_flags(flags);
  if (!config) return usage_error(config.error().message(), flags);
  if (auto st = log::init(flags.get("log-level")); !st) {
    return usage_error("invalid --log-level: " + st.error().message(), flags);
  }
  auto fatal = [](const Error& e) {
    std::cerr << "flotilla-agent: " << e.message() << "\n";
    return 1;
  };
  if (auto st = fs::make_dirs(config->data_dir); !st) return fatal(st.error());
  auto store = agent::Store::open(agent::store_path(config->data_dir), config->node);
  if (!store) return fatal(store.error());
  const std::string boot_id = agent::make_boot_id();
  if (auto st = (*store)->set_boot_id(boot_id); !st) return fatal(st.error());

  auto drivers = agent::NodeDrivers::create(config->data_dir, config->drivers);
  if (!drivers) return fatal(drivers.error());
  config->reconciler.runtimes = (*drivers)->runtimes();
  if (std::string accel = (*drivers)->vm_accel(); !accel.empty()) {
    config->sync.labels.emplace("flotilla.io/vm-accel", accel);  // a user's label wins
  }
  runtime::Driver& driver = (*drivers)->driver();
  SystemClock clock;
  auto transport = sync::make_mqtt_transport(agent::make_transport_options(*config, boot_id));
  std::unique_ptr<sync::Transport> devices;
  if (!config->device_mqtt_uri.empty()) {
    devices = sync::make_mqtt_transport(agent::make_device_transport_options(*config));
  }
  agent::Agent agent(*config, **store, driver, *transport, clock, boot_id, devices.get());

  std::signal(SIGTERM, on_signal);
  std::signal(SIGINT, on_signal);
  if (auto st = agent.start(); !st) return fatal(st.error());
  agent.run(g_stop);
  if (const std::string next = agent.reexec_path(); !next.empty() && !g_stop.load()) {
    // An OTA update of the agent switched (or rolled back) its binary: the updater saved its
    // state; the new process finds it, counts the start and runs the health check.
    agent.prepare_reexec();
    spdlog::shutdown();
    flotilla::fs::set_cloexec_from(3);
    ::execv(next.c_str(), const_cast<char* const*>(argv));
    std::cerr << "flotilla-agent: Failed to re-execute '" << next << "': " << std::strerror(errno)
              << "\n";
    return 1;
  }
  agent.shutdown();
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc >= 2 && std::string(argv[1]) == "status") return run_status(argc - 1, argv + 1);
  return run_agent(argc, argv);
}
