#include "runtime/proc_stat.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <string>

namespace flotilla::runtime {
namespace {

std::optional<std::string> read_small_file(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return std::nullopt;
  std::string text;
  char buf[1024];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    text.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return text;
}

// Splits the fields after the command name, which is in parentheses and may hold spaces or
// parentheses itself -- hence the search for the last ')'.
std::optional<ProcStat> parse_stat(int64_t pid, const std::string& text) {
  size_t close = text.rfind(')');
  if (close == std::string::npos) return std::nullopt;
  std::vector<std::string> fields;  // fields[0] is field 3 (state)
  size_t i = close + 1;
  while (i < text.size() && fields.size() < 20) {
    while (i < text.size() && text[i] == ' ') ++i;
    size_t end = text.find(' ', i);
    if (end == std::string::npos) end = text.size();
    if (end > i) fields.push_back(text.substr(i, end - i));
    i = end;
  }
  if (fields.size() < 20 || fields[0].empty()) return std::nullopt;
  ProcStat st;
  st.pid = pid;
  st.state = fields[0][0];
  st.ppid = std::strtoll(fields[1].c_str(), nullptr, 10);
  st.pgid = std::strtoll(fields[2].c_str(), nullptr, 10);
  st.sid = std::strtoll(fields[3].c_str(), nullptr, 10);
  st.start_ticks = std::strtoull(fields[19].c_str(), nullptr, 10);
  return st;
}

}  // namespace

std::optional<ProcStat> read_proc_stat(int64_t pid) {
  if (pid <= 0) return std::nullopt;
  auto text = read_small_file("/proc/" + std::to_string(pid) + "/stat");
  if (!text) return std::nullopt;
  return parse_stat(pid, *text);
}

bool is_same_live_process(int64_t pid, uint64_t start_ticks) {
  auto st = read_proc_stat(pid);
  return st && !st->zombie() && st->start_ticks == start_ticks;
}

std::vector<ProcStat> live_group_members(int64_t pgid) {
  std::vector<ProcStat> members;
  if (pgid <= 0) return members;
  DIR* dir = ::opendir("/proc");
  if (dir == nullptr) return members;
  while (struct dirent* ent = ::readdir(dir)) {
    char* end = nullptr;
    long long pid = std::strtoll(ent->d_name, &end, 10);
    if (pid <= 0 || end == nullptr || *end != '\0') continue;
    auto st = read_proc_stat(pid);
    if (st && st->pgid == pgid && !st->zombie()) members.push_back(*st);
  }
  ::closedir(dir);
  return members;
}

}  // namespace flotilla::runtime
