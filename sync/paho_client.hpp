// One Eclipse Paho MQTT client over Paho's C asynchronous API, which is loaded with dlopen when
// the first client is made: libpaho-mqtt3a.so.1 for tcp:// brokers, libpaho-mqtt3as.so.1 (with
// OpenSSL's libssl and libcrypto) only for ssl:// ones. Paho's C++ library links the TLS build
// into every process, and libssl and libcrypto with it: about 2 MiB resident in an idle agent
// that never used TLS (docs/footprint.md).
//
// Paho calls back on its own threads: messages and connection loss through the handlers given
// to create(), a publish's outcome through its done handler. Blocking calls wait at most the
// time given. Thread-safety: a PahoClient may be used from any thread; destroying it stops every
// callback (pending publishes are then abandoned without their done handler running).
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "common/expected.hpp"
#include "sync/transport.hpp"

namespace flotilla::sync {

struct PahoApi;  // the functions of one loaded Paho C library

// What a connect needs beyond the client's URI and id.
struct PahoConnect {
  bool clean_session = true;
  int keepalive_s = 30;
  int connect_timeout_s = 5;
  int max_inflight = 10;
  std::optional<Message> will;  // sent at QoS 1, not retained
  // TLS (ssl:// only): the broker's certificate must chain to ca_file and name the URI's host.
  bool tls = false;
  std::string ca_file, cert_file, key_file;
  std::function<void(const std::string&)> on_tls_error;  // OpenSSL's error texts, as they come
};

class PahoClient {
 public:
  using MessageHandler = std::function<void(Message)>;
  using LostHandler = std::function<void(const std::string& cause)>;
  using DoneHandler = std::function<void(Status)>;

  // Loads the Paho C library the URI needs (once per process) and makes a client that keeps no
  // session state on disk and queues at most `max_buffered` commands.
  // "Failed to create MQTT client for 'tcp://...': ..." when that fails.
  static Expected<std::unique_ptr<PahoClient>> create(const std::string& uri,
                                                      const std::string& client_id,
                                                      int max_buffered, MessageHandler on_message,
                                                      LostHandler on_lost);
  ~PahoClient();
  PahoClient(const PahoClient&) = delete;
  PahoClient& operator=(const PahoClient&) = delete;

  // Errors read "MQTT error [<code>]: <why>"; a connect with no answer in `timeout` says so.
  Status connect(const PahoConnect& options, std::chrono::seconds timeout);
  // A refused subscription (SUBACK 0x80) is an error; no answer within `timeout` is not (0: do
  // not wait; only a request Paho refuses at once is an error then).
  Status subscribe(const std::string& filter, int qos, std::chrono::seconds timeout);
  // Asks the broker to drop a subscription; does not wait for its answer.
  Status unsubscribe(const std::string& filter);
  void disconnect(std::chrono::seconds timeout);
  bool connected() const;
  // Hands one message to Paho. On Ok, `done` runs once Paho knows the outcome; on an error it
  // has run already.
  Status publish(const std::string& topic, const std::string& payload, int qos, bool retained,
                 DoneHandler done);

 private:
  struct Waiter;
  PahoClient(const PahoApi& api, MessageHandler on_message, LostHandler on_lost)
      : api_(api), on_message_(std::move(on_message)), on_lost_(std::move(on_lost)) {}
  std::shared_ptr<Waiter> new_waiter();

  const PahoApi& api_;
  void* handle_ = nullptr;  // MQTTAsync
  MessageHandler on_message_;
  LostHandler on_lost_;
  std::function<void(const std::string&)> on_tls_error_;
  std::mutex waiters_mu_;
  // Outlive a timed-out wait: Paho may still answer it later, until the client is destroyed.
  std::vector<std::shared_ptr<Waiter>> waiters_;
};

}  // namespace flotilla::sync
