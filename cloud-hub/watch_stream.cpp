#include "cloud-hub/watch_stream.hpp"

#include <algorithm>
#include <chrono>
#include <memory>
#include <mutex>

namespace flotilla::hub {
namespace {

using json = nlohmann::json;
using SteadyTime = std::chrono::steady_clock::time_point;

class Stream {
 public:
  Stream(WatchLog& log, WatchFilter filter, uint64_t after, WatchStreamOptions options,
         std::function<void()> on_end)
      : log_(log),
        filter_(std::move(filter)),
        asked_(after),
        cursor_(after),
        told_(after),
        options_(options),
        on_end_(std::move(on_end)),
        last_write_(std::chrono::steady_clock::now()) {}

  // One call of httplib's content provider: waits up to one poll for events and sends them.
  // False ends the stream at once (the client is gone).
  bool step(httplib::DataSink& sink) {
    const auto idle = std::chrono::steady_clock::now() - last_write_;
    const auto to_keepalive = std::chrono::duration_cast<Millis>(options_.keepalive - idle);
    const Millis wait = std::clamp(to_keepalive, Millis(0), options_.poll);
    WatchBatch batch = log_.wait(filter_, cursor_, wait);
    switch (batch.result) {
      case WatchBatch::Result::kClosed:
        sink.done();
        return true;
      case WatchBatch::Result::kGone: {
        std::string frame = sse_gone(asked_, log_.oldest());
        if (!sink.write(frame.data(), frame.size())) return false;
        sink.done();
        return true;
      }
      case WatchBatch::Result::kEvents: {
        std::string frames;
        for (const auto& d : batch.events) frames += sse_event(d);
        cursor_ = asked_ = batch.cursor;
        told_ = batch.events.back().event->version;
        return write(sink, frames);
      }
      case WatchBatch::Result::kTimeout:
        cursor_ = asked_ = batch.cursor;
        break;
    }
    if (std::chrono::steady_clock::now() - last_write_ >= options_.keepalive) {
      std::string frame = ": keepalive\n";
      if (cursor_ > told_) {
        // The filter skipped changes: a client resuming from here need not see them again.
        frame += "id: " + std::to_string(cursor_) + "\n";
        told_ = cursor_;
      }
      if (!write(sink, frame + "\n")) return false;
    }
    return sink.is_writable();  // false once the client has closed its end
  }

  void end() {
    std::call_once(ended_, [this] {
      if (on_end_) on_end_();
    });
  }

 private:
  bool write(httplib::DataSink& sink, const std::string& data) {
    if (!sink.write(data.data(), data.size())) return false;
    last_write_ = std::chrono::steady_clock::now();
    return true;
  }

  WatchLog& log_;
  const WatchFilter filter_;
  uint64_t asked_;   // the version the stream was asked to start after, then its progress
  uint64_t cursor_;  // changes up to here were looked at
  uint64_t told_;    // the last id the client was sent
  const WatchStreamOptions options_;
  std::function<void()> on_end_;
  std::once_flag ended_;
  SteadyTime last_write_;
};

}  // namespace

std::string sse_event(const Delivery& delivery) {
  const char* type = watch_type_name(delivery.type);
  const std::string& object = *delivery.event->object;
  std::string out;
  out.reserve(object.size() + 96);
  out += "event: ";
  out += type;
  out += "\nid: ";
  out += std::to_string(delivery.event->version);
  out += "\ndata: {\"type\":\"";
  out += type;
  out += "\",\"object\":";
  out += object;
  out += "}\n\n";
  return out;
}

std::string sse_error(int code, const std::string& reason, const std::string& message) {
  json status = {{"kind", "Status"}, {"apiVersion", "v1"}, {"status", "Failure"},
                 {"code", code},     {"reason", reason},   {"message", message}};
  return "event: ERROR\ndata: " + json{{"type", "ERROR"}, {"object", status}}.dump() + "\n\n";
}

std::string sse_gone(uint64_t asked, uint64_t oldest) {
  return sse_error(410, "Expired",
                   "resourceVersion " + std::to_string(asked) +
                       " is not in the hub's watch history (it starts after " +
                       std::to_string(oldest) + "): list again");
}

void start_watch_stream(WatchLog& log, WatchFilter filter, uint64_t after,
                        WatchStreamOptions options, httplib::Response& res,
                        std::function<void()> on_end) {
  auto stream = std::make_shared<Stream>(log, std::move(filter), after, options, std::move(on_end));
  res.status = 200;
  res.set_header("Cache-Control", "no-cache");
  res.set_header("X-Accel-Buffering", "no");  // proxies: pass each event on at once
  res.set_chunked_content_provider(
      "text/event-stream", [stream](size_t, httplib::DataSink& sink) { return stream->step(sink); },
      [stream](bool) { stream->end(); });
}

}  // namespace flotilla::hub
