// Clock: the one source of time for Flotilla components, injected so tests never sleep.
//
// now() is monotonic (for timeouts, backoff, heartbeats). wall_ms() is Unix wall time in
// milliseconds, used only for display and event timestamps -- correctness never depends on
// two machines' wall clocks agreeing.
//
// Thread-safety: SystemClock is stateless; FakeClock is safe for concurrent reads and advances.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <ctime>

namespace flotilla {

using Millis = std::chrono::milliseconds;
using TimePoint = std::chrono::steady_clock::time_point;

class Clock {
 public:
  virtual ~Clock() = default;
  virtual TimePoint now() const = 0;
  virtual int64_t wall_ms() const = 0;
};

class SystemClock final : public Clock {
 public:
  TimePoint now() const override { return std::chrono::steady_clock::now(); }
  int64_t wall_ms() const override {
    return std::chrono::duration_cast<Millis>(std::chrono::system_clock::now().time_since_epoch())
        .count();
  }
};

class FakeClock final : public Clock {
 public:
  TimePoint now() const override { return TimePoint(Millis(mono_ms_.load())); }
  int64_t wall_ms() const override { return 1'700'000'000'000 + mono_ms_.load(); }
  void advance(Millis d) { mono_ms_ += d.count(); }

 private:
  std::atomic<int64_t> mono_ms_{1'000'000};
};

// CPU time the calling thread has used (not injectable: it paces work by what the work cost, as a
// duty cycle does, and never decides a timeout).
inline std::chrono::nanoseconds thread_cpu_time() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return std::chrono::seconds(ts.tv_sec) + std::chrono::nanoseconds(ts.tv_nsec);
}

}  // namespace flotilla
