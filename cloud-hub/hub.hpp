// Hub: wires the hub together -- stores (<data>/control.db and a shard-NN.db per shard, see
// hub_stores.hpp), MQTT transport, Controller, SyncServer, the WatchLog its WatchFeeder fills
// with the controller's changes, the OTA artifacts (<data>/artifacts) and rollouts
// (<data>/rollouts.db), REST Api on cpp-httplib (HTTPS with a certificate; bearer tokens and the
// audit log <data>/audit.db, api_guard.hpp), and a timer thread that runs
// Controller::tick() and UpdateRollouts::tick() every second. main() only parses flags, builds
// HubOptions and waits for SIGTERM.
//
// Thread-safety: start() and stop() from one thread.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include <httplib.h>

#include "cloud-hub/api.hpp"
#include "cloud-hub/api_auth.hpp"
#include "cloud-hub/artifact_store.hpp"
#include "cloud-hub/audit_log.hpp"
#include "cloud-hub/change_feed.hpp"
#include "cloud-hub/controller.hpp"
#include "cloud-hub/hub_stores.hpp"
#include "cloud-hub/metrics.hpp"
#include "cloud-hub/shard_leases.hpp"
#include "cloud-hub/store.hpp"
#include "cloud-hub/sync_server.hpp"
#include "cloud-hub/update_rollouts.hpp"
#include "cloud-hub/watch.hpp"
#include "cloud-hub/watch_feeder.hpp"
#include "common/clock.hpp"
#include "sync/transport.hpp"

namespace flotilla::hub {

struct HubOptions {
  std::string mqtt_uri;  // tcp://HOST:PORT or ssl://HOST:PORT
  // TLS (ssl://): --mqtt-ca, --mqtt-cert, --mqtt-key (PEM files, docs/security.md); empty: none.
  std::string mqtt_ca_file;
  std::string mqtt_cert_file;
  std::string mqtt_key_file;
  // Signed desired state (docs/security.md): --signing-key and --previous-signing-key, Ed25519
  // private keys in PEM files. Empty: messages to agents go unsigned.
  std::string signing_key_file;
  std::string previous_signing_key_file;
  std::string listen_host = "127.0.0.1";
  int listen_port = 8080;  // 0: any free port (see Hub::port())
  std::string data_dir;    // holds control.db and shard-NN.db
  // --store: a PostgreSQL database (postgres:// URI or libpq key=value pairs) holding the
  // control and shard stores instead of data_dir's files; empty: the files.
  std::string store;
  // With `store`: several instances share its shards by leases (shard_leases.hpp,
  // docs/multi-hub.md). `instance_id` empty: host name and process id.
  std::string instance_id;
  // With `store`: this instance's API URL as the other instances reach it (they forward rollout
  // calls to the instance driving the rollouts, api_forward.hpp); empty: http(s)://<listen
  // host>:<bound port>, the host name for a wildcard listen address.
  std::string instance_url;
  Millis lease_period{10000};
  uint32_t shards = sync::kDefaultShards;
  Millis node_timeout{15000};
  Millis resend_interval{5000};
  uint64_t tombstone_retention = 1000;  // revisions
  double max_disruption = 0.5;          // share of running instances one change may stop
  Millis recovery_grace{30000};         // wait for the nodes of a lost shard store to resync
  int desired_qos = 0;                  // QoS of DesiredState messages (ControllerOptions)
  // OTA: the hub's URL as nodes reach it (artifact URLs in assignments); empty:
  // http://<listen host>:<bound port>. The Ed25519 public key (PEM) artifact manifests must be
  // signed by; empty: signatures are stored unchecked (agents check them).
  std::string public_url;
  std::string ota_public_key_pem;
  // The OTA artifacts' folder; empty: <data_dir>/artifacts. Instances sharing a `store` must
  // share it too (a shared file system): the instance driving a rollout, and any that serves a
  // download, reads the artifact there.
  std::string artifacts_dir;
  // API authentication (api_auth.hpp): the tokens file; empty: the API is open to anyone who
  // reaches it (logged as a warning at start). Every change is recorded in <data>/audit.db.
  std::string api_tokens_file;
  // HTTPS for the API: PEM certificate (chain) and private key files; both or neither.
  std::string api_tls_cert;
  std::string api_tls_key;
  // Admission policy applied workloads are checked against (admission.hpp); null: none.
  std::shared_ptr<const AdmissionPolicy> admission;
};

// Parses "HOST:PORT" (e.g. 127.0.0.1:8080).
Status parse_listen(const std::string& text, std::string* host, int* port);
// Parses a share: "0.5" or "50%" (0 to 1).
Expected<double> parse_share(const std::string& text);

class Hub {
 public:
  // `transport` may be given by tests; by default an MQTT transport to options.mqtt_uri with
  // client id flotilla-hub and a persistent session.
  static Expected<std::unique_ptr<Hub>> create(HubOptions options,
                                               std::unique_ptr<sync::Transport> transport = {});
  ~Hub();

  // Binds the HTTP port (failing if it is taken), then starts MQTT, the timer and HTTP.
  Status start();
  void stop();
  int port() const { return port_; }

 private:
  Hub() = default;

  HubOptions options_;
  SystemClock clock_;
  Metrics metrics_;
  HubStores stores_;
  std::unique_ptr<sync::Transport> transport_;
  std::unique_ptr<Controller> controller_;
  std::unique_ptr<SyncServer> sync_;
  std::unique_ptr<ArtifactStore> artifacts_;
  std::unique_ptr<UpdateRollouts> rollouts_;
  std::unique_ptr<WatchLog> watch_;
  std::unique_ptr<WatchFeeder> watch_feeder_;
  // With --store: the other instances' changes for our watchers, and ours for theirs.
  std::unique_ptr<ChangeFeed> changes_;
  std::unique_ptr<TokenTable> tokens_;
  std::unique_ptr<AuditLog> audit_;
  std::unique_ptr<Api> api_;
  std::unique_ptr<httplib::Server> http_;  // an httplib::SSLServer with api_tls_cert
  // With --store: the shard leases and the thread that ticks them (lease_period / 3).
  std::unique_ptr<ShardLeases> leases_;
  std::thread lease_thread_;
  void take_shard(uint32_t shard);
  void let_go_shard(uint32_t shard);
  void apply_lease_changes(const LeaseChanges& changes);
  int port_ = 0;
  std::thread http_thread_;
  std::thread timer_thread_;
  std::mutex timer_mu_;
  std::condition_variable timer_cv_;
  bool stopping_ = false;
  bool started_ = false;
};

}  // namespace flotilla::hub
