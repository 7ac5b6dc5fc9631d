// Transport: publish/subscribe messaging between agents and hub (MQTT in production).
//
// start() returns at once; the transport connects in the background and reconnects forever with
// exponential backoff, renewing its subscriptions on every connect. Handlers run on the
// transport's own thread: keep them short (hand the message to your own loop).
// publish() never blocks on the network; `done` is called once the broker acknowledged a QoS 1
// message (or the QoS 0 message was written), or with an error if it could not be sent.
//
// Thread-safety: all methods may be called from any thread.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "common/expected.hpp"

namespace flotilla::sync {

struct Message {
  std::string topic;
  std::string payload;
  // Delivered because this client subscribed (the broker's retained copy, published before the
  // subscription), not forwarded as it was published.
  bool retained = false;
};

struct TransportOptions {
  std::string server_uri;  // tcp://127.0.0.1:1883
  std::string client_id;
  bool clean_session = true;
  std::chrono::seconds keepalive{10};
  std::chrono::milliseconds min_backoff{200};
  std::chrono::milliseconds max_backoff{5000};
  std::optional<Message> will;  // sent at QoS 1 by the broker on our behalf
  int max_inflight = 1024;
  // TLS, for ssl:// URIs (docs/security.md): PEM files of the CA that signed the broker's
  // certificate, and of this client's certificate and private key (empty: none). The broker's
  // certificate must name the URI's host (subjectAltName). The files are read again at every
  // connect, and the client certificate is checked first: an expired one fails the attempt with
  // an error naming the file and the date (a warning is logged 7 days ahead). While connected,
  // the certificate file is looked at every `cert_check_interval`; when it changed (renewed),
  // the transport reconnects with it.
  std::string tls_ca_file;
  std::string tls_cert_file;
  std::string tls_key_file;
  std::chrono::seconds cert_check_interval{60};
};

class Transport {
 public:
  using MessageHandler = std::function<void(Message)>;
  using ConnectionHandler = std::function<void(bool connected)>;
  using DoneHandler = std::function<void(Status)>;

  virtual ~Transport() = default;

  // Set both before start().
  virtual void set_handlers(MessageHandler on_message, ConnectionHandler on_connection) = 0;
  virtual Status start() = 0;
  virtual void stop() = 0;
  virtual bool connected() const = 0;
  // Remembered and renewed after every reconnect.
  virtual Status subscribe(const std::string& filter, int qos) = 0;
  // Forgets a subscription (every one with this filter) and, when connected, asks the broker to
  // drop it; messages already on their way may still arrive.
  virtual Status unsubscribe(const std::string& filter) = 0;
  virtual Status publish(const std::string& topic, std::string payload, int qos,
                         DoneHandler done = {}) = 0;
  // Publishes at QoS 1 with the retain flag: the broker keeps the last one per topic and hands
  // it to every later subscriber.
  virtual Status publish_retained(const std::string& topic, std::string payload) = 0;
  // Publishes accepted but not yet handed to the network (0 when nothing waits).
  virtual size_t backlog() const { return 0; }
  // Why the last connect attempt failed ("Failed to connect to 'ssl://...': certificate
  // '/etc/flotilla/node.crt' expired on 2026-11-30 12:00 UTC"); empty once connected.
  virtual std::string last_error() const { return ""; }
};

// Checks the TLS part of `options` as the flags --mqtt-ca, --mqtt-cert and --mqtt-key give it
// (agent and hub): the files exist and parse, the key belongs to the certificate, and the URI
// is ssl:// when any is set. An expired certificate is not an error here (the transport keeps
// retrying and picks up a renewed one); its error names the flag and the file.
Status validate_tls_options(const TransportOptions& options);

// MQTT over Eclipse Paho C++.
std::unique_ptr<Transport> make_mqtt_transport(TransportOptions options);

}  // namespace flotilla::sync
