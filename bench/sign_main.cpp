// Signed desired state, timed: how long the hub takes to seal (sign) a desired state and an
// agent to open (verify) it, for payloads the size of a one-workload delta and of a full 256 KiB
// message. bench/run sign runs it next to `openssl speed ed25519` (the same libcrypto's raw
// sign/verify rate) and records both in RESULTS.md.
//
//   flotilla-sign-bench [--count N]
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "common/ed25519.hpp"
#include "sync/codec.hpp"
#include "sync/signed.hpp"
#include "sync/topics.hpp"

namespace {

using namespace flotilla;
using Clock = std::chrono::steady_clock;

std::string desired_of_size(size_t bytes) {
  v1::DesiredState d;
  d.set_node("edge-000042");
  d.set_from_revision(41);
  d.set_to_revision(42);
  int i = 0;
  while (d.ByteSizeLong() < bytes) {
    v1::WorkloadSpec* w = d.add_upserts();
    w->set_name("workload-" + std::to_string(i++));
    w->set_type("process");
    w->set_spec_hash(std::string(64, 'a'));
    w->mutable_process()->add_command("/usr/bin/sensor-reader");
    (*w->mutable_process()->mutable_env())["LEVEL"] = std::string(700, 'x');
  }
  return sync::encode(d);
}

double micros_per(Clock::duration d, int n) {
  return std::chrono::duration<double, std::micro>(d).count() / n;
}

int run(int count) {
  auto pair = ed25519::generate();
  if (!pair) return std::fprintf(stderr, "%s\n", pair.error().message().c_str()), 1;
  auto key = ed25519::PrivateKey::from_pem(pair->private_pem);
  auto signer = sync::Signer::make(*key, nullptr);
  sync::Verifier verifier({key->public_key()}, {});
  const std::string topic = sync::down_topic("edge-000042", 16, "desired");
  for (size_t size : {size_t{1024}, size_t{250 * 1024}}) {
    const std::string payload = desired_of_size(size);
    const int n = size > 4096 ? std::max(1, count / 20) : count;
    std::string sealed;
    auto t0 = Clock::now();
    for (int i = 0; i < n; ++i) sealed = *signer->seal(topic, payload);
    auto t1 = Clock::now();
    for (int i = 0; i < n; ++i) {
      auto opened = verifier.open(topic, sealed);
      if (!opened || opened->payload.size() != payload.size()) {
        std::fprintf(stderr, "open failed\n");
        return 1;
      }
    }
    auto t2 = Clock::now();
    std::printf("payload_bytes=%zu sealed_bytes=%zu count=%d seal_us=%.1f open_us=%.1f\n",
                payload.size(), sealed.size(), n, micros_per(t1 - t0, n), micros_per(t2 - t1, n));
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  int count = 20000;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--count") == 0 && i + 1 < argc) {
      count = std::atoi(argv[++i]);
    } else {
      std::fprintf(stderr, "usage: flotilla-sign-bench [--count N]\n");
      return 2;
    }
  }
  if (count <= 0) return std::fprintf(stderr, "--count must be positive\n"), 2;
  return run(count);
}
