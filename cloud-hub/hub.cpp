#include "cloud-hub/hub.hpp"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>

#include "cloud-hub/store_pg.hpp"
#include "common/fs.hpp"
#include "common/log.hpp"
#include "common/thread_name.hpp"
#include "sync/signed.hpp"

namespace flotilla::hub {

Status parse_listen(const std::string& text, std::string* host, int* port) {
  auto colon = text.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == text.size()) {
    return Error("want HOST:PORT (e.g. 127.0.0.1:8080), got '" + text + "'");
  }
  const std::string port_text = text.substr(colon + 1);
  char* end = nullptr;
  long v = std::strtol(port_text.c_str(), &end, 10);
  if (*end != '\0' || v < 0 || v > 65535) {
    return Error("port must be a number from 0 to 65535, got '" + port_text + "'");
  }
  *host = text.substr(0, colon);
  *port = static_cast<int>(v);
  return Ok();
}

Expected<double> parse_share(const std::string& text) {
  const bool percent = !text.empty() && text.back() == '%';
  const std::string number = percent ? text.substr(0, text.size() - 1) : text;
  char* end = nullptr;
  double v = number.empty() ? -1 : std::strtod(number.c_str(), &end);
  if (percent) v /= 100;
  if (number.empty() || *end != '\0' || !(v >= 0 && v <= 1)) {
    return Error("want a share from 0 to 1 (e.g. 0.5) or a percentage (e.g. 50%), got '" + text +
                 "'");
  }
  return v;
}

Expected<std::unique_ptr<Hub>> Hub::create(HubOptions options,
                                           std::unique_ptr<sync::Transport> transport) {
  std::unique_ptr<Hub> hub(new Hub());
  hub->options_ = std::move(options);
  const HubOptions& o = hub->options_;
  if (auto st = fs::make_dirs(o.data_dir); !st) {
    return st.error().WithContext("Failed to create data folder '" + o.data_dir + "'");
  }
  StoreOptions store_options;
  store_options.tombstone_retention = o.tombstone_retention;
  auto stores = o.store.empty() ? open_hub_stores(o.data_dir, o.shards, store_options)
                                : open_postgres_hub_stores(o.store, o.shards, store_options);
  if (!stores) return stores.error();
  hub->stores_ = std::move(*stores);
  std::string instance = o.instance_id;
  if (!o.store.empty()) {
    if (instance.empty()) instance = fs::host_name("hub") + "-" + std::to_string(getpid());
    ShardLeaseOptions l;
    l.conninfo = o.store;
    l.instance_id = instance;
    l.shards = o.shards;
    l.lease_period = o.lease_period;
    Hub* self = hub.get();
    l.before_release = [self](uint32_t shard) { self->let_go_shard(shard); };
    auto leases = ShardLeases::create(std::move(l), hub->clock_);
    if (!leases) return leases.error();
    hub->leases_ = std::move(*leases);
  }
  if (!transport) {
    sync::TransportOptions t;
    t.server_uri = o.mqtt_uri;
    t.tls_ca_file = o.mqtt_ca_file;
    t.tls_cert_file = o.mqtt_cert_file;
    t.tls_key_file = o.mqtt_key_file;
    t.client_id = "flotilla-hub";
    t.clean_session = false;  // the broker queues agents' QoS 1 messages while the hub restarts
    if (hub->leases_) {
      // One of several instances: a client of its own, and no session for the broker to keep
      // queueing into after this process is gone (its shards move to the others, whose
      // announcement makes the agents send their state again).
      t.client_id = "flotilla-hub-" + instance;
      t.clean_session = true;
    }
    // One client: retrying four times a second costs nothing and keeps the hub deaf for at
    // most a quarter second after the broker returns.
    t.max_backoff = std::chrono::milliseconds(250);
    transport = sync::make_mqtt_transport(t);
  }
  if (!o.signing_key_file.empty()) {
    auto signer = sync::Signer::from_files(o.signing_key_file, o.previous_signing_key_file);
    if (!signer) return signer.error();
    log::get("hub")->info(
        "signing messages to agents key={}{}", signer->key_id(),
        o.previous_signing_key_file.empty() ? "" : " (endorsed by the previous key)");
    transport = sync::make_signing_transport(
        std::move(transport), std::make_shared<const sync::Signer>(std::move(*signer)));
  }
  hub->transport_ = std::move(transport);
  ControllerOptions c;
  c.shards = o.shards;
  c.node_timeout = o.node_timeout;
  c.resend_interval = o.resend_interval;
  c.max_disruption = o.max_disruption;
  c.recovery_grace = o.recovery_grace;
  c.desired_qos = o.desired_qos;
  std::vector<Store*> shard_stores;
  for (auto& s : hub->stores_.shards) shard_stores.push_back(s.get());
  hub->controller_ = std::make_unique<Controller>(*hub->stores_.control, shard_stores, hub->clock_,
                                                  *hub->transport_, hub->metrics_, c);
  hub->sync_ =
      std::make_unique<SyncServer>(*hub->transport_, *hub->controller_, hub->metrics_, o.shards);
  if (hub->leases_) {
    for (uint32_t s = 0; s < o.shards; ++s) hub->sync_->set_owned(s, false);  // until leased
  }
  auto artifacts = ArtifactStore::open(
      o.artifacts_dir.empty() ? o.data_dir + "/artifacts" : o.artifacts_dir, o.ota_public_key_pem);
  if (!artifacts) return artifacts.error();
  hub->artifacts_ = std::move(*artifacts);
  UpdateRolloutsOptions r;
  r.db_path = o.data_dir + "/rollouts.db";
  r.public_url = o.public_url;
  r.shards = o.shards;
  hub->rollouts_ = std::make_unique<UpdateRollouts>(hub->clock_, *hub->transport_, *hub->artifacts_,
                                                    *hub->controller_, r);
  if (hub->leases_) {
    // With several instances, one drives the rollouts (the holder of shard 0's lease: see
    // apply_lease_changes), kept in the shared database; it hears every node's hellos and
    // update reports while its rollouts need them (docs/multi-hub.md).
    SyncServer* sync = hub->sync_.get();
    hub->rollouts_->set_reach_listener([sync](bool on) { sync->set_fleet_updates(on); });
    hub->rollouts_->set_driving(false);
    auto conn = db::open_postgres(o.store, "ota");
    if (!conn) return conn.error().WithContext("Failed to open the rollouts' database");
    if (auto st = hub->rollouts_->open(std::move(*conn)); !st) return st.error();
  } else if (auto st = hub->rollouts_->open(); !st) {
    return st.error();
  }
  hub->sync_->set_rollouts(hub->rollouts_.get());
  SyncServer* sync_server = hub->sync_.get();  // outlives every scrape: stopped after HTTP
  hub->metrics_.add_source([sync_server] { return sync_server->gauges_text(); });
  if (ShardLeases* leases = hub->leases_.get()) {
    const uint32_t shards = o.shards;
    UpdateRollouts* rollouts = hub->rollouts_.get();
    hub->metrics_.add_source([leases, shards, rollouts] {
      const auto owned = leases->owned();
      std::string text =
          "# TYPE flotilla_hub_rollouts_driving gauge\nflotilla_hub_rollouts_driving " +
          std::string(rollouts->driving() ? "1" : "0") +
          "\n# TYPE flotilla_hub_shards_owned gauge\nflotilla_hub_shards_owned " +
          std::to_string(owned.size()) + "\n# TYPE flotilla_hub_shard_owned gauge\n";
      for (uint32_t s = 0; s < shards; ++s) {
        text += "flotilla_hub_shard_owned{shard=\"" + std::to_string(s) + "\"} " +
                (owned.count(s) != 0 ? "1\n" : "0\n");
      }
      return text;
    });
  }
  // Watch versions start at the wall clock in microseconds, so a version handed out by an
  // earlier hub process is older than any of this one's and a watch resuming from it is told to
  // list again.
  WatchLogOptions w;
  w.first_version = static_cast<uint64_t>(hub->clock_.wall_ms()) * 1000;
  hub->watch_ = std::make_unique<WatchLog>(w);
  hub->watch_feeder_ =
      std::make_unique<WatchFeeder>(*hub->watch_, *hub->controller_, hub->metrics_);
  ChangeListener to_watchers = hub->watch_feeder_->listener();
  if (ShardLeases* leases = hub->leases_.get()) {
    // A write to a shard this instance owns commits only while its lease is still the
    // database's (fencing: docs/multi-hub.md).
    hub->controller_->set_shard_fence([leases, instance](uint32_t shard, Store& store) -> Status {
      const auto owned = leases->owned();
      auto held = owned.find(shard);
      if (held == owned.end()) {
        return Error("this instance holds no lease of shard " + std::to_string(shard));
      }
      return store.check_lease(shard, instance, held->second.epoch);
    });
    // Our changes to the other instances' watchers and theirs to ours. After a gap in what they
    // told us, our watchers list again (HTTP 410, as for a version too old).
    ChangeFeedOptions f;
    f.conninfo = o.store;
    WatchLog* watch = hub->watch_.get();
    auto feed = ChangeFeed::start(f, to_watchers, [watch] { watch->lose_history(); });
    if (!feed) return feed.error();
    hub->changes_ = std::move(*feed);
    ChangeFeed* changes = hub->changes_.get();
    hub->controller_->set_change_listener([to_watchers, changes](const std::set<Change>& noted) {
      to_watchers(noted);
      changes->publish(noted);
    });
    hub->metrics_.add_source([changes] {
      const ChangeFeedStats s = changes->stats();
      std::string text;
      auto counter = [&text](const char* name, uint64_t v) {
        text +=
            std::string("# TYPE ") + name + " counter\n" + name + " " + std::to_string(v) + "\n";
      };
      counter("flotilla_hub_change_feed_published_total", s.published);
      counter("flotilla_hub_change_feed_received_total", s.received);
      counter("flotilla_hub_change_feed_rejected_total", s.rejected);
      counter("flotilla_hub_change_feed_gaps_total", s.gaps);
      return text;
    });
  } else {
    hub->controller_->set_change_listener(to_watchers);
  }
  hub->watch_feeder_->set_rollouts(hub->rollouts_.get());
  hub->rollouts_->set_change_listener(hub->watch_feeder_->listener());
  if (!o.api_tokens_file.empty()) {
    auto tokens = TokenTable::load(o.api_tokens_file);
    if (!tokens) return tokens.error();
    hub->tokens_ = std::make_unique<TokenTable>(std::move(*tokens));
  }
  // One audit log for every instance sharing the database.
  auto audit = o.store.empty() ? AuditLog::open(o.data_dir + "/audit.db") : [&] {
    auto conn = db::open_postgres(o.store, "audit");
    return conn ? AuditLog::open(std::move(*conn))
                : Expected<std::unique_ptr<AuditLog>>(
                      conn.error().WithContext("Failed to open the audit log"));
  }();
  if (!audit) return audit.error();
  hub->audit_ = std::move(*audit);
  if (o.api_tls_cert.empty() != o.api_tls_key.empty()) {
    return Error("Failed to set up HTTPS for the API: give both a certificate and a key");
  }
  if (!o.api_tls_cert.empty()) {
    auto https =
        std::make_unique<httplib::SSLServer>(o.api_tls_cert.c_str(), o.api_tls_key.c_str());
    if (!https->is_valid()) {
      return Error("Failed to set up HTTPS for the API: cannot load certificate '" +
                   o.api_tls_cert + "' with key '" + o.api_tls_key +
                   "' (missing, not PEM, or not a pair)");
    }
    hub->http_ = std::move(https);
  } else {
    hub->http_ = std::make_unique<httplib::Server>();
  }
  hub->api_ = std::make_unique<Api>(*hub->controller_, hub->metrics_, *hub->watch_);
  hub->api_->set_auth(hub->tokens_.get(), hub->audit_.get());
  hub->api_->set_ota(hub->artifacts_.get(), hub->rollouts_.get());
  if (ShardLeases* leases = hub->leases_.get()) {
    UpdateRollouts* rollouts = hub->rollouts_.get();
    hub->api_->set_forwarding({[leases, rollouts]() -> ForwardTarget {
                                 if (rollouts->driving()) return {};
                                 return {false, leases->leader().api_url};
                               },
                               instance, o.api_tls_cert});
  }
  hub->api_->set_admission(o.admission);
  if (o.admission) {
    log::get("hub")->info("admission policy loaded file={} rules={}", o.admission->source,
                          o.admission->rules.size());
  }
  // The store is open once the hub exists; MQTT comes and goes.
  sync::Transport* t = hub->transport_.get();
  hub->api_->set_readiness(
      [t]() -> std::string { return t->connected() ? "" : "MQTT broker not connected"; });
  return hub;
}

Hub::~Hub() { stop(); }

Status Hub::start() {
  auto log = log::get("hub");
  if (auto st = controller_->start(stores_.rebuilt); !st) return st;
  // What exists now, so that the first change of an existing object is MODIFIED, not ADDED.
  if (auto st = seed_watch_log(*watch_, *controller_, rollouts_.get()); !st) {
    metrics_.count("flotilla_hub_store_errors_total");
    log->warn("watchers may see existing objects as ADDED error='{}'", st.error().message());
  }
  api_->install(*http_);
  const std::string& host = options_.listen_host;
  if (options_.listen_port == 0) {
    port_ = http_->bind_to_any_port(host);
    if (port_ <= 0) return Error("Failed to listen on '" + host + ":0': cannot bind");
  } else if (!http_->bind_to_port(host, options_.listen_port)) {
    return Error("Failed to listen on '" + host + ":" + std::to_string(options_.listen_port) +
                 "': address in use or not available");
  } else {
    port_ = options_.listen_port;
  }
  const std::string scheme = options_.api_tls_cert.empty() ? "http://" : "https://";
  if (options_.public_url.empty()) {
    rollouts_->set_public_url(scheme + host + ":" + std::to_string(port_));
  }
  if (leases_) {
    std::string url = options_.instance_url;
    if (url.empty()) {
      const bool wildcard = host == "0.0.0.0" || host == "::" || host.empty();
      url = scheme + (wildcard ? fs::host_name("localhost") : host) + ":" + std::to_string(port_);
    }
    leases_->set_api_url(url);
  }
  if (leases_) {
    for (uint32_t s = 0; s < options_.shards; ++s) controller_->set_shard_owned(s, false);
  }
  if (auto st = sync_->start(); !st) return st;
  started_ = true;
  if (leases_) {
    // The first tick now: alone, this instance takes every free shard before serving.
    apply_lease_changes(leases_->tick());
    lease_thread_ = std::thread([this] {
      set_thread_name("hub-leases");
      std::unique_lock<std::mutex> lock(timer_mu_);
      while (!stopping_) {
        timer_cv_.wait_for(lock, options_.lease_period / 3);
        if (stopping_) break;
        lock.unlock();
        apply_lease_changes(leases_->tick());
        lock.lock();
      }
      lock.unlock();
      // Hands the shards over at once (each through let_go_shard) instead of after an expiry.
      if (auto left = leases_->leave(); !left) {
        log::get("hub")->warn("leaving the shard leases failed error='{}'", left.error().message());
      }
    });
  }
  http_thread_ = std::thread([this] {
    set_thread_name("hub-http");
    http_->listen_after_bind();
  });
  timer_thread_ = std::thread([this] {
    set_thread_name("hub-timer");
    std::unique_lock<std::mutex> lock(timer_mu_);
    while (!stopping_) {
      timer_cv_.wait_for(lock, std::chrono::seconds(1));
      if (stopping_) break;
      lock.unlock();
      controller_->tick();
      rollouts_->tick();
      lock.lock();
    }
  });
  log->info("hub started listen={}:{} mqtt={} data={} shards={} api={} auth={}", host, port_,
            options_.mqtt_uri, options_.data_dir, options_.shards,
            options_.api_tls_cert.empty() ? "http" : "https",
            tokens_ ? std::to_string(tokens_->size()) + " tokens" : std::string("off"));
  if (!tokens_) {
    log->warn(
        "API authentication is off: anyone who reaches {}:{} can read and change the "
        "fleet; give --api-tokens FILE (docs/hub.md \"API authentication and audit\")",
        host, port_);
  }
  return Ok();
}

void Hub::take_shard(uint32_t shard) {
  controller_->set_shard_owned(shard, true);  // its nodes, heard from now
  sync_->set_owned(shard, true);              // subscribe, then announce: the agents say hello
}

void Hub::let_go_shard(uint32_t shard) {
  if (shard == 0) rollouts_->set_driving(false);  // before the next holder can load them
  if (!sync_->owned(shard)) return;
  sync_->set_owned(shard, false);  // unsubscribe, drop what was queued
  controller_->set_shard_owned(shard, false);
}

void Hub::apply_lease_changes(const LeaseChanges& changes) {
  auto log = log::get("hub");
  if (!changes.status) {
    log->warn("shard lease tick failed error='{}'", changes.status.error().message());
  }
  for (uint32_t shard : changes.lost) let_go_shard(shard);
  for (const auto& lease : changes.acquired) {
    log->info("shard lease acquired shard={} epoch={}", lease.shard, lease.epoch);
    take_shard(lease.shard);
    if (lease.shard != 0) continue;
    // Shard 0's holder drives the rollouts; each save re-checks that it still holds the lease.
    rollouts_->set_driving(true, [leases = leases_.get(), epoch = lease.epoch](db::Conn& c) {
      return db::check_lease(c, 0, leases->instance_id(), epoch);
    });
  }
  if (!changes.acquired.empty()) {
    metrics_.count("flotilla_hub_shard_leases_acquired_total", {}, changes.acquired.size());
  }
  if (!changes.lost.empty()) {
    metrics_.count("flotilla_hub_shard_leases_lost_total", {}, changes.lost.size());
  }
}

void Hub::stop() {
  if (!started_) return;
  started_ = false;
  {
    std::lock_guard<std::mutex> lock(timer_mu_);
    stopping_ = true;
  }
  timer_cv_.notify_all();
  http_->stop();
  watch_->close();  // ends the open watches now; httplib waits for its threads
  if (http_thread_.joinable()) http_thread_.join();
  if (timer_thread_.joinable()) timer_thread_.join();
  if (lease_thread_.joinable()) lease_thread_.join();
  transport_->stop();
  sync_->stop();                   // after the transport: nothing more can be queued
  if (changes_) changes_->stop();  // sends what is still queued
  watch_feeder_->stop();
  log::get("hub")->info("hub stopped");
}

}  // namespace flotilla::hub
