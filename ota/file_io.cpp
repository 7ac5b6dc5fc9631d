#include "ota/file_io.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <memory>

namespace flotilla::ota {
namespace {

std::string errno_text(int err) { return std::strerror(err); }

}  // namespace

Expected<MappedFile> MappedFile::open(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Error("Failed to open '" + path + "': " + errno_text(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    return Error("Failed to open '" + path + "': " + errno_text(err));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    return Error("Failed to open '" + path + "': not a regular file");
  }
  const auto size = static_cast<size_t>(st.st_size);
  void* addr = nullptr;
  if (size > 0) {
    addr = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (addr == MAP_FAILED) {
      const int err = errno;
      ::close(fd);
      return Error("Failed to map '" + path + "': " + errno_text(err));
    }
    ::madvise(addr, size, MADV_WILLNEED);
  }
  ::close(fd);
  return MappedFile(addr, size);
}

MappedFile::MappedFile(MappedFile&& other) noexcept : addr_(other.addr_), size_(other.size_) {
  other.addr_ = nullptr;
  other.size_ = 0;
}

MappedFile::~MappedFile() {
  if (addr_ != nullptr) ::munmap(addr_, size_);
}

Expected<AtomicOutput> AtomicOutput::create(const std::string& path, mode_t mode) {
  std::string tmp = path + ".tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0) return Error("Failed to create '" + tmp + "': " + errno_text(errno));
  // A leftover temp file (a writer killed mid-way) keeps its old mode through O_TRUNC.
  if (::fchmod(fd, mode) != 0) {
    const int err = errno;
    ::close(fd);
    return Error("Failed to create '" + tmp + "': " + errno_text(err));
  }
  return AtomicOutput(path, std::move(tmp), fd);
}

AtomicOutput::AtomicOutput(AtomicOutput&& other) noexcept
    : path_(std::move(other.path_)),
      tmp_(std::move(other.tmp_)),
      fd_(other.fd_),
      size_(other.size_) {
  other.fd_ = -1;
  other.tmp_.clear();
}

AtomicOutput::~AtomicOutput() {
  if (fd_ >= 0) ::close(fd_);
  if (!tmp_.empty()) ::unlink(tmp_.c_str());
}

Status AtomicOutput::write(std::string_view data) {
  hash_.update(data);
  size_ += data.size();
  while (!data.empty()) {
    const ssize_t n = ::write(fd_, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Error("Failed to write '" + tmp_ + "': " + errno_text(errno));
    data.remove_prefix(static_cast<size_t>(n));
  }
  return Ok();
}

Status AtomicOutput::commit() {
  if (::fsync(fd_) != 0) return Error("Failed to fsync '" + tmp_ + "': " + errno_text(errno));
  ::close(fd_);
  fd_ = -1;
  if (::rename(tmp_.c_str(), path_.c_str()) != 0) {
    return Error("Failed to rename '" + tmp_ + "' to '" + path_ + "': " + errno_text(errno));
  }
  tmp_.clear();
  std::string dir = std::filesystem::path(path_).parent_path().string();
  if (dir.empty()) dir = ".";
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
  return Ok();
}

Expected<FileDigest> copy_file_atomic(const std::string& from, const std::string& to,
                                      const CopyOptions& options) {
  const int fd = ::open(from.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Error("Failed to open '" + from + "': " + errno_text(errno));
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  struct stat st {};
  if (::fstat(fd, &st) != 0) return Error("Failed to stat '" + from + "': " + errno_text(errno));
  const auto total = static_cast<uint64_t>(st.st_size);
  auto out = AtomicOutput::create(to, options.mode);
  if (!out) return out.error();
  std::unique_ptr<char[]> buf(new char[1 << 20]);
  bool half_seen = false;
  while (true) {
    const ssize_t n = ::read(fd, buf.get(), 1 << 20);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Error("Failed to read '" + from + "': " + errno_text(errno));
    if (n == 0) break;
    if (auto w = out->write(std::string_view(buf.get(), static_cast<size_t>(n))); !w) {
      return w.error();
    }
    if (!half_seen && options.at_half && out->size() * 2 >= total && out->size() < total) {
      half_seen = true;
      options.at_half();
    }
  }
  if (auto c = out->commit(); !c) return c.error();
  return FileDigest{out->sha256(), out->size()};
}

}  // namespace flotilla::ota
