#include "cloud-hub/metrics.hpp"

#include <cstdio>

namespace flotilla::hub {

std::string render_labels(const MetricLabels& labels) {
  if (labels.empty()) return "";
  std::string out = "{";
  for (size_t i = 0; i < labels.size(); ++i) {
    if (i > 0) out += ",";
    out += labels[i].first + "=\"";
    for (char c : labels[i].second) {
      if (c == '\\' || c == '"') out += '\\';
      if (c == '\n') {
        out += "\\n";
        continue;
      }
      out += c;
    }
    out += "\"";
  }
  return out + "}";
}

void Metrics::count(const std::string& name, const MetricLabels& labels, uint64_t n) {
  std::lock_guard<std::mutex> lock(mu_);
  counters_[name][render_labels(labels)] += n;
}

uint64_t Metrics::value(const std::string& name, const MetricLabels& labels) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = counters_.find(name);
  if (it == counters_.end()) return 0;
  auto v = it->second.find(render_labels(labels));
  return v == it->second.end() ? 0 : v->second;
}

void Metrics::observe(const std::string& name, double value, const MetricLabels& labels) {
  std::lock_guard<std::mutex> lock(mu_);
  Summary& s = summaries_[name][render_labels(labels)];
  s.sum += value;
  s.count += 1;
  if (value > s.max) s.max = value;
}

Metrics::Summary Metrics::summary(const std::string& name, const MetricLabels& labels) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = summaries_.find(name);
  if (it == summaries_.end()) return {};
  auto v = it->second.find(render_labels(labels));
  return v == it->second.end() ? Summary{} : v->second;
}

void Metrics::observe_histogram(const std::string& name, double value,
                                const std::vector<double>& bounds, const MetricLabels& labels) {
  std::lock_guard<std::mutex> lock(mu_);
  Histogram& h = histograms_[name][render_labels(labels)];
  if (h.counts.empty()) {
    h.bounds = bounds;
    h.counts.assign(bounds.size() + 1, 0);
  }
  size_t i = 0;
  while (i < h.bounds.size() && value > h.bounds[i]) ++i;
  h.counts[i] += 1;
  h.sum += value;
  h.count += 1;
}

void Metrics::declare_histogram(const std::string& name, const std::vector<double>& bounds,
                                const MetricLabels& labels) {
  std::lock_guard<std::mutex> lock(mu_);
  Histogram& h = histograms_[name][render_labels(labels)];
  if (h.counts.empty()) {
    h.bounds = bounds;
    h.counts.assign(bounds.size() + 1, 0);
  }
}

Metrics::Histogram Metrics::histogram(const std::string& name, const MetricLabels& labels) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = histograms_.find(name);
  if (it == histograms_.end()) return {};
  auto v = it->second.find(render_labels(labels));
  return v == it->second.end() ? Histogram{} : v->second;
}

void Metrics::add_source(std::function<std::string()> source) {
  std::lock_guard<std::mutex> lock(mu_);
  sources_.push_back(std::move(source));
}

std::string Metrics::render() const {
  std::string out;
  std::vector<std::function<std::string()>> sources;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& [name, series] : counters_) {
      out += "# TYPE " + name + " counter\n";
      for (const auto& [labels, v] : series) {
        out += name + labels + " " + std::to_string(v) + "\n";
      }
    }
    for (const auto& [name, series] : summaries_) {
      out += "# TYPE " + name + " summary\n";
      for (const auto& [labels, s] : series) {
        out += name + "_sum" + labels + " " + std::to_string(s.sum) + "\n";
        out += name + "_count" + labels + " " + std::to_string(s.count) + "\n";
      }
      out += "# TYPE " + name + "_max gauge\n";
      for (const auto& [labels, s] : series) {
        out += name + "_max" + labels + " " + std::to_string(s.max) + "\n";
      }
    }
    for (const auto& [name, series] : histograms_) {
      out += "# TYPE " + name + " histogram\n";
      for (const auto& [labels, h] : series) {
        // The bucket's le label goes with the series' own labels: {a="b",le="0.5"}.
        const std::string open = labels.empty() ? "{" : labels.substr(0, labels.size() - 1) + ",";
        uint64_t cumulative = 0;
        for (size_t i = 0; i <= h.bounds.size(); ++i) {
          cumulative += h.counts[i];
          std::string le = "+Inf";
          if (i < h.bounds.size()) {
            char buf[32];
            std::snprintf(buf, sizeof buf, "%g", h.bounds[i]);
            le = buf;
          }
          out +=
              name + "_bucket" + open + "le=\"" + le + "\"} " + std::to_string(cumulative) + "\n";
        }
        out += name + "_sum" + labels + " " + std::to_string(h.sum) + "\n";
        out += name + "_count" + labels + " " + std::to_string(h.count) + "\n";
      }
    }
    sources = sources_;
  }
  for (const auto& source : sources) out += source();
  return out;
}

}  // namespace flotilla::hub
