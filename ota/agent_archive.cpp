#include "ota/agent_archive.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include "common/fs.hpp"
#include "ota/file_io.hpp"

namespace flotilla::ota {
namespace {

constexpr size_t kBlock = 512;
constexpr size_t kMagicOffset = 257;

bool is_agent_file(const std::string& name) {
  if (name == kAgentBinary) return true;
  return std::any_of(kAgentHelpers.begin(), kAgentHelpers.end(),
                     [&](const char* h) { return name == h; });
}

std::string field(std::string_view header, size_t offset, size_t length) {
  std::string_view f = header.substr(offset, length);
  return std::string(f.substr(0, std::min(f.find('\0'), f.size())));
}

// Octal, space or NUL padded; false for anything else (including GNU base-256 sizes).
bool octal(std::string_view header, size_t offset, size_t length, uint64_t& out) {
  std::string_view f = header.substr(offset, length);
  out = 0;
  size_t i = 0;
  while (i < f.size() && f[i] == ' ') ++i;
  bool digits = false;
  for (; i < f.size() && f[i] >= '0' && f[i] <= '7'; ++i) {
    if (out >> 60) return false;
    out = out * 8 + static_cast<uint64_t>(f[i] - '0');
    digits = true;
  }
  for (; i < f.size(); ++i) {
    if (f[i] != ' ' && f[i] != '\0') return false;
  }
  return digits;
}

bool checksum_ok(std::string_view header) {
  uint64_t want = 0;
  if (!octal(header, 148, 8, want)) return false;
  uint64_t sum = 0;
  for (size_t i = 0; i < kBlock; ++i) {
    sum += (i >= 148 && i < 156) ? ' ' : static_cast<unsigned char>(header[i]);
  }
  return sum == want;
}

void put_octal(char* field, size_t length, uint64_t value) {
  // length-1 digits, then NUL.
  std::snprintf(field, length, "%0*llo", static_cast<int>(length - 1),
                static_cast<unsigned long long>(value));
}

std::string header_for(const std::string& name, mode_t mode, uint64_t size) {
  std::string h(kBlock, '\0');
  std::memcpy(h.data(), name.data(), name.size());
  put_octal(&h[100], 8, mode & 0777);
  put_octal(&h[108], 8, 0);
  put_octal(&h[116], 8, 0);
  put_octal(&h[124], 12, size);
  put_octal(&h[136], 12, 0);
  h[156] = '0';
  std::memcpy(&h[kMagicOffset], "ustar", 6);  // with its NUL
  std::memcpy(&h[263], "00", 2);
  uint64_t sum = 0;
  std::memset(&h[148], ' ', 8);
  for (char c : h) sum += static_cast<unsigned char>(c);
  std::snprintf(&h[148], 8, "%06llo", static_cast<unsigned long long>(sum));
  h[155] = ' ';
  return h;
}

}  // namespace

bool looks_like_tar(std::string_view data) {
  return data.size() >= kBlock && data.substr(kMagicOffset, 5) == "ustar";
}

Expected<std::vector<ArchiveEntry>> read_agent_archive(std::string_view data) {
  auto bad = [](const std::string& why) {
    return Error("Failed to read the agent archive: " + why);
  };
  std::vector<ArchiveEntry> entries;
  uint64_t pos = 0;
  bool ended = false;
  while (pos + kBlock <= data.size()) {
    std::string_view header = data.substr(pos, kBlock);
    if (header.find_first_not_of('\0') == std::string_view::npos) {
      ended = true;
      break;
    }
    if (header.substr(kMagicOffset, 5) != "ustar") {
      return bad("no ustar header at byte " + std::to_string(pos));
    }
    if (!checksum_ok(header)) return bad("bad header checksum at byte " + std::to_string(pos));
    std::string name = field(header, 0, 100);
    const std::string prefix = field(header, 345, 155);
    if (!prefix.empty()) name = prefix + "/" + name;
    if (name.rfind("./", 0) == 0) name = name.substr(2);
    const char type = header[156];
    uint64_t size = 0;
    uint64_t mode = 0;
    if (!octal(header, 124, 12, size) || !octal(header, 100, 8, mode)) {
      return bad("entry '" + name + "' has an unreadable size or mode");
    }
    pos += kBlock;
    if (type == '5' && (name.empty() || name == ".")) continue;  // `tar -C dir .` adds "./"
    if (type != '0' && type != '\0') {
      return bad("entry '" + name + "' is not a regular file (type '" + std::string(1, type) +
                 "'); make the archive with `flotctl artifact build --payload DIR` or " +
                 "`tar --format=ustar`");
    }
    if (!is_agent_file(name)) {
      return bad("entry '" + name + "' is not one of flotilla-agent, flotilla-shim, " +
                 "flotilla-oci-monitor");
    }
    for (const ArchiveEntry& e : entries) {
      if (e.name == name) return bad("entry '" + name + "' appears twice");
    }
    if (size > data.size() - pos) {
      return bad("entry '" + name + "' is cut short (" + std::to_string(size) + " bytes, " +
                 std::to_string(data.size() - pos) + " left)");
    }
    entries.push_back({name, static_cast<mode_t>(mode & 0777), pos, size});
    pos += (size + kBlock - 1) / kBlock * kBlock;
  }
  if (!ended) return bad("it ends without its end-of-archive blocks");
  if (std::none_of(entries.begin(), entries.end(),
                   [](const ArchiveEntry& e) { return e.name == kAgentBinary; })) {
    return bad("it holds no flotilla-agent");
  }
  return entries;
}

Status write_agent_archive(const std::string& dir, const std::string& out) {
  const std::string what = "Failed to pack the agent folder '" + dir + "'";
  std::vector<std::string> names = {kAgentBinary};
  names.insert(names.end(), kAgentHelpers.begin(), kAgentHelpers.end());
  std::sort(names.begin(), names.end());
  auto output = AtomicOutput::create(out);
  if (!output) return output.error().WithContext(what);
  for (const std::string& name : names) {
    const std::string path = dir + "/" + name;
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) {
      return Error(what + ": '" + path + "': " + std::strerror(errno));
    }
    if (!S_ISREG(st.st_mode)) return Error(what + ": '" + path + "' is not a regular file");
    auto file = MappedFile::open(path);
    if (!file) return file.error().WithContext(what);
    const std::string_view data = file->data();
    const std::string header = header_for(name, st.st_mode, data.size());
    const std::string pad((kBlock - data.size() % kBlock) % kBlock, '\0');
    for (std::string_view part : {std::string_view(header), data, std::string_view(pad)}) {
      if (auto w = output->write(part); !w) return w.error().WithContext(what);
    }
  }
  if (auto w = output->write(std::string(2 * kBlock, '\0')); !w) return w.error().WithContext(what);
  if (auto c = output->commit(); !c) return c.error().WithContext(what);
  return Ok();
}

Expected<std::vector<std::string>> extract_agent_archive(const std::string& archive,
                                                         const std::string& dest_dir) {
  auto file = MappedFile::open(archive);
  if (!file) return file.error();
  auto entries = read_agent_archive(file->data());
  if (!entries) return entries.error().WithContext("Failed to use '" + archive + "'");
  std::vector<std::string> names;
  for (const ArchiveEntry& e : *entries) {
    const std::string path = dest_dir + "/" + e.name;
    auto out = AtomicOutput::create(path, e.mode);
    if (!out) return out.error();
    if (auto w = out->write(file->data().substr(e.offset, e.size)); !w) return w.error();
    if (auto c = out->commit(); !c) return c.error();
    names.push_back(e.name);
  }
  return names;
}

}  // namespace flotilla::ota
