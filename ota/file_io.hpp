// File plumbing for the bundle code (internal to ota/): a read-only memory map, and an output
// file that appears at its path only when complete (temp file -> fsync -> rename -> fsync dir).
//
// Thread-safety: each object belongs to one thread.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "common/expected.hpp"
#include "common/sha256.hpp"

namespace flotilla::ota {

// A whole file mapped read-only; its pages live in the page cache, not the heap.
class MappedFile {
 public:
  static Expected<MappedFile> open(const std::string& path);
  MappedFile(MappedFile&& other) noexcept;
  MappedFile& operator=(MappedFile&&) = delete;
  MappedFile(const MappedFile&) = delete;
  ~MappedFile();
  std::string_view data() const { return {static_cast<const char*>(addr_), size_}; }

 private:
  MappedFile(void* addr, size_t size) : addr_(addr), size_(size) {}
  void* addr_ = nullptr;
  size_t size_ = 0;
};

// Writes go to "<path>.tmp"; commit() makes them durable and renames; destroying an uncommitted
// output removes the temp file, so a failure leaves nothing behind at `path`. One writer per
// path: the temp name is fixed so that a writer killed mid-way leaves one file, which the next
// create() truncates, rather than one per process.
class AtomicOutput {
 public:
  static Expected<AtomicOutput> create(const std::string& path, mode_t mode = 0644);
  AtomicOutput(AtomicOutput&& other) noexcept;
  AtomicOutput& operator=(AtomicOutput&&) = delete;
  AtomicOutput(const AtomicOutput&) = delete;
  ~AtomicOutput();

  Status write(std::string_view data);
  Status commit();
  uint64_t size() const { return size_; }
  // SHA-256 of everything written; call once, before or after commit().
  std::string sha256() { return hash_.hex_final(); }

 private:
  AtomicOutput(std::string path, std::string tmp, int fd)
      : path_(std::move(path)), tmp_(std::move(tmp)), fd_(fd) {}
  std::string path_;
  std::string tmp_;
  int fd_ = -1;
  uint64_t size_ = 0;
  Sha256 hash_;
};

struct CopyOptions {
  mode_t mode = 0644;
  // Runs once, when half of the bytes are written (a fail point for crash tests).
  std::function<void()> at_half;
};

// Copies `from` to `to` atomically (AtomicOutput) and returns the copy's digest.
Expected<FileDigest> copy_file_atomic(const std::string& from, const std::string& to,
                                      const CopyOptions& options = {});

}  // namespace flotilla::ota
