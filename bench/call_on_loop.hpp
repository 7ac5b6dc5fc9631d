// call_on_loop: run a function on the EventLoop thread and wait for its result.
#pragma once

#include <future>
#include <utility>

#include "bench/event_loop.hpp"

namespace flotilla::bench {

template <typename F>
auto call_on_loop(EventLoop& loop, F fn) -> decltype(fn()) {
  using R = decltype(fn());
  auto promise = std::make_shared<std::promise<R>>();
  auto future = promise->get_future();
  loop.post([promise, fn = std::move(fn)]() mutable {
    if constexpr (std::is_void_v<R>) {
      fn();
      promise->set_value();
    } else {
      promise->set_value(fn());
    }
  });
  return future.get();
}

}  // namespace flotilla::bench
