#include "sync/fake_transport.hpp"

#include <algorithm>

#include "sync/topics.hpp"

namespace flotilla::sync {

std::unique_ptr<FakeTransport> FakeBroker::connect(const std::string& client_id) {
  return std::make_unique<FakeTransport>(this, client_id);
}

void FakeBroker::set_up(bool up) {
  std::vector<FakeTransport*> clients;
  {
    std::lock_guard<std::recursive_mutex> lock(mu_);
    if (up_ == up) return;
    up_ = up;
    if (!up) retained_.clear();  // like mosquitto without persistence
    clients.assign(clients_.begin(), clients_.end());
  }
  for (auto* c : clients) {
    if (!c->started_ || c->dropped_) continue;
    c->set_connected(up, false);
  }
}

bool FakeBroker::up() const {
  std::lock_guard<std::recursive_mutex> lock(mu_);
  return up_;
}

std::vector<Message> FakeBroker::log() const {
  std::lock_guard<std::recursive_mutex> lock(mu_);
  return log_;
}

std::vector<int> FakeBroker::log_qos() const {
  std::lock_guard<std::recursive_mutex> lock(mu_);
  return log_qos_;
}

size_t FakeBroker::delivered_count() const {
  std::lock_guard<std::recursive_mutex> lock(mu_);
  return log_.size();
}

void FakeBroker::attach(FakeTransport* t) {
  std::lock_guard<std::recursive_mutex> lock(mu_);
  clients_.insert(t);
}

void FakeBroker::detach(FakeTransport* t) {
  std::lock_guard<std::recursive_mutex> lock(mu_);
  clients_.erase(t);
}

std::vector<Message> FakeBroker::retained_matching(const std::string& filter) const {
  std::lock_guard<std::recursive_mutex> lock(mu_);
  std::vector<Message> out;
  for (const auto& [topic, payload] : retained_) {
    if (topic_matches(filter, topic)) out.push_back({topic, payload});
  }
  return out;
}

Status FakeBroker::route(const FakeTransport* from, const Message& m, bool retain, int qos) {
  std::vector<FakeTransport*> targets;
  {
    std::lock_guard<std::recursive_mutex> lock(mu_);
    if (!up_) return Error("Failed to publish '" + m.topic + "': broker is down");
    if (from != nullptr && !from->connected_)
      return Error("Failed to publish '" + m.topic + "': not connected");
    log_.push_back(m);
    log_qos_.push_back(qos);
    if (retain) retained_[m.topic] = m.payload;
    for (auto* c : clients_) {
      if (!c->connected_) continue;
      bool match = std::any_of(c->filters_.begin(), c->filters_.end(),
                               [&](const std::string& f) { return topic_matches(f, m.topic); });
      if (match) targets.push_back(c);
    }
  }
  for (auto* c : targets) c->deliver(m);
  return Ok();
}

FakeTransport::FakeTransport(FakeBroker* broker, std::string client_id)
    : broker_(broker), client_id_(std::move(client_id)) {
  broker_->attach(this);
}

FakeTransport::~FakeTransport() { broker_->detach(this); }

void FakeTransport::set_handlers(MessageHandler on_message, ConnectionHandler on_connection) {
  on_message_ = std::move(on_message);
  on_connection_ = std::move(on_connection);
}

Status FakeTransport::start() {
  started_ = true;
  if (broker_->up()) set_connected(true, false);
  return Ok();
}

void FakeTransport::stop() {
  started_ = false;
  if (connected_) set_connected(false, false);
}

bool FakeTransport::connected() const { return connected_; }

Status FakeTransport::unsubscribe(const std::string& filter) {
  std::lock_guard<std::recursive_mutex> lock(broker_->mu_);
  std::erase(filters_, filter);
  return Ok();
}

Status FakeTransport::subscribe(const std::string& filter, int /*qos*/) {
  {
    std::lock_guard<std::recursive_mutex> lock(broker_->mu_);
    filters_.push_back(filter);
  }
  if (connected_) {
    for (auto m : broker_->retained_matching(filter)) {
      m.retained = true;
      deliver(m);
    }
  }
  return Ok();
}

Status FakeTransport::publish_retained(const std::string& topic, std::string payload) {
  return broker_->route(this, Message{topic, std::move(payload)}, true);
}

Status FakeTransport::publish(const std::string& topic, std::string payload, int qos,
                              DoneHandler done) {
  Status st = broker_->route(this, Message{topic, std::move(payload)}, false, qos);
  if (done) done(st);
  return st;
}

void FakeTransport::drop() {
  dropped_ = true;
  set_connected(false, true);
}

void FakeTransport::reconnect() {
  dropped_ = false;
  if (started_ && broker_->up()) set_connected(true, false);
}

void FakeTransport::deliver(const Message& m) {
  if (on_message_) on_message_(m);
}

void FakeTransport::set_connected(bool c, bool send_will) {
  if (connected_.exchange(c) == c) return;
  if (!c && send_will && will_) (void)broker_->route(nullptr, *will_);
  if (on_connection_) on_connection_(c);
  if (c) {
    std::vector<std::string> filters;
    {
      std::lock_guard<std::recursive_mutex> lock(broker_->mu_);
      filters = filters_;
    }
    for (const auto& f : filters) {
      for (auto m : broker_->retained_matching(f)) {
        m.retained = true;
        deliver(m);
      }
    }
  }
}

}  // namespace flotilla::sync
