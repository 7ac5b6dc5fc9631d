#include "cloud-hub/metrics.hpp"

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

std::string Metrics::render() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::string out;
  for (const auto& [name, series] : counters_) {
    out += "# TYPE " + name + " counter\n";
    for (const auto& [labels, v] : series) out += name + labels + " " + std::to_string(v) + "\n";
  }
  return out;
}

}  // namespace flotilla::hub
