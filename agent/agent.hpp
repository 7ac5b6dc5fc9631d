// agent::Agent: wires the Store, Reconciler and SyncClient to one loop thread.
//
// The transport's callbacks only push into a LoopQueue; run_once() handles everything queued,
// runs the reconciler when its tick is due (or at once after a desired-state change), and lets
// the sync client heartbeat and flush the outbox. Stopping the agent leaves workloads running:
// the next start adopts them (edge autonomy).
//
// Thread-safety: start(), run_once(), run() and shutdown() on one thread; request_stop() from
// any thread (including a signal handler's flag-polling loop).
#pragma once

#include <atomic>
#include <memory>
#include <string>

#include "agent/config.hpp"
#include "agent/loop_queue.hpp"
#include "agent/ota_sync.hpp"
#include "agent/probe_checks.hpp"
#include "agent/prober.hpp"
#include "agent/reconciler.hpp"
#include "agent/store.hpp"
#include "agent/sync_client.hpp"
#include "agent/twin_sync.hpp"
#include "common/clock.hpp"
#include "common/worker_pool.hpp"
#include "runtime/driver.hpp"
#include "sync/signed.hpp"
#include "sync/transport.hpp"

namespace flotilla::agent {

class Agent {
 public:
  // The store, driver, transports and clock must outlive the Agent. The transport must have
  // been created with make_transport_options(config, boot_id) (or be a fake); `devices`, the
  // local broker of the device bridge (--device-mqtt), may be null: no bridge.
  Agent(AgentConfig config, Store& store, runtime::Driver& driver, sync::Transport& transport,
        const Clock& clock, std::string boot_id, sync::Transport* devices = nullptr);
  ~Agent();

  // Recovers instances, subscribes and starts the transport.
  Status start();
  // Handles what is queued and does whatever is due; never blocks.
  void run_once();
  // Loops until `stop` is set, sleeping on the queue between iterations.
  void run(const std::atomic<bool>& stop);
  // Tells the hub we are going (Offline) and stops the transport. Workloads keep running.
  void shutdown();
  // Non-empty once an OTA update of the agent itself switched (or rolled back) its binary: run()
  // returns, and main() calls prepare_reexec() and execv()s this path with the same argv.
  std::string reexec_path() const { return ota_ ? ota_->reexec_path() : std::string(); }
  // Stops the transports without saying goodbye (the next process reconnects at once).
  void prepare_reexec();
  // Ids of the hub signing keys trusted now (empty without --hub-public-key).
  std::vector<std::string> trusted_hub_keys() const;

  const SyncClient& sync_client() const { return sync_; }
  const Reconciler& reconciler() const { return reconciler_; }
  const TwinSync& twins() const { return twins_; }
  // Null without a data folder (tests that need no OTA).
  const OtaSync* ota() const { return ota_.get(); }
  const ota::Updater* updater() const { return updater_.get(); }
  LoopQueue& queue() { return *queue_; }

 private:
  // Replaces a hub message's payload with what the hub signed; false (counted) to drop it.
  bool open_hub_message(sync::Message& m);

  AgentConfig config_;
  Store& store_;
  sync::Transport& transport_;
  const Clock& clock_;
  // Shared with the transport's callbacks, which may outlive the Agent by a moment.
  std::shared_ptr<LoopQueue> queue_ = std::make_shared<LoopQueue>();
  NodeProbeChecker probe_checker_;
  Prober prober_;
  Reconciler reconciler_;
  SyncClient sync_;
  sync::Transport* devices_;
  TwinSync twins_;
  std::unique_ptr<ota::Updater> updater_;
  std::unique_ptr<OtaSync> ota_;
  // Checks the hub's signatures (--hub-public-key); null: messages are taken as they come.
  std::unique_ptr<sync::Verifier> verifier_;
  bool warned_unverified_ = false;
  TimePoint next_tick_{};
  bool started_ = false;
  // Last: joined first on destruction, before what its probe checks use goes away.
  WorkerPool probe_workers_{2, 256};
};

}  // namespace flotilla::agent
