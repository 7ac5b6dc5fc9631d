#include "bench/hub_probe.hpp"

#include <unistd.h>

#include <fstream>
#include <sstream>

#include <httplib.h>
#include <nlohmann/json.hpp>

namespace flotilla::bench {

ProcUsage read_proc_usage(pid_t pid) {
  ProcUsage u;
  if (pid <= 0) return u;
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(stat, line)) return u;
  // Fields after the ")" that closes the command name; utime and stime are fields 14 and 15.
  std::istringstream rest(line.substr(line.rfind(')') + 2));
  std::string field;
  double utime = 0, stime = 0;
  for (int i = 3; i <= 15 && rest >> field; ++i) {
    if (i == 14) utime = std::stod(field);
    if (i == 15) stime = std::stod(field);
  }
  u.cpu_seconds = (utime + stime) / static_cast<double>(::sysconf(_SC_CLK_TCK));
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  while (std::getline(status, line)) {
    if (line.rfind("VmHWM:", 0) == 0) u.max_rss_kb = std::stoll(line.substr(6));
  }
  return u;
}

HubProbe::HubProbe(int port) : client_(std::make_unique<httplib::Client>("127.0.0.1", port)) {
  client_->set_connection_timeout(5);
  client_->set_read_timeout(300);
  client_->set_keep_alive(true);
  client_->set_tcp_nodelay(true);  // a PUT is written as header + body: no Nagle wait
}

HubProbe::~HubProbe() = default;

Expected<std::string> HubProbe::get(const std::string& path) {
  auto res = client_->Get(path);
  if (!res) return Error("Failed to GET '" + path + "': " + httplib::to_string(res.error()));
  if (res->status != 200) {
    return Error("Failed to GET '" + path + "': HTTP " + std::to_string(res->status));
  }
  return res->body;
}

Expected<std::string> HubProbe::apply(const std::string& name, const std::string& manifest) {
  // Forced: the benchmarks replace whole fleets on purpose (the catch-up scenario changes every
  // node's workloads a thousand times), which the hub's blast-radius guard would hold back.
  auto res =
      client_->Put("/api/v1/workloads/" + name + "?force=true", manifest, "application/json");
  if (!res) return Error("Failed to apply '" + name + "': " + httplib::to_string(res.error()));
  if (res->status != 200) {
    return Error("Failed to apply '" + name + "': HTTP " + std::to_string(res->status) + " " +
                 res->body);
  }
  return res->body;
}

double HubProbe::metric(const std::string& text, const std::string& series) {
  size_t pos = 0;
  while ((pos = text.find(series, pos)) != std::string::npos) {
    const bool line_start = pos == 0 || text[pos - 1] == '\n';
    const size_t end = pos + series.size();
    if (line_start && end < text.size() && text[end] == ' ') {
      return std::strtod(text.c_str() + end + 1, nullptr);
    }
    pos = end;
  }
  return 0;
}

Expected<double> HubProbe::metric(const std::string& series) {
  auto text = get("/metrics");
  if (!text) return text.error();
  return metric(*text, series);
}

std::string every_node_manifest(const std::string& name, const std::string& mode) {
  nlohmann::json m = {
      {"apiVersion", "flotilla/v1"},
      {"kind", "Workload"},
      {"metadata", {{"name", name}}},
      {"spec",
       {{"type", "process"},
        {"placement", {{"everyNode", true}}},
        {"selector", {{"matchLabels", {{"fleet", "sim"}}}}},
        {"resources", {{"cpu", "10m"}, {"memory", "1Mi"}}},
        {"process", {{"command", {"/bin/sleep", "infinity"}}, {"env", {{"MODE", mode}}}}}}}};
  return m.dump();
}

}  // namespace flotilla::bench
