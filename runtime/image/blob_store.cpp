#include "runtime/image/blob_store.hpp"

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/fs.hpp"
#include "runtime/image/reference.hpp"

namespace flotilla::runtime::image {

BlobStore::BlobStore(std::string root) : root_(std::move(root)) {}

Status BlobStore::init() { return fs::make_dirs(root_ + "/blobs/sha256"); }

std::string BlobStore::path(const std::string& digest) const {
  return root_ + "/blobs/sha256/" + digest_hex(digest);
}

bool BlobStore::has(const std::string& digest) const {
  struct stat st {};
  return ::stat(path(digest).c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

Expected<BlobResult> BlobStore::ensure(const std::string& digest, const Download& download,
                                       bool* retryable) {
  if (!valid_digest(digest)) return Error("Failed to store blob '" + digest + "': invalid digest");
  BlobResult result;
  result.path = path(digest);
  {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return in_flight_.count(digest) == 0; });
    if (has(digest)) return result;
    in_flight_.insert(digest);
    ++downloads_;
  }
  auto out = download(result.path);
  {
    std::lock_guard<std::mutex> lock(mu_);
    in_flight_.erase(digest);
  }
  cv_.notify_all();
  if (!out) {
    if (retryable != nullptr) *retryable = out.failure().retryable;
    return out.failure().error;
  }
  result.bytes_fetched = out->bytes_fetched;
  return result;
}

Status BlobStore::put(const std::string& digest, const std::string& bytes) {
  if (!valid_digest(digest)) return Error("Failed to store blob '" + digest + "': invalid digest");
  // Under the lock: write_atomic's temp name is per process, not per thread.
  std::lock_guard<std::mutex> lock(mu_);
  if (has(digest)) return Ok();
  return fs::write_atomic(path(digest), bytes);
}

std::map<std::string, uint64_t> BlobStore::list() const {
  std::map<std::string, uint64_t> out;
  std::string dir = root_ + "/blobs/sha256";
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) return out;
  while (auto* e = readdir(d)) {
    std::string name = e->d_name;
    if (name.size() != 64) continue;  // skips ".partial" files and temp files
    struct stat st {};
    if (::stat((dir + "/" + name).c_str(), &st) == 0 && S_ISREG(st.st_mode)) {
      out["sha256:" + name] = static_cast<uint64_t>(st.st_size);
    }
  }
  closedir(d);
  return out;
}

Status BlobStore::remove(const std::string& digest) {
  std::lock_guard<std::mutex> lock(mu_);
  if (in_flight_.count(digest)) return Ok();
  std::string p = path(digest);
  if (::unlink(p.c_str()) != 0 && errno != ENOENT) {
    return Error("Failed to remove blob '" + p + "': " + std::strerror(errno));
  }
  ::unlink((p + ".partial").c_str());
  return Ok();
}

uint64_t BlobStore::downloads() const {
  std::lock_guard<std::mutex> lock(mu_);
  return downloads_;
}

}  // namespace flotilla::runtime::image
