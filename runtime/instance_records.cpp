#include "runtime/instance_records.hpp"

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <map>

namespace flotilla::runtime {
namespace {

std::map<std::string, std::string> parse_lines(const std::string& text) {
  std::map<std::string, std::string> fields;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    std::string line = text.substr(pos, end - pos);
    size_t eq = line.find('=');
    if (eq != std::string::npos) fields[line.substr(0, eq)] = line.substr(eq + 1);
    pos = end + 1;
  }
  return fields;
}

std::optional<int64_t> parse_int(const std::string& text) {
  if (text.empty()) return std::nullopt;
  errno = 0;
  char* end = nullptr;
  long long v = std::strtoll(text.c_str(), &end, 10);
  if (errno != 0 || end == nullptr || *end != '\0') return std::nullopt;
  return v;
}

}  // namespace

std::string format_pid_record(const PidRecord& record) {
  return "pid=" + std::to_string(record.pid) + "\nstart=" + std::to_string(record.start_ticks) +
         "\n";
}

std::optional<PidRecord> parse_pid_record(const std::string& text) {
  auto fields = parse_lines(text);
  auto pid = parse_int(fields["pid"]);
  auto start = parse_int(fields["start"]);
  if (!pid || !start || *pid <= 0 || *start < 0) return std::nullopt;
  return PidRecord{*pid, static_cast<uint64_t>(*start)};
}

std::string format_exit_record(const ExitRecord& record) {
  std::string text = record.signal != 0 ? "signal=" + std::to_string(record.signal)
                                        : "code=" + std::to_string(record.exit_code);
  text += "\n";
  if (!record.message.empty()) {
    std::string line = record.message;
    for (char& c : line) {
      if (c == '\n' || c == '\r') c = ' ';
    }
    text += "message=" + line + "\n";
  }
  return text;
}

std::optional<ExitRecord> parse_exit_record(const std::string& text) {
  auto fields = parse_lines(text);
  ExitRecord record;
  if (auto sig = parse_int(fields["signal"]); sig && *sig > 0) {
    record.signal = static_cast<int>(*sig);
  } else if (auto code = parse_int(fields["code"]); code) {
    record.exit_code = static_cast<int>(*code);
  } else {
    return std::nullopt;
  }
  record.message = fields["message"];
  return record;
}

std::string describe_exit(const ExitRecord& record) {
  std::string text;
  if (record.signal != 0) {
    text = "killed by signal " + std::to_string(record.signal);
    if (const char* name = ::sigabbrev_np(record.signal)) text += std::string(" (SIG") + name + ")";
  } else {
    text = "exited with code " + std::to_string(record.exit_code);
  }
  if (!record.message.empty()) text += ": " + record.message;
  return text;
}

}  // namespace flotilla::runtime
