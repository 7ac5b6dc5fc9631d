// Transport over Eclipse Paho MQTT's C asynchronous API (sync/paho_client.hpp).
//
// Paho's own automatic reconnect only starts after a first successful connect, and an agent must
// start while the broker is down, so this adapter runs its own connect loop: one thread that
// (re)connects with exponential backoff, renews subscriptions, and waits for the next loss.
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <random>
#include <thread>
#include <vector>

#include "common/fs.hpp"
#include "common/log.hpp"
#include "common/x509.hpp"
#include "sync/paho_client.hpp"
#include "sync/transport.hpp"

namespace flotilla::sync {
namespace {

// True when something accepts TCP connections at the URI's host:port (within one second).
// Paho C notices a new socket only on its network thread's next cycle (up to a second), so a
// failed attempt through Paho costs about a second; probing first keeps the reconnect loop at
// its backoff while the broker is down. An unparsable URI is left for Paho to judge.
bool broker_reachable(const std::string& uri) {
  auto scheme = uri.find("://");
  std::string rest = scheme == std::string::npos ? uri : uri.substr(scheme + 3);
  auto colon = rest.rfind(':');
  if (colon == std::string::npos) return true;
  std::string host = rest.substr(0, colon), port = rest.substr(colon + 1);
  if (!host.empty() && host.front() == '[') host = host.substr(1, host.size() - 2);
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  if (::getaddrinfo(host.c_str(), port.c_str(), &hints, &res) != 0) return true;
  bool ok = false;
  for (addrinfo* a = res; a != nullptr && !ok; a = a->ai_next) {
    int fd = ::socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) continue;
    if (::connect(fd, a->ai_addr, a->ai_addrlen) == 0) {
      ok = true;
    } else if (errno == EINPROGRESS) {
      pollfd p{fd, POLLOUT, 0};
      int err = 0;
      socklen_t len = sizeof(err);
      ok = ::poll(&p, 1, 1000) == 1 && ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 &&
           err == 0;
    }
    ::close(fd);
  }
  ::freeaddrinfo(res);
  return ok;
}

bool is_tls_uri(const std::string& uri) {
  return uri.rfind("ssl://", 0) == 0 || uri.rfind("mqtts://", 0) == 0;
}

int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// Paho's TLS failures read "TCP/TLS connect failure" whatever went wrong; the OpenSSL errors
// its error handler saw say more. Says what failed in the words of the user's files.
std::string describe_connect_failure(const std::string& paho_what, const std::string& tls_errors,
                                     const TransportOptions& o) {
  auto has = [&](const char* text) { return tls_errors.find(text) != std::string::npos; };
  const std::string cert = "certificate '" + o.tls_cert_file + "'";
  if (has("certificate verify failed")) {
    return "the broker's certificate is not signed by the CA in '" + o.tls_ca_file +
           "' or has expired (" + tls_errors + ")";
  }
  if (has("alert certificate expired")) return "the broker says " + cert + " has expired";
  if (has("alert certificate revoked")) return "the broker says " + cert + " is revoked";
  if (has("alert unknown ca") || has("alert bad certificate") || has("alert certificate unknown") ||
      has("alert decrypt error")) {
    return "the broker refused " + cert + " (not signed by the fleet CA the broker trusts?)";
  }
  if (has("alert certificate required") || has("alert handshake failure")) {
    return o.tls_cert_file.empty()
               ? "the broker wants a client certificate (--mqtt-cert and --mqtt-key)"
               : "TLS handshake refused by the broker (" + tls_errors + ")";
  }
  if (has("SSL_CTX_use_PrivateKey_file")) {
    return "cannot use key '" + o.tls_key_file + "' (" + tls_errors + ")";
  }
  if (has("SSL_CTX_use_certificate_chain_file"))
    return "cannot use " + cert + " (" + tls_errors + ")";
  if (has("SSL_CTX_load_verify_locations")) {
    return "cannot use CA file '" + o.tls_ca_file + "' (" + tls_errors + ")";
  }
  if (paho_what.find("[5]") != std::string::npos ||
      paho_what.find("authori") != std::string::npos) {
    return "not authorized by the broker (" + paho_what + ")";
  }
  if (!tls_errors.empty()) return paho_what + " (" + tls_errors + ")";
  // Under TLS 1.3 the broker checks the client's certificate after the handshake and closes the
  // connection: Paho then reports whichever read failed first ("TCP/TLS connect failure",
  // "socket error", "TCP connect completion failure"). The port accepted TCP (probed before).
  const bool closed = paho_what.find("TCP/TLS") != std::string::npos ||
                      paho_what.find("socket error") != std::string::npos ||
                      paho_what.find("TCP connect completion failure") != std::string::npos;
  if (is_tls_uri(o.server_uri) && closed) {
    return paho_what + " (the broker closed the TLS connection: it may have refused " +
           (o.tls_cert_file.empty() ? std::string("a client without certificate") : cert) + ")";
  }
  return paho_what;
}

class MqttTransport final : public Transport {
 public:
  explicit MqttTransport(TransportOptions opts) : opts_(std::move(opts)), log_(log::get("sync")) {}

  ~MqttTransport() override {
    stop();
    std::lock_guard<std::mutex> lock(client_mu_);
    client_.reset();  // before the members its callbacks use
  }

  void set_handlers(MessageHandler on_message, ConnectionHandler on_connection) override {
    on_message_ = std::move(on_message);
    on_connection_ = std::move(on_connection);
  }

  Status start() override {
    const bool tls_files =
        !opts_.tls_ca_file.empty() || !opts_.tls_cert_file.empty() || !opts_.tls_key_file.empty();
    if (tls_files && !is_tls_uri(opts_.server_uri)) {
      return Error("Failed to start MQTT transport: TLS files given but '" + opts_.server_uri +
                   "' is not an ssl:// URI");
    }
    if (opts_.tls_cert_file.empty() != opts_.tls_key_file.empty()) {
      return Error(
          "Failed to start MQTT transport: a client certificate needs its key and a key "
          "its certificate");
    }
    auto first = make_client();
    if (!first) return first.error();
    {
      std::lock_guard<std::mutex> lock(client_mu_);
      client_ = std::move(*first);
      client_used_ = false;
    }
    running_ = true;
    {
      std::lock_guard<std::mutex> lock(send_mu_);
      sending_ = true;
    }
    worker_ = std::thread([this] { connect_loop(); });
    sender_ = std::thread([this] { send_loop(); });
    return Ok();
  }

  void stop() override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!running_) return;
      running_ = false;
    }
    cv_.notify_all();
    if (worker_.joinable()) worker_.join();
    {
      std::lock_guard<std::mutex> lock(send_mu_);
      sending_ = false;
    }
    send_cv_.notify_all();
    if (sender_.joinable()) sender_.join();
    if (auto c = client(); c && c->connected()) c->disconnect(std::chrono::seconds(2));
    connected_ = false;
    std::lock_guard<std::mutex> lock(send_mu_);
    ++generation_;  // stopped: what waits is not sent, and nobody waits for its outcome
    waiting_.clear();
    with_paho_ = 0;
  }

  bool connected() const override { return connected_; }

  std::string last_error() const override {
    std::lock_guard<std::mutex> lock(error_mu_);
    return last_error_;
  }

  size_t backlog() const override {
    std::lock_guard<std::mutex> lock(send_mu_);
    return waiting_.size();
  }

  Status subscribe(const std::string& filter, int qos) override {
    {
      // Decided under the lock connect_loop() marks the connection up under: a subscription
      // made while connecting is either in what that connect renewed or made up by it.
      std::lock_guard<std::mutex> lock(mu_);
      subscriptions_.emplace_back(filter, qos);
      if (!connected_) return Ok();  // renewed on connect
    }
    if (auto c = client()) {
      if (auto st = c->subscribe(filter, qos, std::chrono::seconds(0)); !st) {
        return Error("Failed to subscribe to '" + filter + "': " + st.error().message());
      }
    }
    return Ok();
  }

  Status unsubscribe(const std::string& filter) override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      std::erase_if(subscriptions_, [&](const auto& s) { return s.first == filter; });
      if (!connected_) return Ok();  // not renewed on connect
    }
    if (auto c = client()) {
      if (auto st = c->unsubscribe(filter); !st) {
        return Error("Failed to unsubscribe from '" + filter + "': " + st.error().message());
      }
    }
    return Ok();
  }

  Status publish_retained(const std::string& topic, std::string payload) override {
    return send({topic, std::move(payload), 1, true, {}});
  }

  Status publish(const std::string& topic, std::string payload, int qos,
                 DoneHandler done) override {
    return send({topic, std::move(payload), qos, false, std::move(done)});
  }

 private:
  // A Paho client for one connection. Every (re)connect after the first gets a new one: Paho C
  // keeps unacknowledged publishes of a persistent session and resends them on reconnect, and
  // after a broker restart during a burst that state was seen to hold a packet mosquitto calls
  // malformed, which it then resent on every reconnect (the hub never got back). Dropping it is
  // safe: what was unacknowledged is resent by the protocol, and the broker-side session (our
  // subscriptions' queued messages) stays, as it is keyed by client id.
  Expected<std::shared_ptr<PahoClient>> make_client() {
    // Paho queues publishes until the network thread writes them; its default cap (100) would
    // refuse bursts, so the cap follows max_inflight. We never send while disconnected: the
    // caller's own outbox keeps what has not been acknowledged.
    auto c = PahoClient::create(
        opts_.server_uri, opts_.client_id, std::max(opts_.max_inflight, 100) * 16,
        [this](Message m) {
          if (on_message_) on_message_(std::move(m));
        },
        [this](const std::string& cause) {
          log_->warn("mqtt connection lost server={} cause='{}'", opts_.server_uri, cause);
          mark_disconnected();
        });
    if (!c) return c.error();
    return std::shared_ptr<PahoClient>(std::move(*c));
  }

  std::shared_ptr<PahoClient> client() const {
    std::lock_guard<std::mutex> lock(client_mu_);
    return client_;
  }

  // Paho C looks for a free message id by walking its whole command queue on every publish, so
  // a burst handed to it at once costs time quadratic in the burst (100k desired states: over a
  // minute). At most kPahoWindow publishes are with Paho at a time; the rest wait here in order
  // and go as earlier ones complete.
  static constexpr size_t kPahoWindow = 512;
  struct Waiting {
    std::string topic;
    std::string payload;
    int qos = 1;
    bool retained = false;
    DoneHandler done;
  };

  Status send(Waiting msg) {
    if (!connected_ || !client()) {
      Status st = Error("Failed to publish to '" + msg.topic + "': not connected");
      if (msg.done) msg.done(st);
      return st;
    }
    uint64_t generation = 0;
    {
      std::lock_guard<std::mutex> lock(send_mu_);
      // While the sender thread hands a batch over (outside the lock), a direct hand-off here
      // would overtake it: publishes must reach Paho in the order they were made.
      if (with_paho_ >= kPahoWindow || !waiting_.empty() || handing_) {
        waiting_.push_back(std::move(msg));
        send_cv_.notify_all();
        return Ok();
      }
      ++with_paho_;
      generation = generation_;
    }
    return hand_to_paho(std::move(msg), generation);
  }

  Status hand_to_paho(Waiting msg, uint64_t generation) {
    auto done = [this, done = std::move(msg.done), generation](Status s) {
      if (done) done(s);
      completed(generation);
    };
    auto c = client();
    if (!c) {
      Status st = Error("Failed to publish to '" + msg.topic + "': no client");
      done(st);
      return st;
    }
    return c->publish(msg.topic, msg.payload, msg.qos, msg.retained, std::move(done));
  }

  // A publish handed to Paho finished (on Paho's thread). The next ones are handed over by
  // send_loop(), never from here: publishing from inside Paho's callbacks, while it may be
  // tearing a connection down, is where Paho's own state can go wrong.
  void completed(uint64_t generation) {
    {
      std::lock_guard<std::mutex> lock(send_mu_);
      if (generation != generation_) return;  // from before a disconnect: already written off
      --with_paho_;
    }
    send_cv_.notify_all();
  }

  void send_loop() {
    std::unique_lock<std::mutex> lock(send_mu_);
    while (sending_) {
      send_cv_.wait(
          lock, [this] { return !sending_ || (!waiting_.empty() && with_paho_ < kPahoWindow); });
      if (!sending_) break;
      std::vector<Waiting> next;
      while (with_paho_ < kPahoWindow && !waiting_.empty()) {
        next.push_back(std::move(waiting_.front()));
        waiting_.pop_front();
        ++with_paho_;
      }
      const uint64_t generation = generation_;
      handing_ = true;
      lock.unlock();
      for (auto& w : next) (void)hand_to_paho(std::move(w), generation);
      lock.lock();
      handing_ = false;
    }
  }

  // On disconnect: what waits here is failed (callers resend by protocol), and what Paho holds
  // no longer counts against the window.
  void fail_waiting() {
    std::deque<Waiting> failed;
    {
      std::lock_guard<std::mutex> lock(send_mu_);
      ++generation_;
      with_paho_ = 0;
      failed.swap(waiting_);
    }
    for (auto& w : failed) {
      if (w.done) w.done(Error("Failed to publish to '" + w.topic + "': disconnected"));
    }
  }

  void mark_disconnected() {
    fail_waiting();
    bool was = connected_.exchange(false);
    if (was && on_connection_) on_connection_(false);
    cv_.notify_all();
  }

  // Records why a connect attempt failed; logged when the reason changes (the reconnect loop
  // would repeat it every few seconds), then at debug.
  void connect_failed(const std::string& why, bool loud) {
    const std::string message = "Failed to connect to '" + opts_.server_uri + "': " + why;
    bool changed = false;
    {
      std::lock_guard<std::mutex> lock(error_mu_);
      changed = message != last_error_;
      last_error_ = message;
    }
    if (changed && loud) {
      log_->error("{}", message);
    } else {
      log_->debug("{}", message);
    }
  }

  // The client certificate, checked before a connect: readable, its key beside it, and valid
  // now. Returns its PEM text (to notice a renewal later).
  Expected<std::string> check_client_certificate() {
    auto pem = fs::read_file(opts_.tls_cert_file);
    if (!pem) {
      return Error("Failed to read certificate '" + opts_.tls_cert_file +
                   "': " + pem.error().message());
    }
    if (auto st = x509::check_certificate_valid(opts_.tls_cert_file, unix_now()); !st) {
      return st.error();
    }
    if (auto st = x509::check_key_matches(opts_.tls_cert_file, opts_.tls_key_file); !st) {
      return st.error();
    }
    auto info = x509::parse_certificate(*pem);
    if (info && info->not_after - unix_now() < 7 * 86'400 && warned_not_after_ != info->not_after) {
      warned_not_after_ = info->not_after;
      log_->warn("mqtt client certificate '{}' expires on {}: renew it (docs/security.md)",
                 opts_.tls_cert_file, x509::format_utc(info->not_after));
    }
    return pem;
  }

  // OpenSSL's errors as Paho reports them during a connect attempt.
  void add_tls_error(const std::string& text) {
    std::lock_guard<std::mutex> lock(error_mu_);
    if (tls_errors_.size() < 1024) tls_errors_ += (tls_errors_.empty() ? "" : "; ") + text;
  }

  std::string take_tls_errors() {
    std::lock_guard<std::mutex> lock(error_mu_);
    std::string out;
    out.swap(tls_errors_);
    return out;
  }

  bool try_connect() {
    const bool tls = is_tls_uri(opts_.server_uri);
    std::string cert_pem;
    if (tls && !opts_.tls_cert_file.empty()) {
      auto checked = check_client_certificate();
      if (!checked) {
        connect_failed(checked.error().message(), true);
        return false;
      }
      cert_pem = std::move(*checked);
    }
    if (!broker_reachable(opts_.server_uri)) {
      connect_failed("nothing accepts connections there", false);
      return false;
    }
    PahoConnect connect;
    connect.clean_session = opts_.clean_session;
    connect.keepalive_s = static_cast<int>(opts_.keepalive.count());
    connect.connect_timeout_s = 5;
    connect.max_inflight = opts_.max_inflight;
    connect.will = opts_.will;
    if (tls) {
      connect.tls = true;
      connect.ca_file = opts_.tls_ca_file;
      connect.cert_file = opts_.tls_cert_file;
      connect.key_file = opts_.tls_key_file;
      connect.on_tls_error = [this](const std::string& text) { add_tls_error(text); };
    }
    (void)take_tls_errors();
    std::shared_ptr<PahoClient> c;
    {
      std::lock_guard<std::mutex> lock(client_mu_);
      if (client_used_) {
        auto fresh = make_client();
        if (!fresh) {
          log_->warn("{}", fresh.error().message());
          return false;
        }
        // Publishes still held by the old client are abandoned with it (see make_client()).
        client_ = std::move(*fresh);
      }
      client_used_ = true;
      c = client_;
    }
    if (auto st = c->connect(connect, std::chrono::seconds(6)); !st || !c->connected()) {
      const std::string why = st ? "no answer within 6 s" : st.error().message();
      connect_failed(describe_connect_failure(why, take_tls_errors(), opts_), tls);
      return false;
    }
    std::vector<std::pair<std::string, int>> subs;
    {
      std::lock_guard<std::mutex> lock(mu_);
      subs = subscriptions_;
      renewed_ = subs;
    }
    for (const auto& [filter, qos] : subs) {
      // A broker with topic ACLs refuses a filter beyond the client's rights (SUBACK 0x80):
      // that one subscription is lost, not the connection.
      auto st = c->subscribe(filter, qos, std::chrono::seconds(5));
      if (st) continue;
      if (!c->connected()) {
        connect_failed(describe_connect_failure(st.error().message(), take_tls_errors(), opts_),
                       tls);
        return false;
      }
      log_->warn(
          "mqtt subscription refused filter='{}' error='{}' (not allowed by the broker's ACL?)",
          filter, st.error().message());
    }
    {
      std::lock_guard<std::mutex> lock(error_mu_);
      last_error_.clear();
    }
    connected_cert_pem_ = std::move(cert_pem);
    return true;
  }

  // While connected over TLS: whether the client certificate file now holds another valid
  // certificate (renewed) whose key is in place, so a reconnect will use it.
  bool certificate_renewed() {
    if (opts_.tls_cert_file.empty() || connected_cert_pem_.empty()) return false;
    auto pem = fs::read_file(opts_.tls_cert_file);
    if (!pem || *pem == connected_cert_pem_) return false;
    if (auto st = x509::check_certificate_valid(opts_.tls_cert_file, unix_now()); !st) {
      log_->warn("mqtt client certificate '{}' changed but is not usable: {}", opts_.tls_cert_file,
                 st.error().message());
      return false;
    }
    if (auto st = x509::check_key_matches(opts_.tls_cert_file, opts_.tls_key_file); !st) {
      log_->debug("mqtt client certificate changed, key not yet: {}", st.error().message());
      return false;  // the key may be on its way: looked at again at the next check
    }
    return true;
  }

  // Drops the connection so that the next connect uses the renewed certificate.
  void reconnect_for_renewal() {
    log_->info("mqtt client certificate '{}' renewed: reconnecting with it", opts_.tls_cert_file);
    if (auto c = client()) c->disconnect(std::chrono::seconds(2));
    mark_disconnected();
  }

  void connect_loop() {
    auto backoff = opts_.min_backoff;
    std::unique_lock<std::mutex> lock(mu_);
    while (running_) {
      if (connected_) {
        if (opts_.tls_cert_file.empty()) {
          cv_.wait(lock, [this] { return !running_ || !connected_; });
        } else if (!cv_.wait_for(lock, opts_.cert_check_interval,
                                 [this] { return !running_ || !connected_; })) {
          lock.unlock();
          if (certificate_renewed()) reconnect_for_renewal();
          lock.lock();
        }
        continue;
      }
      lock.unlock();
      bool ok = try_connect();
      lock.lock();
      if (!running_) break;
      if (ok) {
        backoff = opts_.min_backoff;
        connected_ = true;
        // What subscribe() and unsubscribe() changed after try_connect() renewed the
        // subscriptions and before the line above: they left it to this connect.
        std::vector<std::pair<std::string, int>> added, removed;
        for (const auto& s : subscriptions_) {
          if (std::find(renewed_.begin(), renewed_.end(), s) == renewed_.end()) added.push_back(s);
        }
        for (const auto& s : renewed_) {
          if (std::find(subscriptions_.begin(), subscriptions_.end(), s) == subscriptions_.end()) {
            removed.push_back(s);
          }
        }
        log_->info("mqtt connected server={} client={}", opts_.server_uri, opts_.client_id);
        lock.unlock();
        if (auto c = client()) {
          for (const auto& [filter, qos] : added)
            (void)c->subscribe(filter, qos, std::chrono::seconds(0));
          for (const auto& s : removed) (void)c->unsubscribe(s.first);
        }
        if (on_connection_) on_connection_(true);
        lock.lock();
        continue;
      }
      // Full jitter in [backoff/2, backoff]: a fleet that lost its broker together must not
      // come back in lockstep.
      auto wait =
          backoff / 2 + std::chrono::milliseconds(jitter_(rng_) % (backoff.count() / 2 + 1));
      cv_.wait_for(lock, wait, [this] { return !running_; });
      backoff = std::min(backoff * 2, opts_.max_backoff);
    }
  }

  TransportOptions opts_;
  std::shared_ptr<spdlog::logger> log_;
  mutable std::mutex client_mu_;  // guards the two below
  std::shared_ptr<PahoClient> client_;
  bool client_used_ = false;  // a connect was tried with client_: the next gets a new one
  MessageHandler on_message_;
  ConnectionHandler on_connection_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::pair<std::string, int>> subscriptions_;
  std::vector<std::pair<std::string, int>> renewed_;  // what the last connect subscribed to
  mutable std::mutex send_mu_;                        // guards sending_ .. handing_ below
  std::condition_variable send_cv_;
  bool sending_ = false;  // send_loop() runs
  std::deque<Waiting> waiting_;
  size_t with_paho_ = 0;     // publishes handed to Paho and not yet completed
  uint64_t generation_ = 0;  // raised at each disconnect
  bool handing_ = false;     // send_loop() is handing a batch to Paho (outside the lock)
  std::atomic<bool> connected_{false};
  bool running_ = false;
  std::thread worker_;
  std::thread sender_;           // hands waiting publishes to Paho
  mutable std::mutex error_mu_;  // guards the two below
  std::string last_error_;       // why the last connect attempt failed
  std::string tls_errors_;       // OpenSSL errors Paho reported during this attempt
  // Used by the connect loop's thread only:
  std::string connected_cert_pem_;  // the client certificate of the current connection
  int64_t warned_not_after_ = 0;    // expiry already warned about
  std::mt19937_64 rng_{std::random_device{}()};
  std::uniform_int_distribution<int64_t> jitter_{0, INT64_MAX};
};

}  // namespace

Status validate_tls_options(const TransportOptions& o) {
  const bool any = !o.tls_ca_file.empty() || !o.tls_cert_file.empty() || !o.tls_key_file.empty();
  if (!any) return Ok();
  if (!is_tls_uri(o.server_uri)) {
    return Error("flags --mqtt-ca/--mqtt-cert/--mqtt-key want an ssl://HOST:PORT broker, got '" +
                 o.server_uri + "'");
  }
  if (o.tls_ca_file.empty()) return Error("flag '--mqtt-ca' is needed with an ssl:// broker");
  if (auto ca = x509::read_certificate(o.tls_ca_file); !ca) {
    return Error("invalid --mqtt-ca: " + ca.error().message());
  }
  if (o.tls_cert_file.empty() != o.tls_key_file.empty()) {
    return Error("flags '--mqtt-cert' and '--mqtt-key' go together");
  }
  if (o.tls_cert_file.empty()) return Ok();
  if (auto cert = x509::read_certificate(o.tls_cert_file); !cert) {
    return Error("invalid --mqtt-cert: " + cert.error().message());
  }
  if (auto st = x509::check_key_matches(o.tls_cert_file, o.tls_key_file); !st) {
    return Error("invalid --mqtt-key: " + st.error().message());
  }
  return Ok();
}

std::unique_ptr<Transport> make_mqtt_transport(TransportOptions options) {
  return std::make_unique<MqttTransport>(std::move(options));
}

}  // namespace flotilla::sync
