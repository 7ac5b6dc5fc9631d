// SseWatch: a watch over real HTTP for the hub's tests. It GETs a watch URL on its own thread,
// parses the server-sent events as they arrive, and lets the test wait (bounded) for them.
#pragma once

#include <httplib.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

namespace flotilla::hub::testing {

struct SseEvent {
  std::string event;  // ADDED, MODIFIED, DELETED, ERROR
  std::string id;
  nlohmann::json data;
};

class SseWatch {
 public:
  SseWatch(int port, const std::string& path, httplib::Headers headers = {})
      : client_("127.0.0.1", port) {
    client_.set_read_timeout(std::chrono::seconds(60));
    thread_ = std::thread([this, path, headers] {
      auto r = client_.Get(
          path, headers,
          [this](const httplib::Response& res) {
            std::lock_guard lock(mu_);
            status_ = res.status;
            content_type_ = res.get_header_value("Content-Type");
            cv_.notify_all();
            return true;
          },
          [this](const char* data, size_t n) {
            feed(std::string(data, n));
            return !stopping_.load();
          });
      std::lock_guard lock(mu_);
      if (r && status_ == 0) status_ = r->status;
      if (r && r->status != 200) raw_ += r->body;
      ended_ = true;
      cv_.notify_all();
    });
  }
  ~SseWatch() { close(); }
  SseWatch(const SseWatch&) = delete;
  SseWatch& operator=(const SseWatch&) = delete;

  // Goes away as a client would: the socket is closed.
  void close() {
    stopping_ = true;
    client_.stop();
    if (thread_.joinable()) thread_.join();
  }

  // Bounded waits: true once it happened, false after `timeout` (a failure in a test).
  bool wait_events(size_t n, std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, timeout, [&] { return events_.size() >= n || ended_; }) &&
           events_.size() >= n;
  }
  bool wait_raw(const std::string& text,
                std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, timeout, [&] {
      return raw_.find(text) != std::string::npos || ended_;
    }) && raw_.find(text) != std::string::npos;
  }
  bool wait_status(std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, timeout, [&] { return status_ != 0 || ended_; });
  }
  bool wait_end(std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, timeout, [&] { return ended_; });
  }

  std::vector<SseEvent> events() const {
    std::lock_guard lock(mu_);
    return events_;
  }
  // "ADDED web" ... in order.
  std::vector<std::string> summary() const {
    std::vector<std::string> out;
    for (const auto& e : events()) {
      const auto& o = e.data["object"];
      std::string name =
          o.contains("metadata") ? o["metadata"].value("name", "") : o.value("name", "");
      out.push_back(e.event + " " + name);
    }
    return out;
  }
  std::string raw() const {
    std::lock_guard lock(mu_);
    return raw_;
  }
  int status() const {
    std::lock_guard lock(mu_);
    return status_;
  }
  std::string content_type() const {
    std::lock_guard lock(mu_);
    return content_type_;
  }

 private:
  void feed(const std::string& data) {
    std::lock_guard lock(mu_);
    raw_ += data;
    pending_ += data;
    for (size_t end; (end = pending_.find("\n\n")) != std::string::npos;) {
      std::string block = pending_.substr(0, end);
      pending_.erase(0, end + 2);
      SseEvent e;
      bool any = false;
      size_t at = 0;
      while (at <= block.size()) {
        size_t nl = std::min(block.find('\n', at), block.size());
        std::string line = block.substr(at, nl - at);
        at = nl + 1;
        if (line.rfind("event: ", 0) == 0) e.event = line.substr(7), any = true;
        if (line.rfind("id: ", 0) == 0) e.id = line.substr(4);
        if (line.rfind("data: ", 0) == 0)
          e.data = nlohmann::json::parse(line.substr(6), nullptr, false);
      }
      if (any) events_.push_back(std::move(e));
    }
    cv_.notify_all();
  }

  httplib::Client client_;
  std::atomic<bool> stopping_{false};
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::string raw_;
  std::string pending_;
  std::vector<SseEvent> events_;
  int status_ = 0;
  std::string content_type_;
  bool ended_ = false;
  std::thread thread_;
};

}  // namespace flotilla::hub::testing
