#include "test/integration/tls_broker.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>
#include <future>
#include <memory>
#include <regex>

#include "test/support/peers.hpp"
#include "test/support/temp_dir.hpp"

namespace flotilla::testing {

using namespace std::chrono_literals;

void pki(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {FLOTCTL_BIN, "pki"};
  argv.insert(argv.end(), args.begin(), args.end());
  RunResult r = run_command(argv);
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
}

void make_pki(const std::string& dir) {
  pki({"init", "--dir", dir});
  pki({"issue", "--dir", dir, "--name", "broker", "--kind", "server", "--ip", "127.0.0.1", "--dns",
       "localhost"});
  pki({"issue", "--dir", dir, "--name", "hub", "--kind", "hub"});
  pki({"issue", "--dir", dir, "--name", "node-a", "--kind", "node"});
  pki({"issue", "--dir", dir, "--name", "node-b", "--kind", "node"});
}

std::string shipped_config(const std::string& pki_dir, int port) {
  std::string conf = slurp(std::string(FLOTILLA_SOURCE_DIR) + "/deploy/mosquitto/flotilla.conf");
  EXPECT_NE(conf.find("listener 8883"), std::string::npos) << conf;
  conf = std::regex_replace(conf, std::regex("/etc/flotilla/pki/"), pki_dir + "/");
  conf = std::regex_replace(conf, std::regex("/etc/flotilla/mosquitto/"),
                            std::string(FLOTILLA_SOURCE_DIR) + "/deploy/mosquitto/");
  conf = std::regex_replace(conf, std::regex("listener 8883"),
                            "listener " + std::to_string(port) + " 127.0.0.1");
  conf += "log_dest stderr\n";
  // Run as root, mosquitto drops to the `mosquitto` user, who cannot read the test's 0700
  // temp folder or the 0600 broker key; a packaged broker has its key owned by that user.
  if (::geteuid() == 0) conf += "user root\n";
  return conf;
}

TlsMosquitto::TlsMosquitto(std::string dir, std::string pki_dir)
    : dir_(std::move(dir)), pki_(std::move(pki_dir)), port_(free_port()) {}

TlsMosquitto::~TlsMosquitto() { proc_.stop(3s); }

bool TlsMosquitto::start() {
  const std::string conf = dir_ + "/mosquitto-tls.conf";
  std::ofstream(conf) << shipped_config(pki_, port_);
  proc_.start({find_executable("mosquitto"), "-c", conf}, dir_ + "/mosquitto-tls.log");
  return wait_for_port(port_, 10s);
}

bool TlsMosquitto::restart() {
  proc_.stop(3s);
  return start();
}

bool publish_acked(sync::Transport& transport, const std::string& topic,
                   const std::string& payload) {
  auto acked = std::make_shared<std::promise<bool>>();
  auto done = acked->get_future();
  if (!transport.publish(topic, payload, 1,
                         [acked](Status s) { acked->set_value(static_cast<bool>(s)); })) {
    return false;
  }
  return done.wait_for(5s) == std::future_status::ready && done.get();
}

}  // namespace flotilla::testing
