// Probes through the Reconciler: a fake checker answers each probe, checks run inline, a fake
// clock drives periods and delays.
#include "agent/prober.hpp"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <thread>

#include "agent/probe_checks.hpp"
#include "agent/reconciler.hpp"
#include "test/agent/fake_driver.hpp"
#include "test/agent/specs.hpp"
#include "test/support/temp_dir.hpp"

namespace flotilla::agent {
namespace {

using testing::FakeDriver;
using testing::process_spec;

class FakeChecker final : public ProbeChecker {
 public:
  ProbeOutcome check(const v1::Probe& probe, const runtime::Handle& handle) override {
    calls.push_back(handle.instance_id + (probe.tcp_port() == 1 ? "/live" : "/ready"));
    return probe.tcp_port() == 1 ? live : ready;
  }
  ProbeOutcome live{true, ""};
  ProbeOutcome ready{true, ""};
  std::vector<std::string> calls;
};

v1::Probe tcp_probe(uint32_t port, int64_t period_ms, uint32_t failures, int64_t delay_ms = 0) {
  v1::Probe p;
  p.set_tcp_port(port);
  p.set_period_ms(period_ms);
  p.set_failure_threshold(failures);
  p.set_initial_delay_ms(delay_ms);
  return p;
}

class ProberTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto s = Store::open(dir_ / "agent.db", "edge-1");
    ASSERT_TRUE(s.ok()) << s.error().message();
    store_ = std::move(s.value());
    reconciler_ = std::make_unique<Reconciler>("edge-1", ReconcilerConfig{}, *store_, driver_,
                                               clock_, &prober_);
  }
  void desire(const v1::WorkloadSpec& spec) {
    ASSERT_TRUE(store_->apply_desired(true, {spec}, {}, ++revision_).ok());
  }
  InstanceRecord only_instance() {
    auto all = *store_->load_instances();
    EXPECT_EQ(all.size(), 1u);
    return all.empty() ? InstanceRecord{} : all[0];
  }
  void advance_and_tick(int64_t ms) {
    clock_.advance(Millis(ms));
    reconciler_->tick();
  }

  flotilla::testing::TempDir dir_;
  FakeClock clock_;
  FakeDriver driver_;
  FakeChecker checker_;
  Prober prober_{checker_, clock_, [](std::function<void()> check) {
                   check();
                   return true;
                 }};
  std::unique_ptr<Store> store_;
  std::unique_ptr<Reconciler> reconciler_;
  uint64_t revision_ = 0;
};

TEST_F(ProberTest, ReadinessGatesReadyAndReportsWhyNot) {
  v1::WorkloadSpec spec = process_spec("web");
  *spec.mutable_readiness() = tcp_probe(2, 1000, 2, /*delay_ms=*/5000);
  checker_.ready = {false, "tcp 127.0.0.1:2: connection refused"};
  desire(spec);
  reconciler_->tick();
  EXPECT_EQ(only_instance().phase, v1::PHASE_RUNNING);
  EXPECT_FALSE(only_instance().ready) << "ready before its readiness probe passed";
  EXPECT_TRUE(checker_.calls.empty()) << "probed before the initial delay";

  advance_and_tick(5000);  // first failure
  EXPECT_EQ(checker_.calls.size(), 1u);
  EXPECT_TRUE(only_instance().reason.empty());
  advance_and_tick(1000);  // second failure: the threshold says why it is not ready
  EXPECT_EQ(only_instance().reason, "NotReady");
  EXPECT_NE(only_instance().message.find("connection refused"), std::string::npos);

  checker_.ready = {true, ""};
  advance_and_tick(1000);
  InstanceRecord rec = only_instance();
  EXPECT_TRUE(rec.ready);
  EXPECT_TRUE(rec.reason.empty());
  EXPECT_TRUE(to_status(rec).ready());

  // A ready instance that fails its probe failure_threshold times turns unready; it is not
  // restarted for it.
  checker_.ready = {false, "HTTP 503"};
  advance_and_tick(1000);
  EXPECT_TRUE(only_instance().ready) << "one failure is below the threshold of 2";
  advance_and_tick(1000);
  EXPECT_FALSE(only_instance().ready);
  EXPECT_EQ(driver_.launches.size(), 1u);
  EXPECT_EQ(driver_.instances.at("web-1").kills, 0);
}

TEST_F(ProberTest, FailingLivenessRestartsTheInstance) {
  v1::WorkloadSpec spec = process_spec("web");
  *spec.mutable_liveness() = tcp_probe(1, 2000, 3);
  desire(spec);
  reconciler_->tick();
  EXPECT_TRUE(only_instance().ready) << "without a readiness probe, running is ready";
  for (int i = 0; i < 3; ++i) advance_and_tick(2000);
  EXPECT_EQ(driver_.instances.at("web-1").kills, 0) << "a passing liveness probe kills nothing";

  checker_.live = {false, "tcp 127.0.0.1:1: timed out connecting"};
  advance_and_tick(2000);
  advance_and_tick(2000);
  EXPECT_EQ(driver_.instances.at("web-1").kills, 0) << "killed below the failure threshold";
  advance_and_tick(2000);
  EXPECT_EQ(driver_.instances.at("web-1").kills, 1);
  reconciler_->tick();  // the exit is observed: back-off, then restart per the policy
  InstanceRecord rec = only_instance();
  EXPECT_EQ(rec.phase, v1::PHASE_BACKOFF);
  EXPECT_EQ(rec.reason, "LivenessFailed");
  checker_.live = {true, ""};
  advance_and_tick(1000);
  EXPECT_EQ(driver_.launches.size(), 2u);
  EXPECT_EQ(only_instance().phase, v1::PHASE_RUNNING);
  EXPECT_EQ(only_instance().restarts, 1u);
}

TEST_F(ProberTest, ProbesOfAStoppedInstanceStop) {
  v1::WorkloadSpec spec = process_spec("web");
  *spec.mutable_liveness() = tcp_probe(1, 1000, 1);
  desire(spec);
  reconciler_->tick();
  advance_and_tick(1000);
  size_t calls = checker_.calls.size();
  EXPECT_GE(calls, 1u);
  ASSERT_TRUE(store_->apply_desired(true, {}, {}, ++revision_).ok());  // deleted
  advance_and_tick(1000);
  advance_and_tick(1000);
  EXPECT_FALSE(prober_.watching("web-1"));
  EXPECT_EQ(checker_.calls.size(), calls);
}

TEST(ProbeChecksTest, TcpAndHttpAgainstARealListener) {
  // Nothing listens on port 1 on loopback: a clear refusal, fast.
  ProbeOutcome refused = tcp_check(1, Millis(500));
  EXPECT_FALSE(refused.ok);
  EXPECT_NE(refused.message.find("refused"), std::string::npos) << refused.message;
  ProbeOutcome http = http_get_check(1, "/healthz", Millis(500));
  EXPECT_FALSE(http.ok);
  EXPECT_NE(http.message.find("GET http://127.0.0.1:1/healthz"), std::string::npos);
}

// A one-shot HTTP server on a free loopback port that answers `status_line`.
class OneShotHttp {
 public:
  explicit OneShotHttp(std::string status_line) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    ::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    ::listen(fd_, 4);
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this, line = std::move(status_line)] {
      int c = ::accept(fd_, nullptr, nullptr);
      if (c < 0) return;
      char buf[512];
      ssize_t n = ::recv(c, buf, sizeof buf, 0);
      if (n > 0) request_.assign(buf, static_cast<size_t>(n));
      std::string answer = line + "\r\nContent-Length: 0\r\n\r\n";
      ssize_t ignored = ::send(c, answer.data(), answer.size(), MSG_NOSIGNAL);
      (void)ignored;
      ::close(c);
    });
  }
  ~OneShotHttp() {
    ::shutdown(fd_, SHUT_RDWR);
    thread_.join();
    ::close(fd_);
  }
  uint16_t port() const { return port_; }
  std::string request() {
    thread_.join();
    thread_ = std::thread([] {});
    return request_;
  }

 private:
  int fd_ = -1;
  uint16_t port_ = 0;
  std::thread thread_;
  std::string request_;
};

TEST(ProbeChecksTest, HttpStatusDecidesAndThePathIsAsked) {
  OneShotHttp ok("HTTP/1.1 204 No Content");
  ProbeOutcome good = http_get_check(ok.port(), "/healthz", Millis(2000));
  EXPECT_TRUE(good.ok) << good.message;
  EXPECT_EQ(ok.request().rfind("GET /healthz HTTP/1.0\r\n", 0), 0u);

  OneShotHttp bad("HTTP/1.1 503 Service Unavailable");
  ProbeOutcome unavailable = http_get_check(bad.port(), "/", Millis(2000));
  EXPECT_FALSE(unavailable.ok);
  EXPECT_NE(unavailable.message.find("HTTP 503"), std::string::npos) << unavailable.message;

  OneShotHttp open("HTTP/1.1 200 OK");
  EXPECT_TRUE(tcp_check(open.port(), Millis(2000)).ok);
}

}  // namespace
}  // namespace flotilla::agent
