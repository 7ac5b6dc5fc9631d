// Metrics: the hub's counters, rendered in the Prometheus text format for GET /metrics.
//
// A series is a metric name plus labels, e.g. count("flotilla_hub_messages_dropped_total",
// {{"kind", "status"}, {"reason", "node_mismatch"}}). Gauges (nodes by state, instances by
// phase) are computed from the store at scrape time by the Controller, not kept here.
//
// Thread-safety: all methods may be called from any thread.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace flotilla::hub {

using MetricLabels = std::vector<std::pair<std::string, std::string>>;

class Metrics {
 public:
  void count(const std::string& name, const MetricLabels& labels = {}, uint64_t n = 1);
  uint64_t value(const std::string& name, const MetricLabels& labels = {}) const;
  // Every counter, grouped by name with a TYPE line each.
  std::string render() const;

 private:
  mutable std::mutex mu_;
  std::map<std::string, std::map<std::string, uint64_t>> counters_;  // name -> labels -> value
};

// Renders {k="v",...} with Prometheus escaping ("" when empty).
std::string render_labels(const MetricLabels& labels);

}  // namespace flotilla::hub
