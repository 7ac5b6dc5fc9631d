// Fixture of the updater tests: a cpp-httplib server on 127.0.0.1 serving payloads with Range
// support (and modes that cut a transfer, ignore Range, answer errors or stall), a signing key,
// signed manifests, image slots in a temporary folder and a fake clock.
#pragma once

#include <gtest/gtest.h>
#include <httplib.h>

#include <atomic>
#include <map>
#include <mutex>
#include <string>
#include <thread>

#include "common/clock.hpp"
#include "common/fs.hpp"
#include "common/sha256.hpp"
#include "ota/signing.hpp"
#include "ota/updater.hpp"
#include "test/support/temp_dir.hpp"

namespace flotilla::ota::testing {

class PayloadServer {
 public:
  PayloadServer() {
    server_.Get(R"(/(\w+))", [this](const httplib::Request& req, httplib::Response& res) {
      const std::string path = req.matches[1];
      std::string body;
      {
        std::lock_guard<std::mutex> lock(mu_);
        ++requests[path];
        if (!req.ranges.empty()) ++range_requests[path];
        auto it = bodies.find(path);
        if (it == bodies.end()) {
          res.status = 404;
          res.set_content("no such payload", "text/plain");
          return;
        }
        body = it->second;
      }
      if (fail_count > 0) {
        --fail_count;
        res.status = fail_status;
        return;
      }
      if (ignore_range) const_cast<httplib::Request&>(req).ranges.clear();
      size_t cut = cut_after.exchange(0);
      if ((cut > 0 && req.ranges.empty()) || stall) {
        // Promise the whole body, send `cut` bytes (or stall), then drop the connection.
        res.set_content_provider(
            body.size(), "application/octet-stream",
            [this, cut, body, path](size_t offset, size_t, httplib::DataSink& sink) {
              while (stall && !stopping_) std::this_thread::sleep_for(std::chrono::milliseconds(5));
              if (offset >= cut) return false;
              sink.write(body.data() + offset, cut - offset);
              add_served(path, cut - offset);
              return true;
            });
        return;
      }
      add_served(path, req.ranges.empty() ? body.size() : body.size() - req.ranges[0].first);
      res.set_content(body, "application/octet-stream");
    });
    port_ = server_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    while (!server_.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ~PayloadServer() {
    stopping_ = true;
    server_.stop();
    thread_.join();
  }
  std::string url(const std::string& path) const {
    return "http://127.0.0.1:" + std::to_string(port_) + "/" + path;
  }
  void put(const std::string& path, std::string body) {
    std::lock_guard<std::mutex> lock(mu_);
    bodies[path] = std::move(body);
  }
  int requests_of(const std::string& path) {
    std::lock_guard<std::mutex> lock(mu_);
    return requests[path];
  }
  int range_requests_of(const std::string& path) {
    std::lock_guard<std::mutex> lock(mu_);
    return range_requests[path];
  }
  size_t served_of(const std::string& path) {
    std::lock_guard<std::mutex> lock(mu_);
    return served[path];
  }

  std::atomic<size_t> cut_after{0};  // once: the next full request is cut after N bytes
  std::atomic<bool> ignore_range{false};
  std::atomic<int> fail_count{0};  // the next N requests answer fail_status
  std::atomic<int> fail_status{500};
  std::atomic<bool> stall{false};

 private:
  void add_served(const std::string& path, size_t n) {
    std::lock_guard<std::mutex> lock(mu_);
    served[path] += n;
  }
  std::mutex mu_;
  std::map<std::string, std::string> bodies;
  std::map<std::string, int> requests, range_requests;
  std::map<std::string, size_t> served;
  std::atomic<bool> stopping_{false};
  httplib::Server server_;
  std::thread thread_;
  int port_ = 0;
};

inline std::string pattern(size_t n, unsigned seed) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>((i * 131 + i / 7 + seed) & 0xff);
  return s;
}

class UpdaterFixture : public ::testing::Test {
 protected:
  void SetUp() override {
    auto key = generate_key();
    ASSERT_TRUE(key) << key.error().message();
    key_ = *key;
    payload_ = pattern(3 << 20, 1);
    server_.put("payload", payload_);
  }

  UpdaterOptions options() {
    UpdaterOptions o;
    o.state_dir = dir_ / "ota";
    o.public_key_pem = key_.public_pem;
    o.image_slots_dir = dir_ / "slots";
    o.agent_slots_dir = dir_ / "agent";
    o.retry_base = Millis(100);
    o.retry_max = Millis(1000);
    o.jitter_seed = 7;
    return o;
  }

  Manifest manifest(const std::string& version = "2.0", const std::string& target = "image") {
    Manifest m;
    m.name = "fw";
    m.version = version;
    m.target = target;
    m.sha256 = sha256_hex(payload_);
    m.size = payload_.size();
    return m;
  }

  Assignment assignment(const Manifest& m, uint64_t generation = 1) {
    Assignment a;
    a.rollout = "r1";
    a.generation = generation;
    a.manifest = manifest_json(m);
    auto sig = sign(key_.private_pem, a.manifest);
    EXPECT_TRUE(sig);
    a.signature = sig ? *sig : "";
    a.payload_url = server_.url("payload");
    return a;
  }

  std::unique_ptr<Updater> make(UpdaterOptions o, bool connected = true) {
    auto u = std::make_unique<Updater>(std::move(o), clock_);
    auto st = u->start();
    EXPECT_TRUE(st) << (st ? "" : st.error().message());
    u->on_hub_connection(connected);
    return u;
  }
  std::unique_ptr<Updater> make() { return make(options()); }

  // Ticks (advancing the fake clock by `step` each time) until the update is final or stops
  // at `until`; at most ~10 s of real time.
  Phase drive(Updater& u, Phase until = Phase::kIdle, Millis step = Millis(100)) {
    for (int i = 0; i < 10000; ++i) {
      u.tick();
      const Phase p = u.state().phase;
      if (is_final(p) || (until != Phase::kIdle && p == until) || !u.reexec_path().empty()) {
        return p;
      }
      clock_.advance(step);
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    ADD_FAILURE() << "the update did not finish; phase " << phase_name(u.state().phase);
    return u.state().phase;
  }

  std::string slot(const std::string& name) {
    auto content = fs::read_file(dir_ / ("slots/" + name));
    return content ? *content : "<missing>";
  }
  std::string active() {
    auto a = SlotSet::image(dir_ / "slots").active();
    return a ? *a : "<none>";
  }

  flotilla::testing::TempDir dir_;
  FakeClock clock_;
  PayloadServer server_;
  KeyPair key_;
  std::string payload_;
};

}  // namespace flotilla::ota::testing
