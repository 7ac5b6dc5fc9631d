#include "sync/paho_client.hpp"

#include <MQTTAsync.h>

#include <condition_variable>

#include "common/dynlib.hpp"

namespace flotilla::sync {

// The Paho C functions used here, named and typed as in MQTTAsync.h.
#define FLOTILLA_PAHO_FUNCTIONS(X) \
  X(MQTTAsync_global_init)         \
  X(MQTTAsync_createWithOptions)   \
  X(MQTTAsync_setCallbacks)        \
  X(MQTTAsync_connect)             \
  X(MQTTAsync_disconnect)          \
  X(MQTTAsync_isConnected)         \
  X(MQTTAsync_subscribe)           \
  X(MQTTAsync_unsubscribe)         \
  X(MQTTAsync_sendMessage)         \
  X(MQTTAsync_freeMessage)         \
  X(MQTTAsync_free)                \
  X(MQTTAsync_destroy)             \
  X(MQTTAsync_strerror)

struct PahoApi {
#define FLOTILLA_PAHO_POINTER(name) decltype(&::name) name = nullptr;
  FLOTILLA_PAHO_FUNCTIONS(FLOTILLA_PAHO_POINTER)
#undef FLOTILLA_PAHO_POINTER
};

namespace {

Expected<const PahoApi*> load(const char* soname) {
  auto lib = DynLib::open(soname);
  if (!lib) return lib.error();
  static PahoApi apis[2];
  PahoApi& api = apis[std::string(soname).find("3as") != std::string::npos ? 1 : 0];
#define FLOTILLA_PAHO_BIND(name) lib->bind(#name, api.name);
  FLOTILLA_PAHO_FUNCTIONS(FLOTILLA_PAHO_BIND)
#undef FLOTILLA_PAHO_BIND
  if (auto st = lib->status(); !st) return st.error();
  // Paho's own OpenSSL initialisation loads every algorithm and error string up front; OpenSSL
  // 1.1 and later initialise themselves on first use, so Paho is told to leave it.
  MQTTAsync_init_options init = MQTTAsync_init_options_initializer;
  init.do_openssl_init = 0;
  api.MQTTAsync_global_init(&init);
  return &api;
}

// The library for `uri`, loaded at its first use.
const Expected<const PahoApi*>& paho_for(const std::string& uri) {
  static const Expected<const PahoApi*> plain = load("libpaho-mqtt3a.so.1");
  if (uri.rfind("ssl://", 0) != 0 && uri.rfind("mqtts://", 0) != 0) return plain;
  static const Expected<const PahoApi*> tls = load("libpaho-mqtt3as.so.1");
  return tls;
}

std::string connack_text(int code) {
  switch (code) {
    case 1:
      return "connection refused: unacceptable protocol version";
    case 2:
      return "connection refused: identifier rejected";
    case 3:
      return "connection refused: server unavailable";
    case 4:
      return "connection refused: bad user name or password";
    case 5:
      return "connection refused: not authorized";
    default:
      return "";
  }
}

}  // namespace

// One answer awaited from Paho (connect, subscribe, disconnect).
struct PahoClient::Waiter {
  std::mutex mu;
  std::condition_variable cv;
  bool answered = false;
  Status result = Ok();
  const PahoApi* api = nullptr;

  // Notifies under the lock: once `answered` is seen (under the lock), new_waiter() may free a
  // waiter nobody waits for any more, so nothing here may touch it after the unlock.
  void answer(Status s) {
    std::lock_guard<std::mutex> lock(mu);
    answered = true;
    result = std::move(s);
    cv.notify_all();
  }
  // The answer, or nullopt when none came within `timeout`.
  std::optional<Status> wait(std::chrono::seconds timeout) {
    std::unique_lock<std::mutex> lock(mu);
    if (!cv.wait_for(lock, timeout, [this] { return answered; })) return std::nullopt;
    return result;
  }
  void set(MQTTAsync_responseOptions& r) {
    r.context = this;
    r.onSuccess = [](void* self, MQTTAsync_successData*) {
      static_cast<Waiter*>(self)->answer(Ok());
    };
    r.onFailure = [](void* self, MQTTAsync_failureData* f) {
      auto* w = static_cast<Waiter*>(self);
      w->answer(w->error(f != nullptr ? f->code : MQTTASYNC_FAILURE,
                         f != nullptr ? f->message : nullptr));
    };
  }
  Status error(int code, const char* message) const {
    std::string why = message != nullptr ? message : "";
    if (why.empty()) why = connack_text(code);
    if (why.empty() && code < 0) {
      const char* s = api->MQTTAsync_strerror(code);
      why = s != nullptr ? s : "";
    }
    if (why.empty() && code == MQTT_BAD_SUBSCRIBE) why = "subscription refused";
    return Error("MQTT error [" + std::to_string(code) + "]: " + why);
  }
};

Expected<std::unique_ptr<PahoClient>> PahoClient::create(const std::string& uri,
                                                         const std::string& client_id,
                                                         int max_buffered,
                                                         MessageHandler on_message,
                                                         LostHandler on_lost) {
  const std::string failed = "Failed to create MQTT client for '" + uri + "': ";
  const auto& api = paho_for(uri);
  if (!api) return Error(failed + api.error().message());
  std::unique_ptr<PahoClient> c(new PahoClient(**api, std::move(on_message), std::move(on_lost)));
  MQTTAsync_createOptions create = MQTTAsync_createOptions_initializer;
  create.MQTTVersion = MQTTVERSION_3_1_1;
  create.sendWhileDisconnected = 1;
  create.maxBufferedMessages = max_buffered;
  MQTTAsync handle = nullptr;
  int rc = (*api)->MQTTAsync_createWithOptions(&handle, uri.c_str(), client_id.c_str(),
                                               MQTTCLIENT_PERSISTENCE_NONE, nullptr, &create);
  if (rc != MQTTASYNC_SUCCESS) {
    const char* why = (*api)->MQTTAsync_strerror(rc);
    return Error(failed + (why != nullptr ? why : "error " + std::to_string(rc)));
  }
  c->handle_ = handle;
  auto lost = [](void* self, char* cause) {
    auto* me = static_cast<PahoClient*>(self);
    if (me->on_lost_) me->on_lost_(cause != nullptr ? cause : "");
  };
  auto arrived = [](void* self, char* topic, int topic_len, MQTTAsync_message* m) -> int {
    auto* me = static_cast<PahoClient*>(self);
    if (me->on_message_) {
      Message msg;
      msg.topic = topic_len > 0 ? std::string(topic, static_cast<size_t>(topic_len)) : topic;
      msg.payload.assign(static_cast<const char*>(m->payload), static_cast<size_t>(m->payloadlen));
      msg.retained = m->retained != 0;
      me->on_message_(std::move(msg));
    }
    me->api_.MQTTAsync_freeMessage(&m);
    me->api_.MQTTAsync_free(topic);
    return 1;
  };
  rc = (*api)->MQTTAsync_setCallbacks(handle, c.get(), lost, arrived, nullptr);
  if (rc != MQTTASYNC_SUCCESS) return Error(failed + "cannot set callbacks");
  return c;
}

PahoClient::~PahoClient() {
  if (handle_ != nullptr) api_.MQTTAsync_destroy(&handle_);
}

std::shared_ptr<PahoClient::Waiter> PahoClient::new_waiter() {
  auto w = std::make_shared<Waiter>();
  w->api = &api_;
  std::lock_guard<std::mutex> lock(waiters_mu_);
  std::erase_if(waiters_, [](const std::shared_ptr<Waiter>& old) {
    std::lock_guard<std::mutex> l(old->mu);
    return old->answered;
  });
  waiters_.push_back(w);
  return w;
}

Status PahoClient::connect(const PahoConnect& o, std::chrono::seconds timeout) {
  MQTTAsync_connectOptions opts = MQTTAsync_connectOptions_initializer;
  opts.cleansession = o.clean_session ? 1 : 0;
  opts.keepAliveInterval = o.keepalive_s;
  opts.connectTimeout = o.connect_timeout_s;
  opts.maxInflight = o.max_inflight;
  opts.automaticReconnect = 0;
  MQTTAsync_willOptions will = MQTTAsync_willOptions_initializer;
  if (o.will) {
    will.topicName = o.will->topic.c_str();
    will.message = nullptr;
    will.payload.data = o.will->payload.data();
    will.payload.len = static_cast<int>(o.will->payload.size());
    will.qos = 1;
    will.retained = 0;
    opts.will = &will;
  }
  MQTTAsync_SSLOptions ssl = MQTTAsync_SSLOptions_initializer;
  if (o.tls) {
    ssl.enableServerCertAuth = 1;
    ssl.verify = 1;  // the broker's certificate must name the URI's host
    if (!o.ca_file.empty()) ssl.trustStore = o.ca_file.c_str();
    if (!o.cert_file.empty()) {
      ssl.keyStore = o.cert_file.c_str();
      ssl.privateKey = o.key_file.c_str();
    }
    on_tls_error_ = o.on_tls_error;
    ssl.ssl_error_context = this;
    ssl.ssl_error_cb = [](const char* text, size_t len, void* self) -> int {
      auto* me = static_cast<PahoClient*>(self);
      if (me->on_tls_error_) me->on_tls_error_(std::string(text, len));
      return 0;
    };
    opts.ssl = &ssl;
  }
  auto w = new_waiter();
  opts.context = w.get();
  opts.onSuccess = [](void* self, MQTTAsync_successData*) {
    static_cast<Waiter*>(self)->answer(Ok());
  };
  opts.onFailure = [](void* self, MQTTAsync_failureData* f) {
    auto* me = static_cast<Waiter*>(self);
    me->answer(
        me->error(f != nullptr ? f->code : MQTTASYNC_FAILURE, f != nullptr ? f->message : nullptr));
  };
  if (int rc = api_.MQTTAsync_connect(handle_, &opts); rc != MQTTASYNC_SUCCESS) {
    return w->error(rc, nullptr);
  }
  auto answer = w->wait(timeout);
  if (!answer) {
    return Error("no answer within " + std::to_string(timeout.count()) + " s");
  }
  return *answer;
}

Status PahoClient::subscribe(const std::string& filter, int qos, std::chrono::seconds timeout) {
  MQTTAsync_responseOptions r = MQTTAsync_responseOptions_initializer;
  auto w = new_waiter();
  w->set(r);
  if (int rc = api_.MQTTAsync_subscribe(handle_, filter.c_str(), qos, &r);
      rc != MQTTASYNC_SUCCESS) {
    return w->error(rc, nullptr);
  }
  return w->wait(timeout).value_or(Ok());
}

Status PahoClient::unsubscribe(const std::string& filter) {
  MQTTAsync_responseOptions r = MQTTAsync_responseOptions_initializer;
  auto w = new_waiter();
  w->set(r);
  if (int rc = api_.MQTTAsync_unsubscribe(handle_, filter.c_str(), &r); rc != MQTTASYNC_SUCCESS) {
    return w->error(rc, nullptr);
  }
  return Ok();
}

void PahoClient::disconnect(std::chrono::seconds timeout) {
  MQTTAsync_disconnectOptions d = MQTTAsync_disconnectOptions_initializer;
  auto w = new_waiter();
  d.context = w.get();
  d.onSuccess = [](void* self, MQTTAsync_successData*) {
    static_cast<Waiter*>(self)->answer(Ok());
  };
  d.onFailure = [](void* self, MQTTAsync_failureData*) {
    static_cast<Waiter*>(self)->answer(Error("disconnect failed"));
  };
  if (api_.MQTTAsync_disconnect(handle_, &d) == MQTTASYNC_SUCCESS) (void)w->wait(timeout);
}

bool PahoClient::connected() const { return api_.MQTTAsync_isConnected(handle_) != 0; }

Status PahoClient::publish(const std::string& topic, const std::string& payload, int qos,
                           bool retained, DoneHandler done) {
  // Owned by Paho until it answers (freed then), or abandoned with the client.
  struct Pending {
    DoneHandler done;
  };
  auto* pending = new Pending{std::move(done)};
  MQTTAsync_responseOptions r = MQTTAsync_responseOptions_initializer;
  r.context = pending;
  r.onSuccess = [](void* self, MQTTAsync_successData*) {
    auto* p = static_cast<Pending*>(self);
    if (p->done) p->done(Ok());
    delete p;
  };
  r.onFailure = [](void* self, MQTTAsync_failureData* f) {
    auto* p = static_cast<Pending*>(self);
    if (p->done) {
      p->done(Error("publish failed (code " + std::to_string(f != nullptr ? f->code : -1) + ")"));
    }
    delete p;
  };
  MQTTAsync_message m = MQTTAsync_message_initializer;
  m.payload = const_cast<char*>(payload.data());  // Paho copies it
  m.payloadlen = static_cast<int>(payload.size());
  m.qos = qos;
  m.retained = retained ? 1 : 0;
  if (int rc = api_.MQTTAsync_sendMessage(handle_, topic.c_str(), &m, &r);
      rc != MQTTASYNC_SUCCESS) {
    const char* why = api_.MQTTAsync_strerror(rc);
    Status st = Error("Failed to publish to '" + topic +
                      "': " + (why != nullptr ? std::string(why) : "error " + std::to_string(rc)));
    if (pending->done) pending->done(st);
    delete pending;
    return st;
  }
  return Ok();
}

}  // namespace flotilla::sync
