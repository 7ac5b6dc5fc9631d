// EventLoop: one epoll thread that owns every simulated MQTT connection.
//
// Other threads hand it work with post(); the loop runs it between I/O rounds. After every round
// it calls the idle hook (the fleet flushes coalesced status batches and due heartbeats there)
// and then writes each connection's pending output in one go, so many messages share a syscall.
//
// Thread-safety: post() and stop() may be called from any thread; everything else only on the
// loop thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <mutex>
#include <unordered_map>
#include <vector>

namespace flotilla::bench {

class EventLoop {
 public:
  // Called with the epoll events of a registered fd.
  using FdHandler = std::function<void(uint32_t events)>;

  EventLoop();
  ~EventLoop();
  EventLoop(const EventLoop&) = delete;
  EventLoop& operator=(const EventLoop&) = delete;

  void post(std::function<void()> task);
  void set_idle_hook(std::function<void()> hook) { idle_hook_ = std::move(hook); }
  // Runs until stop(). Call on the loop thread.
  void run();
  void stop();

  bool add_fd(int fd, uint32_t events, FdHandler handler);
  void modify_fd(int fd, uint32_t events);
  void remove_fd(int fd);
  // Asks for `flush` to be called once after the current round.
  void mark_dirty(std::function<void()>* flush);

 private:
  void run_posted();

  int epoll_fd_ = -1;
  int wake_fd_ = -1;
  std::atomic<bool> running_{false};
  std::mutex mu_;
  std::vector<std::function<void()>> posted_;
  std::unordered_map<int, FdHandler> handlers_;
  std::vector<std::function<void()>*> dirty_;
  std::function<void()> idle_hook_;
};

}  // namespace flotilla::bench
