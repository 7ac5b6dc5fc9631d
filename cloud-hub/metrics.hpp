// Metrics: the hub's counters, rendered in the Prometheus text format for GET /metrics.
//
// A series is a metric name plus labels, e.g. count("flotilla_hub_messages_dropped_total",
// {{"kind", "status"}, {"reason", "node_mismatch"}}). Gauges (nodes by state, instances by
// phase) are computed from the store at scrape time by the Controller, not kept here.
// Histograms (e.g. instance startup latency) have fixed bucket bounds given at each observe.
//
// Thread-safety: all methods may be called from any thread.
#pragma once

#include <cstdint>
#include <functional>
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
  // A summary (e.g. of durations in seconds): rendered as NAME_sum, NAME_count and NAME_max
  // (the largest observed since start).
  struct Summary {
    double sum = 0;
    uint64_t count = 0;
    double max = 0;
  };
  void observe(const std::string& name, double value, const MetricLabels& labels = {});
  Summary summary(const std::string& name, const MetricLabels& labels = {}) const;
  // A histogram: rendered as NAME_bucket{le="B"} (cumulative, one per bound and +Inf),
  // NAME_sum and NAME_count. `bounds` (ascending) are taken from the first observation of a
  // series; later ones use the series' own.
  struct Histogram {
    std::vector<double> bounds;
    std::vector<uint64_t> counts;  // per bound, not cumulative; the last is above every bound
    double sum = 0;
    uint64_t count = 0;
  };
  void observe_histogram(const std::string& name, double value, const std::vector<double>& bounds,
                         const MetricLabels& labels = {});
  Histogram histogram(const std::string& name, const MetricLabels& labels = {}) const;
  // Renders the histogram with zero counts until its first observation (unless it exists).
  void declare_histogram(const std::string& name, const std::vector<double>& bounds,
                         const MetricLabels& labels = {});
  // Text in the exposition format computed at scrape time (gauges of another component).
  // Sources are called by render(), outside the lock.
  void add_source(std::function<std::string()> source);
  // Every counter, summary and histogram, grouped by name with a TYPE line each, then every
  // source's text.
  std::string render() const;

 private:
  mutable std::mutex mu_;
  std::map<std::string, std::map<std::string, uint64_t>> counters_;  // name -> labels -> value
  std::map<std::string, std::map<std::string, Summary>> summaries_;
  std::map<std::string, std::map<std::string, Histogram>> histograms_;
  std::vector<std::function<std::string()>> sources_;
};

// Renders {k="v",...} with Prometheus escaping ("" when empty).
std::string render_labels(const MetricLabels& labels);

}  // namespace flotilla::hub
