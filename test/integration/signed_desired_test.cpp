// Signed desired state end to end (docs/security.md): a real hub signing with a key made by the
// real `flotctl pki signing-key`, real agents pinning its public half, and an attacker who can
// publish on the broker (what a compromised broker can do) sending unsigned and forged desired
// states. The agent must run nothing of them, count them, and keep taking the hub's changes,
// also through a key rotation and an agent kill -9.
#include <gtest/gtest.h>

#include <mutex>

#include "common/ed25519.hpp"
#include "sync/codec.hpp"
#include "sync/signed.hpp"
#include "sync/topics.hpp"
#include "sync/transport.hpp"
#include "test/integration/fleet.hpp"
#include "test/integration/tls_broker.hpp"

namespace flotilla::testing {
namespace {

constexpr uint32_t kShards = 16;  // the agents' and hub's default

// `flotctl pki signing-key --dir DIR --name NAME`: the private key's path.
std::string make_signing_key(const std::string& dir, const std::string& name) {
  RunResult r = run_command({FLOTCTL_BIN, "pki", "signing-key", "--dir", dir, "--name", name}, 10s);
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  return dir + "/" + name + ".key";
}

// A desired-state snapshot that would run `sh -c 'sleep 1000'` as workload `evil` on `node`
// (tagged with the fleet's folder, so workload_pids() finds it and the fleet kills it).
std::string evil_desired(const std::string& node, const std::string& fleet_dir) {
  v1::DesiredState d;
  d.set_node(node);
  d.set_from_revision(0);
  d.set_to_revision(1'000'000);
  d.set_snapshot(true);
  v1::WorkloadSpec* w = d.add_upserts();
  w->set_name("evil");
  w->set_type("process");
  w->set_spec_hash("evil-1");
  w->set_generation(1);
  w->mutable_process()->add_command("/bin/sh");
  w->mutable_process()->add_command("-c");
  w->mutable_process()->add_command("sleep 1000");
  (*w->mutable_process()->mutable_env())["FLOTILLA_TEST_FLEET"] = fleet_dir;
  return sync::encode(d);
}

// An MQTT client of the test: what anyone who can publish on the broker (or the broker itself)
// can do. It records what it receives on the filters it subscribed to.
class Attacker {
 public:
  // `tls`: the PKI folder and the name of the certificate to connect with (ssl:// URIs).
  explicit Attacker(const std::string& uri, const std::string& filter = "",
                    const std::string& pki_dir = "", const std::string& certificate = "") {
    sync::TransportOptions o;
    o.server_uri = uri;
    o.client_id = "attacker";
    if (!pki_dir.empty()) {
      o.tls_ca_file = pki_dir + "/ca.crt";
      o.tls_cert_file = pki_dir + "/" + certificate + ".crt";
      o.tls_key_file = pki_dir + "/" + certificate + ".key";
    }
    transport_ = sync::make_mqtt_transport(o);
    transport_->set_handlers(
        [this](sync::Message m) {
          std::lock_guard lock(mu_);
          received_.push_back(std::move(m));
        },
        {});
    if (!filter.empty()) {
      EXPECT_TRUE(transport_->subscribe(filter, 1).ok());
    }
    EXPECT_TRUE(transport_->start().ok());
    EXPECT_TRUE(eventually([&] { return transport_->connected(); }, 10s));
  }
  ~Attacker() { transport_->stop(); }
  void publish(const std::string& topic, const std::string& payload) {
    EXPECT_TRUE(transport_->publish(topic, payload, 1).ok());
  }
  // Publishes at QoS 1 and waits for the broker's acknowledgement: the broker has then decided
  // where the message goes (mosquitto acknowledges a publish its ACL drops, too).
  bool publish_acked(const std::string& topic, const std::string& payload) {
    return testing::publish_acked(*transport_, topic, payload);
  }
  std::vector<sync::Message> received() {
    std::lock_guard lock(mu_);
    return received_;
  }

 private:
  std::mutex mu_;
  std::vector<sync::Message> received_;
  std::unique_ptr<sync::Transport> transport_;
};

int64_t rejected(Fleet& fleet, const std::string& node) {
  json n = fleet.get("node", node);
  return n.is_object() ? n.value("rejectedMessages", int64_t{-1}) : -1;
}

json hub_keys(Fleet& fleet, const std::string& node) {
  json n = fleet.get("node", node);
  return n.is_object() ? n.value("hubKeys", json()) : json();
}

std::string key_id_of(const std::string& public_pem_path) {
  auto key = ed25519::PublicKey::from_pem(slurp(public_pem_path));
  EXPECT_TRUE(key.ok()) << public_pem_path;
  return key ? key->id() : "";
}

TEST(SignedDesired, ForgedAndUnsignedDesiredStatesAreRejectedCountedAndRunNothing) {
  Fleet fleet;
  const std::string keys = fleet.dir() / "keys";
  ASSERT_EQ(::mkdir(keys.c_str(), 0700), 0);
  const std::string hub_key = make_signing_key(keys, "hub-signing");
  const std::string attacker_key = make_signing_key(keys, "attacker");
  fleet.start_hub({}, {"--signing-key", hub_key});
  fleet.start_agent("node-a",
                    AgentOptions{.args = {"--hub-public-key", keys + "/hub-signing.pub"}});
  fleet.start_agent("node-b");  // no key: takes the signed messages unverified
  const std::string topic = sync::down_topic("node-a", kShards, "desired");
  const std::string b_topic = sync::down_topic("node-b", kShards, "desired");
  Attacker attacker(fleet.broker().uri(), b_topic);
  ASSERT_EQ(fleet.apply(sleeper_manifest("web", "1")).exit_code, 0);
  ASSERT_EQ(fleet.wait_converged({{"web", "1"}}, {"node-a", "node-b"}, 30s), "");
  const int64_t revision = fleet.agent_revision("node-a");
  EXPECT_EQ(rejected(fleet, "node-a"), 0);

  // 1. Unsigned.
  attacker.publish(topic, evil_desired("node-a", fleet.dir().path()));
  // 2. Signed with a key of the attacker's own.
  auto signer = sync::Signer::from_files(attacker_key, "");
  ASSERT_TRUE(signer.ok());
  attacker.publish(topic, *signer->seal(topic, evil_desired("node-a", fleet.dir().path())));
  // 3. A genuine message of the hub, captured on node-b's topic, replayed on node-a's.
  auto captured = attacker.received();
  ASSERT_FALSE(captured.empty());
  ASSERT_TRUE(sync::looks_signed(captured[0].payload));
  attacker.publish(topic, captured[0].payload);

  EXPECT_TRUE(eventually([&] { return rejected(fleet, "node-a") == 3; }, 10s))
      << "rejectedMessages=" << rejected(fleet, "node-a") << "\n"
      << fleet.dump_logs();
  EXPECT_TRUE(fleet.workload_pids("node-a", "evil").empty());
  EXPECT_EQ(fleet.agent_revision("node-a"), revision);
  const std::string agent_log = slurp(fleet.dir() / "agent-node-a.log");
  EXPECT_NE(agent_log.find("reason='unsigned message'"), std::string::npos) << agent_log;
  EXPECT_NE(agent_log.find("signed by unknown key"), std::string::npos);
  EXPECT_NE(agent_log.find("forged message: the signature does not match key"), std::string::npos);
  // The hub saw it too.
  const std::string hub_log = slurp(fleet.dir() / "hub.log");
  EXPECT_NE(hub_log.find("node node-a dropped"), std::string::npos);

  // The hub's own changes keep flowing to both nodes.
  RunResult r = fleet.apply_forced(sleeper_manifest("web", "2"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(fleet.wait_converged({{"web", "2"}}, {"node-a", "node-b"}, 30s), "");
  EXPECT_TRUE(fleet.workload_pids("node-a", "evil").empty());
  EXPECT_EQ(rejected(fleet, "node-a"), 3);

  // The same unsigned message does run on node-b, which pins no key: the attack is real, and
  // only the signature check stops it.
  attacker.publish(b_topic, evil_desired("node-b", fleet.dir().path()));
  EXPECT_TRUE(eventually([&] { return fleet.workload_pids("node-b", "evil").size() == 1; }, 15s));
}

// The same over the shipped TLS broker and its ACLs (deploy/mosquitto). node-a's own certificate
// cannot publish on node-a's down topics at all: the broker drops that. The hub's certificate
// can, so a stolen hub certificate (or a compromised broker) is what signing is for: the
// attacker holding it, but not the signing key, makes node-a run nothing.
TEST(SignedDesired, OverTlsNeitherTheNodesCertificateNorAStolenHubCertificateRunsAnything) {
  if (find_executable("mosquitto").empty()) GTEST_SKIP() << "mosquitto is not installed";
  Fleet fleet;
  const std::string keys = fleet.dir() / "keys";
  ASSERT_EQ(::mkdir(keys.c_str(), 0700), 0);
  const std::string hub_key = make_signing_key(keys, "hub-signing");
  const std::string attacker_key = make_signing_key(keys, "attacker");
  const std::string pki_dir = fleet.dir() / "pki";
  ASSERT_NO_FATAL_FAILURE(make_pki(pki_dir));
  TlsMosquitto broker(fleet.dir().path(), pki_dir);
  ASSERT_TRUE(broker.start()) << broker.log();
  // A later --mqtt wins over the fleet's plain broker.
  auto tls_flags = [&](const std::string& name) {
    return std::vector<std::string>{"--mqtt",      broker.uri(),
                                    "--mqtt-ca",   pki_dir + "/ca.crt",
                                    "--mqtt-cert", pki_dir + "/" + name + ".crt",
                                    "--mqtt-key",  pki_dir + "/" + name + ".key"};
  };
  std::vector<std::string> hub_args = tls_flags("hub");
  hub_args.insert(hub_args.end(), {"--signing-key", hub_key});
  fleet.start_hub({}, hub_args);
  std::vector<std::string> agent_args = tls_flags("node-a");
  agent_args.insert(agent_args.end(), {"--hub-public-key", keys + "/hub-signing.pub"});
  fleet.start_agent("node-a", AgentOptions{.args = agent_args});
  ASSERT_EQ(fleet.apply(sleeper_manifest("web", "1")).exit_code, 0);
  ASSERT_EQ(fleet.wait_converged({{"web", "1"}}, {"node-a"}, 30s), "") << fleet.dump_logs();
  const int64_t revision = fleet.agent_revision("node-a");
  const std::string topic = sync::down_topic("node-a", kShards, "desired");

  // node-a's own certificate, posing as the hub: acknowledged, and dropped by the broker.
  {
    Attacker own(broker.uri(), "", pki_dir, "node-a");
    EXPECT_TRUE(own.publish_acked(topic, evil_desired("node-a", fleet.dir().path())));
  }
  // The hub's certificate: unsigned, then signed with the attacker's own key. Both reach the
  // agent, which refuses them.
  Attacker stolen(broker.uri(), "", pki_dir, "hub");
  EXPECT_TRUE(stolen.publish_acked(topic, evil_desired("node-a", fleet.dir().path())));
  auto signer = sync::Signer::from_files(attacker_key, "");
  ASSERT_TRUE(signer.ok());
  EXPECT_TRUE(stolen.publish_acked(
      topic, *signer->seal(topic, evil_desired("node-a", fleet.dir().path()))));

  EXPECT_TRUE(eventually([&] { return rejected(fleet, "node-a") == 2; }, 10s))
      << "rejectedMessages=" << rejected(fleet, "node-a") << "\n"
      << fleet.dump_logs();
  const std::string agent_log = slurp(fleet.dir() / "agent-node-a.log");
  EXPECT_NE(agent_log.find("reason='unsigned message'"), std::string::npos) << agent_log;
  EXPECT_NE(agent_log.find("signed by unknown key"), std::string::npos) << agent_log;
  EXPECT_TRUE(fleet.workload_pids("node-a", "evil").empty());
  EXPECT_EQ(fleet.agent_revision("node-a"), revision);

  // The hub's own changes still flow, signed, over TLS; the count stays 2 (node-a's own
  // certificate's message never reached the agent).
  RunResult r = fleet.apply_forced(sleeper_manifest("web", "2"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(fleet.wait_converged({{"web", "2"}}, {"node-a"}, 30s), "") << fleet.dump_logs();
  EXPECT_TRUE(fleet.workload_pids("node-a", "evil").empty());
  EXPECT_EQ(rejected(fleet, "node-a"), 2);
}

TEST(SignedDesired, KeyRotationReachesAgentsAndSurvivesAnAgentKill9) {
  Fleet fleet;
  const std::string keys = fleet.dir() / "keys";
  ASSERT_EQ(::mkdir(keys.c_str(), 0700), 0);
  const std::string old_key = make_signing_key(keys, "hub-signing");
  const std::string new_key = make_signing_key(keys, "hub-signing-2");
  const std::vector<std::string> agent_args = {"--hub-public-key", keys + "/hub-signing.pub"};
  fleet.start_hub({}, {"--signing-key", old_key});
  fleet.start_agent("node-a", AgentOptions{.args = agent_args});
  ASSERT_EQ(fleet.apply(sleeper_manifest("web", "1")).exit_code, 0);
  ASSERT_EQ(fleet.wait_converged({{"web", "1"}}, {"node-a"}, 30s), "");
  const auto pids = fleet.workload_pids("node-a", "web");
  const std::string old_id = key_id_of(keys + "/hub-signing.pub");
  const std::string new_id = key_id_of(keys + "/hub-signing-2.pub");
  EXPECT_EQ(hub_keys(fleet, "node-a"), json::array({old_id}));

  // Step 2 of the rotation: the new key, endorsed by the old one.
  fleet.kill9_hub();
  fleet.start_hub({}, {"--signing-key", new_key, "--previous-signing-key", old_key});
  const std::string agent_log_path = fleet.dir() / "agent-node-a.log";
  EXPECT_TRUE(eventually(
      [&] { return slurp(agent_log_path).find("hub signing key rotated") != std::string::npos; },
      15s))
      << slurp(agent_log_path);
  ASSERT_EQ(fleet.apply_forced(sleeper_manifest("web", "2")).exit_code, 0);
  ASSERT_EQ(fleet.wait_converged({{"web", "2"}}, {"node-a"}, 30s), "");
  // The node tells the hub which key it trusts now (step 3 of the runbook waits for this).
  EXPECT_TRUE(eventually([&] { return hub_keys(fleet, "node-a") == json::array({new_id}); }, 10s))
      << hub_keys(fleet, "node-a").dump();

  // Step 3: the new key alone; the agent restarts (kill -9) and still knows it.
  fleet.kill9_hub();
  fleet.start_hub({}, {"--signing-key", new_key});
  fleet.kill9_agent("node-a");
  fleet.start_agent("node-a", AgentOptions{.args = agent_args});
  ASSERT_EQ(fleet.apply_forced(sleeper_manifest("web", "3")).exit_code, 0);
  EXPECT_EQ(fleet.wait_converged({{"web", "3"}}, {"node-a"}, 30s), "") << fleet.dump_logs();
  EXPECT_EQ(rejected(fleet, "node-a"), 0);

  // The old key is retired: a message it signs (a leaked old key) is refused.
  Attacker attacker(fleet.broker().uri());
  const std::string topic = sync::down_topic("node-a", kShards, "desired");
  auto old_signer = sync::Signer::from_files(old_key, "");
  ASSERT_TRUE(old_signer.ok());
  attacker.publish(topic, *old_signer->seal(topic, evil_desired("node-a", fleet.dir().path())));
  EXPECT_TRUE(eventually([&] { return rejected(fleet, "node-a") == 1; }, 10s)) << fleet.dump_logs();
  EXPECT_TRUE(fleet.workload_pids("node-a", "evil").empty());
  EXPECT_NE(pids, fleet.workload_pids("node-a", "web"));  // web was updated twice meanwhile
}

}  // namespace
}  // namespace flotilla::testing
