#include "bench/hub_probe.hpp"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include <httplib.h>
#include <nlohmann/json.hpp>

namespace flotilla::bench {

namespace {

// utime + stime of a /proc/.../stat file, in seconds; < 0 when it cannot be read.
double stat_cpu_seconds(const std::string& path) {
  std::ifstream stat(path);
  std::string line;
  if (!std::getline(stat, line)) return -1;
  // Fields after the ")" that closes the command name; utime and stime are fields 14 and 15.
  std::istringstream rest(line.substr(line.rfind(')') + 2));
  std::string field;
  double utime = 0, stime = 0;
  for (int i = 3; i <= 15 && rest >> field; ++i) {
    if (i == 14) utime = std::stod(field);
    if (i == 15) stime = std::stod(field);
  }
  return (utime + stime) / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

}  // namespace

ProcUsage read_proc_usage(pid_t pid) {
  ProcUsage u;
  if (pid <= 0) return u;
  const std::string dir = "/proc/" + std::to_string(pid);
  const double cpu = stat_cpu_seconds(dir + "/stat");
  if (cpu < 0) return u;
  u.cpu_seconds = cpu;
  std::ifstream status(dir + "/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmHWM:", 0) == 0) u.max_rss_kb = std::stoll(line.substr(6));
  }
  return u;
}

MachineCpu read_machine_cpu() {
  MachineCpu m;
  std::ifstream stat("/proc/stat");
  std::string cpu;
  stat >> cpu;  // "cpu": user nice system idle iowait irq softirq steal ...
  double ticks = 0;
  for (int i = 0; i < 8 && stat >> ticks; ++i) {
    m.total_seconds += ticks;
    if (i != 3 && i != 4) m.busy_seconds += ticks;
  }
  const auto hz = static_cast<double>(::sysconf(_SC_CLK_TCK));
  m.busy_seconds /= hz;
  m.total_seconds /= hz;
  return m;
}

std::map<pid_t, ThreadCpu> read_thread_cpu(pid_t pid) {
  std::map<pid_t, ThreadCpu> out;
  if (pid <= 0) return out;
  std::error_code ec;
  const std::string dir = "/proc/" + std::to_string(pid) + "/task";
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    const std::string tid = entry.path().filename().string();
    const double cpu = stat_cpu_seconds(entry.path().string() + "/stat");
    if (cpu < 0) continue;
    std::ifstream comm(entry.path().string() + "/comm");
    std::string name;
    std::getline(comm, name);
    out[static_cast<pid_t>(std::stol(tid))] = {name, cpu};
  }
  return out;
}

HubProbe::HubProbe(int port, bool keep_alive)
    : client_(std::make_unique<httplib::Client>("127.0.0.1", port)) {
  client_->set_connection_timeout(5);
  client_->set_read_timeout(300);
  client_->set_keep_alive(keep_alive);
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

Expected<HubProbe::Reply> HubProbe::send_json(const std::string& method, const std::string& path,
                                              const std::string& body,
                                              const std::string& content_type) {
  httplib::Result res = method == "PUT"    ? client_->Put(path, body, content_type)
                        : method == "POST" ? client_->Post(path, body, content_type)
                                           : client_->Patch(path, body, content_type);
  if (!res) {
    return Error("Failed to " + method + " '" + path + "': " + httplib::to_string(res.error()));
  }
  return Reply{res->status, res->body};
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

std::vector<double> HubProbe::metric_values(const std::string& text, const std::string& name) {
  std::vector<double> out;
  size_t pos = 0;
  while ((pos = text.find(name, pos)) != std::string::npos) {
    const size_t end = pos + name.size();
    const bool line_start = pos == 0 || text[pos - 1] == '\n';
    if (line_start && end < text.size() && (text[end] == '{' || text[end] == ' ')) {
      const size_t space = text.find(' ', text[end] == '{' ? text.find('}', end) : end);
      if (space != std::string::npos) out.push_back(std::strtod(&text[space + 1], nullptr));
    }
    pos = end;
  }
  return out;
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
