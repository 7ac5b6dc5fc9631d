#include "runtime/vm/disk_cache.hpp"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "common/fs.hpp"
#include "common/log.hpp"

namespace flotilla::runtime::vm {
namespace {

constexpr const char* kDigestFragment = "#sha256=";

bool is_hex_digest(const std::string& s) {
  return s.size() == 64 && std::all_of(s.begin(), s.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

bool starts_with(const std::string& s, const std::string& prefix) {
  return s.rfind(prefix, 0) == 0;
}

std::string seconds_text(std::chrono::milliseconds d) {
  return std::to_string((d.count() + 999) / 1000) + " s";
}

}  // namespace

Expected<DiskSource> parse_disk_source(const std::string& location, const std::string& sha256) {
  auto fail = [&](const std::string& why) {
    return Error("Failed to read image source '" + location + "': " + why);
  };
  DiskSource source;
  source.location = location;
  std::string where = location;
  std::string digest = sha256;
  if (size_t hash = where.find(kDigestFragment); hash != std::string::npos) {
    if (!digest.empty()) return fail("a digest both in the URL and in the sha256 field");
    digest = where.substr(hash + std::strlen(kDigestFragment));
    where = where.substr(0, hash);
  }
  if (starts_with(digest, "sha256:")) digest = digest.substr(7);
  if (!digest.empty() && !is_hex_digest(digest)) {
    return fail("sha256 '" + digest + "' is not 64 lowercase hex digits");
  }
  if (where.empty()) return fail("it is empty");
  if (where.find('\0') != std::string::npos || where.find('\n') != std::string::npos) {
    return fail("it holds a control character");
  }
  source.sha256 = digest;
  if (starts_with(where, "http://") || starts_with(where, "https://")) {
    if (digest.empty()) return fail("a remote image needs a sha256 digest");
    source.url = where;
    return source;
  }
  if (starts_with(where, "file://")) where = where.substr(7);
  if (where.empty() || where[0] != '/') {
    return fail(
        "neither an http(s):// or file:// URL nor an absolute path (OCI artifact "
        "references are not supported by the vm driver)");
  }
  source.local_path = where;
  if (!digest.empty()) source.url = "file://" + where;
  return source;
}

DiskCache::DiskCache(std::string root, FetchFn fetch, const Clock& clock, Options options)
    : root_(std::move(root)), fetch_(std::move(fetch)), clock_(clock), options_(options) {}

DiskCache::~DiskCache() {
  std::map<std::string, std::unique_ptr<Download>> downloads;
  {
    std::lock_guard<std::mutex> lock(mu_);
    downloads.swap(downloads_);
  }
  for (auto& [digest, d] : downloads) d->cancel = true;
  for (auto& [digest, d] : downloads) {
    if (d->worker.joinable()) d->worker.join();
  }
}

Expected<std::string> DiskCache::path(const DiskSource& source) const {
  if (source.url.empty()) {
    if (::access(source.local_path.c_str(), R_OK) != 0) {
      return Error("Failed to read image '" + source.local_path + "': " + std::strerror(errno));
    }
    return source.local_path;
  }
  std::string cached = path_for(source.sha256);
  if (!fs::exists(cached)) {
    return Error("image '" + source.location + "' (sha256:" + source.sha256 +
                 ") is not on the node yet: prepare() fetches it");
  }
  return cached;
}

Preparation DiskCache::prepare(const DiskSource& source) {
  using State = Preparation::State;
  if (source.url.empty()) {
    auto local = path(source);
    if (!local) return {State::kFailed, local.error().message()};
    return {State::kReady, ""};
  }
  std::lock_guard<std::mutex> lock(mu_);
  // Join finished workers now rather than at the next attempt: an unjoined thread keeps its
  // stack, and the agent forks (shims) while holding it.
  for (auto& [digest, download] : downloads_) {
    if (!download->running && download->worker.joinable()) download->worker.join();
  }
  std::unique_ptr<Download>& d = downloads_[source.sha256];
  if (!d) d = std::make_unique<Download>();
  if (d->running) {
    std::error_code ec;
    auto partial = std::filesystem::file_size(path_for(source.sha256) + ".partial", ec);
    return {State::kInProgress,
            "fetching '" + source.location + "'" +
                (ec ? "" : " (" + std::to_string(partial >> 20) + " MiB so far)")};
  }
  if (fs::exists(path_for(source.sha256))) return {State::kReady, ""};
  if (!d->error.empty() && clock_.now() < d->next_attempt) {
    auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(d->next_attempt - clock_.now());
    return {State::kFailed, d->error + " (attempt " + std::to_string(d->failures) +
                                "; next attempt in " + seconds_text(left) + ")"};
  }
  if (Status s = fs::make_dirs(root_ + "/sha256"); !s) return {State::kFailed, s.error().message()};
  d->running = true;
  d->cancel = false;
  d->worker = std::thread(&DiskCache::run, this, d.get(), source);
  return {State::kInProgress, "fetching '" + source.location + "'"};
}

void DiskCache::run(Download* d, DiskSource source) {
  image::FetchRequest request;
  request.url = source.url;
  request.dest = path_for(source.sha256);
  request.sha256 = source.sha256;
  request.max_bytes = options_.max_bytes;
  request.cancel = &d->cancel;
  auto logger = log::get("runtime");
  logger->info("vm image fetch started url={} sha256={}", source.url, source.sha256);
  image::FetchOutcome outcome = fetch_(request);
  std::string error;
  if (!outcome) {
    error = outcome.failure().error.message();
  } else if (!fs::exists(request.dest)) {
    error =
        "Failed to fetch '" + source.url + "': the fetcher left no file at '" + request.dest + "'";
  }
  std::lock_guard<std::mutex> lock(mu_);
  d->running = false;
  if (error.empty()) {
    d->error.clear();
    d->failures = 0;
    logger->info("vm image fetched url={} sha256={} bytes={}", source.url, source.sha256,
                 outcome->size);
    return;
  }
  d->error = error;
  ++d->failures;
  std::chrono::milliseconds backoff =
      options_.first_retry * (int64_t{1} << std::min(d->failures - 1, 20));
  d->next_attempt = clock_.now() + std::min(backoff, options_.max_retry);
  logger->warn("vm image fetch failed url={} failures={} error=\"{}\"", source.url, d->failures,
               error);
}

}  // namespace flotilla::runtime::vm
