// flotilla-hub: the cloud hub. Parses flags, starts the Hub, and stops it on SIGTERM/SIGINT.
#include <signal.h>

#include <cstdio>
#include <iostream>

#include "cloud-hub/admission.hpp"
#include "cloud-hub/hub.hpp"
#include "common/flags.hpp"
#include "common/fs.hpp"
#include "common/log.hpp"

namespace {

int usage_error(const flotilla::Flags& flags, const std::string& message) {
  std::cerr << "flotilla-hub: " << message << "\n\n" << flags.usage();
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  flotilla::Flags flags("flotilla-hub",
                        "The Flotilla cloud hub: stores workloads, schedules them onto nodes, "
                        "syncs agents over MQTT and serves the REST API.");
  flags.add("mqtt", "MQTT broker URI, e.g. tcp://127.0.0.1:1883 or ssl://broker:8883", "", true);
  flags.add("mqtt-ca", "PEM file of the fleet CA that signed the broker's certificate (ssl://)");
  flags.add("mqtt-cert", "PEM file of the hub's client certificate (CN=hub; flotctl pki issue)");
  flags.add("mqtt-key", "PEM file of the client certificate's private key");
  flags.add("signing-key",
            "PEM file of the Ed25519 key the hub signs its messages to agents with (agents "
            "pinning its public half refuse unsigned and forged ones; docs/security.md)");
  flags.add("previous-signing-key",
            "during a key rotation: PEM file of the key --signing-key replaces; agents that "
            "trust only this one take the new one");
  flags.add("listen", "HTTP address HOST:PORT for the REST API and console", "127.0.0.1:8080");
  flags.add("data",
            "folder for the hub's databases (control.db, shard-NN.db unless --store; rollouts.db, "
            "audit.db) and OTA artifacts",
            "", true);
  flags.add("store",
            "PostgreSQL database for the control and shard stores instead of --data's files: "
            "postgres://USER@HOST:PORT/DB or libpq key=value pairs (docs/multi-hub.md)",
            "");
  flags.add("instance-id",
            "with --store: this instance's name among the hubs sharing the database, unique "
            "among running ones (default: host name and process id)",
            "");
  flags.add("instance-url",
            "with --store: this instance's API URL as the other instances reach it; they "
            "forward rollout calls to the one driving the rollouts (default: http(s)://<listen "
            "address>, the host name for 0.0.0.0)",
            "");
  flags.add("lease-period-ms",
            "with --store: how long a shard lease lasts unrenewed; a dead instance's shards move "
            "to the others within two periods",
            "10000");
  flags.add("shards",
            "number of shards (must match the agents'): each has its own database, ingest "
            "thread and MQTT subscription",
            "16");
  flags.add("node-timeout-ms", "a node is NotReady after this long without a message", "15000");
  flags.add("recovery-grace-ms",
            "after a shard's database was lost, scheduling waits this long for its nodes to "
            "resync",
            "30000");
  flags.add("tombstone-retention", "revisions of deletes kept per node for deltas", "1000");
  flags.add("max-disruption",
            "an apply or delete stopping more than this share of the running instances is "
            "refused unless forced (0..1 or a percentage)",
            "0.5");
  flags.add("desired-qos",
            "MQTT QoS of desired-state messages: 0 (the protocol's acks and resends make them "
            "reliable) or 1",
            "0");
  flags.add("public-url",
            "the hub's URL as nodes reach it, for the artifact URLs of OTA assignments (default: "
            "http://<listen address>)",
            "");
  flags.add("artifacts",
            "folder of the OTA artifacts (default: <data>/artifacts); instances sharing a "
            "--store must share it (a shared file system)",
            "");
  flags.add("ota-public-key",
            "PEM file of the Ed25519 public key artifact manifests must be signed by (default: "
            "signatures are stored unchecked; agents check them)",
            "");
  flags.add("api-tokens",
            "file of API bearer tokens, one 'NAME ROLE SHA256' a line (flotctl token create); "
            "default: the API is open to anyone who reaches it",
            "");
  flags.add("api-tls-cert", "PEM certificate for HTTPS on the API (with --api-tls-key)", "");
  flags.add("api-tls-key", "PEM private key of --api-tls-cert", "");
  flags.add("admission-policy",
            "YAML file of kind AdmissionPolicy: rules every applied workload must pass (default: "
            "none)",
            "");
  flags.add("log-level", "trace|debug|info|warn|error", "info");
  if (auto st = flags.parse(argc, argv); !st) return usage_error(flags, st.error().message());
  if (flags.help_requested()) {
    std::cout << flags.usage();
    return 0;
  }
  if (auto st = flotilla::log::init(flags.get("log-level")); !st) {
    return usage_error(flags, st.error().message());
  }
  flotilla::hub::HubOptions options;
  options.mqtt_uri = flags.get("mqtt");
  options.data_dir = flags.get("data");
  options.store = flags.get("store");
  if (!options.store.empty() && options.store.rfind("postgres://", 0) != 0 &&
      options.store.rfind("postgresql://", 0) != 0 &&
      options.store.find('=') == std::string::npos) {
    return usage_error(flags,
                       "flag '--store' wants postgres://USER@HOST:PORT/DB or libpq key=value "
                       "pairs (host=... dbname=...), got '" +
                           options.store + "'");
  }
  if (auto st = flotilla::hub::parse_listen(flags.get("listen"), &options.listen_host,
                                            &options.listen_port);
      !st) {
    return usage_error(flags, "flag '--listen': " + st.error().message());
  }
  auto shards = flags.get_int("shards", 1, 256);
  if (!shards) return usage_error(flags, shards.error().message());
  options.shards = static_cast<uint32_t>(*shards);
  auto timeout = flags.get_int("node-timeout-ms", 100, 24LL * 3600 * 1000);
  if (!timeout) return usage_error(flags, timeout.error().message());
  options.node_timeout = flotilla::Millis(*timeout);
  options.resend_interval = std::min(options.resend_interval, options.node_timeout / 3);
  auto lease = flags.get_int("lease-period-ms", 300, 3600LL * 1000);
  if (!lease) return usage_error(flags, lease.error().message());
  options.lease_period = flotilla::Millis(*lease);
  options.instance_id = flags.get("instance-id");
  options.instance_url = flags.get("instance-url");
  options.artifacts_dir = flags.get("artifacts");
  auto grace = flags.get_int("recovery-grace-ms", 0, 24LL * 3600 * 1000);
  if (!grace) return usage_error(flags, grace.error().message());
  options.recovery_grace = flotilla::Millis(*grace);
  auto desired_qos = flags.get_int("desired-qos", 0, 1);
  if (!desired_qos) return usage_error(flags, desired_qos.error().message());
  options.desired_qos = static_cast<int>(*desired_qos);
  auto retention = flags.get_int("tombstone-retention", 1, 1'000'000'000);
  if (!retention) return usage_error(flags, retention.error().message());
  options.tombstone_retention = static_cast<uint64_t>(*retention);
  auto share = flotilla::hub::parse_share(flags.get("max-disruption"));
  if (!share) return usage_error(flags, "flag '--max-disruption': " + share.error().message());
  options.max_disruption = *share;
  options.public_url = flags.get("public-url");
  while (!options.public_url.empty() && options.public_url.back() == '/') {
    options.public_url.pop_back();
  }
  if (!options.public_url.empty() && options.public_url.rfind("http://", 0) != 0 &&
      options.public_url.rfind("https://", 0) != 0) {
    return usage_error(flags, "flag '--public-url' wants http://HOST:PORT or https://..., got '" +
                                  options.public_url + "'");
  }
  if (const std::string key = flags.get("ota-public-key"); !key.empty()) {
    auto pem = flotilla::fs::read_file(key);
    if (!pem) return usage_error(flags, "flag '--ota-public-key': " + pem.error().message());
    options.ota_public_key_pem = std::move(*pem);
  }
  options.api_tokens_file = flags.get("api-tokens");
  options.api_tls_cert = flags.get("api-tls-cert");
  options.api_tls_key = flags.get("api-tls-key");
  if (options.api_tls_cert.empty() != options.api_tls_key.empty()) {
    return usage_error(flags, "flags '--api-tls-cert' and '--api-tls-key' go together");
  }
  if (const std::string file = flags.get("admission-policy"); !file.empty()) {
    auto policy = flotilla::hub::load_admission_policy(file);
    if (!policy) {
      return usage_error(flags, "flag '--admission-policy': " + policy.error().message());
    }
    options.admission = std::make_shared<const flotilla::hub::AdmissionPolicy>(std::move(*policy));
  }
  if (options.mqtt_uri.rfind("tcp://", 0) != 0 && options.mqtt_uri.rfind("ssl://", 0) != 0) {
    return usage_error(flags,
                       "flag '--mqtt' wants tcp://HOST:PORT, got '" + options.mqtt_uri + "'");
  }
  options.mqtt_ca_file = flags.get("mqtt-ca");
  options.mqtt_cert_file = flags.get("mqtt-cert");
  options.mqtt_key_file = flags.get("mqtt-key");
  options.signing_key_file = flags.get("signing-key");
  options.previous_signing_key_file = flags.get("previous-signing-key");
  if (options.signing_key_file.empty() && !options.previous_signing_key_file.empty()) {
    return usage_error(flags, "flag '--previous-signing-key' needs '--signing-key'");
  }
  {
    flotilla::sync::TransportOptions tls;
    tls.server_uri = options.mqtt_uri;
    tls.tls_ca_file = options.mqtt_ca_file;
    tls.tls_cert_file = options.mqtt_cert_file;
    tls.tls_key_file = options.mqtt_key_file;
    if (auto st = flotilla::sync::validate_tls_options(tls); !st) {
      return usage_error(flags, st.error().message());
    }
  }

  // Block the stop signals before any thread starts, so only sigwait() below sees them.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  auto log = flotilla::log::get("hub");
  auto hub = flotilla::hub::Hub::create(options);
  if (!hub) {
    std::cerr << "flotilla-hub: " << hub.error().message() << "\n";
    return 1;
  }
  if (auto st = (*hub)->start(); !st) {
    std::cerr << "flotilla-hub: " << st.error().message() << "\n";
    return 1;
  }
  int sig = 0;
  sigwait(&stop_signals, &sig);
  log->info("stopping on signal {}", sig == SIGTERM ? "SIGTERM" : "SIGINT");
  (*hub)->stop();
  return 0;
}
