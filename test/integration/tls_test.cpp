// Broker TLS and topic ACLs with a real mosquitto running the shipped configuration
// (deploy/mosquitto/flotilla.conf and flotilla.acl, adapted to a temp folder and a free port)
// and certificates made by the real `flotctl pki`: a node's certificate reaches only its own
// topics, clients without a fleet certificate are refused, an expired certificate gives an
// error naming it, and a hub and an agent run a workload over TLS.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <mutex>
#include <regex>
#include <sstream>

#include "common/x509.hpp"
#include "sync/flotilla.pb.h"
#include "sync/topics.hpp"
#include "sync/transport.hpp"
#include "test/integration/fleet.hpp"
#include "test/integration/tls_broker.hpp"

namespace flotilla::testing {
namespace {

constexpr uint32_t kShards = 16;  // the agents' and hub's default

// An MQTT client of the test with TLS options, recording what it receives.
class Client {
 public:
  Client(const std::string& uri, const std::string& id, const std::string& ca,
         const std::string& cert = "", const std::string& key = "") {
    sync::TransportOptions o;
    o.server_uri = uri;
    o.client_id = id;
    o.tls_ca_file = ca;
    o.tls_cert_file = cert;
    o.tls_key_file = key;
    o.max_backoff = std::chrono::milliseconds(300);
    transport_ = sync::make_mqtt_transport(o);
    transport_->set_handlers(
        [this](sync::Message m) {
          std::lock_guard<std::mutex> lock(mu_);
          received_.push_back(m.topic + " " + m.payload);
        },
        {});
  }
  ~Client() { transport_->stop(); }
  sync::Transport& transport() { return *transport_; }
  bool start_and_connect(std::chrono::milliseconds timeout = 10s) {
    if (!transport_->start()) return false;
    return eventually([&] { return transport_->connected(); }, timeout);
  }
  // The error of the first refused connect: on a loaded machine the TLS handshake may take
  // longer to fail than a test waited for start_and_connect().
  std::string refusal(std::chrono::milliseconds timeout = 15s) {
    eventually([&] { return !transport_->last_error().empty(); }, timeout);
    return transport_->last_error();
  }
  // Publishes at QoS 1 and waits for the broker's acknowledgement.
  bool publish(const std::string& topic, const std::string& payload) {
    return publish_acked(*transport_, topic, payload);
  }
  bool has(const std::string& line) {
    std::lock_guard<std::mutex> lock(mu_);
    return std::find(received_.begin(), received_.end(), line) != received_.end();
  }
  bool eventually_has(const std::string& line) {
    return eventually([&] { return has(line); }, 5s);
  }
  std::vector<std::string> received() {
    std::lock_guard<std::mutex> lock(mu_);
    return received_;
  }

 private:
  std::unique_ptr<sync::Transport> transport_;
  std::mutex mu_;
  std::vector<std::string> received_;
};

std::string dump(const std::vector<std::string>& lines) {
  std::string out;
  for (const auto& l : lines) out += "  " + l + "\n";
  return out;
}

class TlsBroker : public ::testing::Test {
 protected:
  void SetUp() override {
    if (find_executable("mosquitto").empty()) GTEST_SKIP() << "mosquitto is not installed";
    ASSERT_NO_FATAL_FAILURE(make_pki(pki_));
    ASSERT_TRUE(broker_.start()) << broker_.log();
  }
  std::string file(const std::string& name) const { return pki_ + "/" + name; }
  std::unique_ptr<Client> client_of(const std::string& name, const std::string& id) {
    return std::make_unique<Client>(broker_.uri(), id, file("ca.crt"), file(name + ".crt"),
                                    file(name + ".key"));
  }

  TempDir dir_;
  std::string pki_ = dir_ / "pki";
  TlsMosquitto broker_{dir_.path(), pki_};
};

TEST_F(TlsBroker, NodeCertificateReachesOnlyTheNodesOwnTopics) {
  auto hub = client_of("hub", "test-hub");
  auto a = client_of("node-a", "test-node-a");
  auto b = client_of("node-b", "test-node-b");
  ASSERT_TRUE(hub->transport().subscribe("flotilla/v1/s/+/n/+/up/+", 1));
  ASSERT_TRUE(a->transport().subscribe(sync::node_down_filter("node-a", kShards), 1));
  ASSERT_TRUE(a->transport().subscribe(sync::node_down_filter("node-b", kShards), 1));
  ASSERT_TRUE(b->transport().subscribe(sync::node_down_filter("node-b", kShards), 1));
  for (auto* c : {hub.get(), a.get(), b.get()}) {
    ASSERT_TRUE(c->start_and_connect()) << c->transport().last_error() << broker_.log();
  }
  const std::string a_up = sync::up_topic("node-a", kShards, "status");
  const std::string b_up = sync::up_topic("node-b", kShards, "status");
  const std::string a_down = sync::down_topic("node-a", kShards, "desired");
  const std::string b_down = sync::down_topic("node-b", kShards, "desired");

  // Writing: A's own up topic reaches the hub; A on B's up topic and A on its own down topic
  // (posing as the hub) reach nobody. A's marker, sent after them on its own topic, proves the
  // broker has routed them.
  ASSERT_TRUE(a->publish(a_up, "a-own"));
  ASSERT_TRUE(hub->eventually_has(a_up + " a-own")) << dump(hub->received());
  ASSERT_TRUE(a->publish(b_up, "a-forged-as-b"));
  ASSERT_TRUE(a->publish(a_down, "a-posing-as-hub"));
  ASSERT_TRUE(a->publish(a_up, "a-marker"));
  ASSERT_TRUE(hub->eventually_has(a_up + " a-marker")) << dump(hub->received());
  EXPECT_FALSE(hub->has(b_up + " a-forged-as-b")) << dump(hub->received());

  // Reading: the hub's message to B reaches B, not A (though A subscribed to B's topic); the
  // hub's later message to A proves it was routed by then.
  ASSERT_TRUE(hub->publish(b_down, "for-b"));
  ASSERT_TRUE(hub->publish(a_down, "for-a"));
  ASSERT_TRUE(b->eventually_has(b_down + " for-b")) << dump(b->received());
  ASSERT_TRUE(a->eventually_has(a_down + " for-a")) << dump(a->received());
  EXPECT_FALSE(a->has(b_down + " for-b")) << dump(a->received());
  EXPECT_FALSE(a->has(a_down + " a-posing-as-hub")) << dump(a->received());
}

TEST_F(TlsBroker, ClientsWithoutAFleetCertificateAreRefused) {
  // No client certificate at all.
  Client anonymous(broker_.uri(), "test-anonymous", file("ca.crt"));
  EXPECT_FALSE(anonymous.start_and_connect(3s));
  EXPECT_NE(anonymous.refusal().find("Failed to connect to '" + broker_.uri() + "'"),
            std::string::npos)
      << anonymous.transport().last_error();
  // A certificate named node-a, but from another CA.
  const std::string rogue = dir_ / "rogue";
  ASSERT_NO_FATAL_FAILURE(pki({"init", "--dir", rogue}));
  ASSERT_NO_FATAL_FAILURE(pki({"issue", "--dir", rogue, "--name", "node-a", "--kind", "node"}));
  Client impostor(broker_.uri(), "test-impostor", file("ca.crt"), rogue + "/node-a.crt",
                  rogue + "/node-a.key");
  EXPECT_FALSE(impostor.start_and_connect(3s));
  EXPECT_NE(impostor.refusal().find(rogue + "/node-a.crt"), std::string::npos)
      << impostor.transport().last_error();
  // A client that does not trust the broker (it knows only the rogue CA) refuses it.
  Client distrustful(broker_.uri(), "test-distrust", rogue + "/ca.crt", file("node-a.crt"),
                     file("node-a.key"));
  EXPECT_FALSE(distrustful.start_and_connect(3s));
  EXPECT_NE(distrustful.refusal().find("the broker's certificate is not signed"), std::string::npos)
      << distrustful.transport().last_error();
  // The genuine node-a connects (the refusals above were about the certificates).
  auto a = client_of("node-a", "test-node-a");
  EXPECT_TRUE(a->start_and_connect()) << a->transport().last_error();
}

TEST_F(TlsBroker, ExpiredCertificateGivesAnErrorNamingItAndItsDate) {
  ASSERT_NO_FATAL_FAILURE(
      pki({"issue", "--dir", pki_, "--name", "node-c", "--kind", "node", "--days", "0"}));
  auto info = x509::read_certificate(file("node-c.crt"));
  ASSERT_TRUE(info) << info.error().message();
  auto c = client_of("node-c", "test-node-c");
  EXPECT_FALSE(c->start_and_connect(2s));
  const std::string want = "Failed to connect to '" + broker_.uri() + "': certificate '" +
                           file("node-c.crt") + "' expired on " + x509::format_utc(info->not_after);
  EXPECT_EQ(c->transport().last_error(), want);

  // The agent says so in its log, and keeps running (its workloads stay up offline).
  ChildProcess agent;
  agent.start({FLOTILLA_AGENT_BIN, "--node", "node-c", "--mqtt", broker_.uri(), "--data",
               dir_ / "agent-c", "--mqtt-ca", file("ca.crt"), "--mqtt-cert", file("node-c.crt"),
               "--mqtt-key", file("node-c.key")},
              dir_ / "agent-c.log");
  EXPECT_TRUE(eventually([&] { return agent.log().find(want) != std::string::npos; }, 10s))
      << agent.log();
  EXPECT_TRUE(agent.running());
}

TEST_F(TlsBroker, RevokedCertificateIsRefusedAfterTheBrokerReloadsTheCrl) {
  ASSERT_NO_FATAL_FAILURE(pki({"revoke", "--dir", pki_, "--name", "node-b"}));
  ASSERT_TRUE(broker_.restart()) << broker_.log();
  auto b = client_of("node-b", "test-node-b");
  EXPECT_FALSE(b->start_and_connect(3s));
  EXPECT_FALSE(b->refusal().empty());
  auto a = client_of("node-a", "test-node-a");
  EXPECT_TRUE(a->start_and_connect()) << a->transport().last_error();
}

TEST_F(TlsBroker, AgentAndHubRefuseTlsFlagsThatDoNotFit) {
  // A key that is not the certificate's: a one-line error at startup, exit code 2.
  RunResult r = run_command({FLOTILLA_AGENT_BIN, "--node", "node-a", "--mqtt", broker_.uri(),
                             "--data", dir_ / "agent-x", "--mqtt-ca", file("ca.crt"), "--mqtt-cert",
                             file("node-a.crt"), "--mqtt-key", file("node-b.key")});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("key '" + file("node-b.key") + "' does not belong to certificate '" +
                       file("node-a.crt") + "'"),
            std::string::npos)
      << r.err;
  // TLS files with a tcp:// broker.
  r = run_command({FLOTILLA_HUB_BIN, "--mqtt", "tcp://127.0.0.1:1", "--data", dir_ / "hub-x",
                   "--mqtt-ca", file("ca.crt")});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("want an ssl://HOST:PORT broker"), std::string::npos) << r.err;
}

// A hub and an agent with their certificates, through the shipped broker configuration.
class TlsFleet : public ::testing::Test {
 protected:
  void SetUp() override {
    if (find_executable("mosquitto").empty()) GTEST_SKIP() << "mosquitto is not installed";
    ASSERT_NO_FATAL_FAILURE(make_pki(pki_));
    // The fleet's own plain broker stays unused: hub and agent get this TLS one (a later --mqtt
    // wins).
    ASSERT_TRUE(broker_.start()) << broker_.log();
    fleet_.start_hub({}, {"--mqtt", broker_.uri(), "--mqtt-ca", file("ca.crt"), "--mqtt-cert",
                          file("hub.crt"), "--mqtt-key", file("hub.key")});
  }
  std::string file(const std::string& name) const { return pki_ + "/" + name; }
  std::vector<std::string> agent_flags(const std::string& node) const {
    return {"--mqtt",
            broker_.uri(),
            "--mqtt-ca",
            file("ca.crt"),
            "--mqtt-cert",
            file(node + ".crt"),
            "--mqtt-key",
            file(node + ".key"),
            "--mqtt-cert-check-seconds",
            "1"};
  }

  TempDir pki_dir_;
  std::string pki_ = pki_dir_ / "pki";
  TlsMosquitto broker_{pki_dir_.path(), pki_};
  Fleet fleet_;
};

TEST_F(TlsFleet, WorkloadRunsOverTlsAndTheHubDropsAPayloadClaimingAnotherNode) {
  fleet_.start_agent("node-a", AgentOptions{.args = agent_flags("node-a")});
  ASSERT_TRUE(eventually([&] { return fleet_.all_ready({"node-a"}); }, 15s)) << fleet_.dump_logs();
  ASSERT_EQ(fleet_.apply(sleeper_manifest("sleeper")).exit_code, 0);
  EXPECT_EQ(fleet_.wait_converged({{"sleeper", "1"}}, {"node-a"}, 20s), "");

  // node-a's certificate may write node-a's up topics; a hello there claiming node-b gets past
  // the broker, and the hub drops it (logged, and counted in flotilla_hub_messages_dropped_total).
  Client a(broker_.uri(), "test-node-a", file("ca.crt"), file("node-a.crt"), file("node-a.key"));
  ASSERT_TRUE(a.start_and_connect()) << a.transport().last_error();
  v1::Hello forged;
  forged.set_node("node-b");
  forged.set_protocol_version(sync::kProtocolVersion);
  ASSERT_TRUE(a.publish(sync::up_topic("node-a", kShards, "hello"), forged.SerializeAsString()));
  const std::string hub_log = fleet_.dir() / "hub.log";
  EXPECT_TRUE(eventually(
      [&] {
        return slurp(hub_log).find(
                   "message dropped kind=hello reason=node_mismatch "
                   "detail='payload node 'node-b' on topic of node "
                   "'node-a''") != std::string::npos;
      },
      5s))
      << slurp(hub_log);
  EXPECT_EQ(fleet_.get("nodes").dump().find("\"node-b\""), std::string::npos);
}

TEST_F(TlsFleet, RenewedCertificateIsPickedUpWithWorkloadsUntouched) {
  fleet_.start_agent("node-a", AgentOptions{.args = agent_flags("node-a")});
  ASSERT_TRUE(eventually([&] { return fleet_.all_ready({"node-a"}); }, 15s)) << fleet_.dump_logs();
  ASSERT_EQ(fleet_.apply(sleeper_manifest("sleeper")).exit_code, 0);
  ASSERT_EQ(fleet_.wait_converged({{"sleeper", "1"}}, {"node-a"}, 20s), "");
  const auto pids = fleet_.workload_pids("node-a", "sleeper");
  auto before = x509::read_certificate(file("node-a.crt"));
  ASSERT_TRUE(before);

  // Renewal: the operator issues node-a again into the files the agent uses.
  ASSERT_NO_FATAL_FAILURE(pki({"issue", "--dir", pki_, "--name", "node-a", "--kind", "node"}));
  auto after = x509::read_certificate(file("node-a.crt"));
  ASSERT_TRUE(after);
  ASSERT_NE(before->serial_hex, after->serial_hex);
  const std::string log_path = fleet_.dir() / "agent-node-a.log";
  EXPECT_TRUE(eventually(
      [&] { return slurp(log_path).find("renewed: reconnecting") != std::string::npos; }, 10s))
      << slurp(log_path);
  // Reconnected with the new certificate (the broker logs the new connection), Ready again,
  // and the workload is the same process.
  EXPECT_TRUE(eventually([&] { return fleet_.all_ready({"node-a"}); }, 15s));
  EXPECT_EQ(fleet_.wait_converged({{"sleeper", "1"}}, {"node-a"}, 10s), "");
  EXPECT_EQ(fleet_.workload_pids("node-a", "sleeper"), pids);
}

}  // namespace
}  // namespace flotilla::testing
