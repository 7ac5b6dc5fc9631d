#include "runtime/image/http_fetch.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>

#include "common/sha256.hpp"
#include "runtime/image/curl_util.hpp"

namespace flotilla::runtime::image {
namespace {

// Hashes what is already in `fd` (a partial download being resumed) into `hash`.
bool hash_fd(int fd, Sha256& hash, uint64_t& size) {
  char buf[1 << 16];
  size = 0;
  if (lseek(fd, 0, SEEK_SET) < 0) return false;
  while (true) {
    ssize_t n = read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return false;
    if (n == 0) return true;
    hash.update(std::string_view(buf, static_cast<size_t>(n)));
    size += static_cast<uint64_t>(n);
  }
}

bool write_all(int fd, const char* data, size_t len) {
  while (len > 0) {
    ssize_t n = write(fd, data, len);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data += n;
    len -= static_cast<size_t>(n);
  }
  return true;
}

void fsync_dir_of(const std::string& path) {
  auto slash = path.rfind('/');
  std::string dir = slash == std::string::npos ? "." : (slash == 0 ? "/" : path.substr(0, slash));
  int fd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd >= 0) {
    fsync(fd);
    close(fd);
  }
}

// One transfer's state, shared with libcurl's callbacks.
struct Transfer {
  const FetchRequest* req = nullptr;
  int fd = -1;
  std::unique_ptr<Sha256> hash = std::make_unique<Sha256>();
  uint64_t offset = 0;  // bytes of the partial file being resumed
  uint64_t size = 0;    // bytes in the file now
  uint64_t fetched = 0;
  bool resumed = false;
  bool is_file = false;
  long status = 0;
  bool decided = false;  // the response (206 or 200) was checked against the resume offset
  std::string content_range;
  std::string www_authenticate;
  std::string error_body;  // start of a 4xx/5xx body, for the message
  std::string abort_reason;
  bool abort_retryable = false;
};

size_t on_header(char* data, size_t size, size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  std::string line(data, size * n);
  if (line.rfind("HTTP/", 0) == 0) {  // a new response (after a redirect or 100)
    t->content_range.clear();
    t->www_authenticate.clear();
    auto sp = line.find(' ');
    t->status = sp == std::string::npos ? 0 : std::strtol(line.c_str() + sp + 1, nullptr, 10);
    return size * n;
  }
  std::string name, value;
  if (detail::split_header(line, name, value)) {
    if (name == "content-range") t->content_range = value;
    if (name == "www-authenticate") t->www_authenticate = value;
  }
  return size * n;
}

// Called before the first body byte: decides between continuing the partial file (206 with the
// right Content-Range) and starting over (200: the server ignored the Range).
bool decide(Transfer* t) {
  t->decided = true;
  if (t->is_file || t->offset == 0) return true;
  if (t->status == 206) {
    unsigned long long start = 0;
    if (std::sscanf(t->content_range.c_str(), "bytes %llu-", &start) != 1 || start != t->offset) {
      t->abort_reason = "unexpected Content-Range '" + t->content_range + "' for a resume at " +
                        std::to_string(t->offset);
      t->abort_retryable = true;
      return false;
    }
    t->resumed = true;
    return true;
  }
  // 200: the whole body comes again.
  if (ftruncate(t->fd, 0) != 0 || lseek(t->fd, 0, SEEK_SET) < 0) {
    t->abort_reason = std::string("cannot truncate the partial file: ") + std::strerror(errno);
    return false;
  }
  t->hash = std::make_unique<Sha256>();
  t->offset = 0;
  t->size = 0;
  return true;
}

size_t on_body(char* data, size_t size, size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  size_t len = size * n;
  if (!t->is_file && (t->status < 200 || t->status >= 300)) {
    if (t->error_body.size() < 512) t->error_body.append(data, std::min<size_t>(len, 512));
    return len;
  }
  if (!t->decided && !decide(t)) return 0;
  if (t->req->max_bytes > 0 && t->size + len > t->req->max_bytes) {
    t->abort_reason = "larger than the expected " + std::to_string(t->req->max_bytes) + " bytes";
    return 0;
  }
  if (!write_all(t->fd, data, len)) {
    t->abort_reason = std::string("cannot write the partial file: ") + std::strerror(errno);
    t->abort_retryable = true;
    return 0;
  }
  t->hash->update(std::string_view(data, len));
  t->size += len;
  t->fetched += len;
  if (t->req->on_progress) t->req->on_progress(t->size, t->fetched);
  return len;
}

int on_progress(void* user, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  auto* t = static_cast<Transfer*>(user);
  return (t->req->cancel != nullptr && t->req->cancel->load()) ? 1 : 0;
}

FetchError fail(const FetchRequest& req, const std::string& cause, bool retryable, long status = 0,
                std::string challenge = {}) {
  FetchError e;
  e.error = Error("Failed to fetch '" + req.url + "': " + cause);
  e.retryable = retryable;
  e.http_status = status;
  e.www_authenticate = std::move(challenge);
  return e;
}

}  // namespace

FetchOutcome fetch_to_file(const FetchRequest& req) {
  const auto& loaded = detail::curl();
  if (!loaded) return fail(req, loaded.error().message(), false);
  const detail::Curl& api = **loaded;
  const std::string partial = req.dest + ".partial";
  int fd = open(partial.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return fail(req, "cannot open '" + partial + "': " + std::strerror(errno), false);
  struct FdCloser {
    int fd;
    ~FdCloser() { close(fd); }
  } closer{fd};

  Transfer t;
  t.req = &req;
  t.fd = fd;
  t.is_file = req.url.rfind("file://", 0) == 0;
  if (!hash_fd(fd, *t.hash, t.offset)) {
    return fail(req, "cannot read '" + partial + "': " + std::strerror(errno), false);
  }
  t.size = t.offset;
  if (lseek(fd, 0, SEEK_END) < 0) return fail(req, "cannot seek the partial file", false);
  if (t.is_file && t.offset > 0) t.resumed = true;

  std::unique_ptr<CURL, decltype(&curl_easy_cleanup)> curl(api.easy_init(), api.easy_cleanup);
  char errbuf[CURL_ERROR_SIZE] = {0};
  curl_slist* headers = nullptr;
  for (const auto& h : req.headers) headers = api.slist_append(headers, h.c_str());
  std::unique_ptr<curl_slist, decltype(&curl_slist_free_all)> header_list(headers,
                                                                          api.slist_free_all);
  CURL* c = curl.get();
  detail::set_common_options(api, c, req.url, headers, errbuf, req.ca_file, "http,https,file");
  api.easy_setopt(c, CURLOPT_CONNECTTIMEOUT, static_cast<long>(req.connect_timeout.count()));
  api.easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1024L);
  api.easy_setopt(c, CURLOPT_LOW_SPEED_TIME, static_cast<long>(req.low_speed_time.count()));
  api.easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
  api.easy_setopt(c, CURLOPT_HEADERDATA, &t);
  api.easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
  api.easy_setopt(c, CURLOPT_WRITEDATA, &t);
  api.easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
  api.easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
  api.easy_setopt(c, CURLOPT_XFERINFODATA, &t);
  // CURLOPT_RANGE rather than RESUME_FROM for http: libcurl refuses a 200 answer to a resume,
  // and a server without Range support must restart the download, not fail it.
  std::string range = std::to_string(t.offset) + "-";
  if (t.offset > 0 && t.is_file) {
    api.easy_setopt(c, CURLOPT_RESUME_FROM_LARGE, curl_off_t(t.offset));
  } else if (t.offset > 0) {
    api.easy_setopt(c, CURLOPT_RANGE, range.c_str());
  }

  CURLcode rc = api.easy_perform(c);
  long status = t.status;
  if (!t.is_file) api.easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);

  // A 416 on a resume means the partial file may already hold everything (a crash between the
  // last byte and the rename): the digest check below settles it.
  bool complete_partial = !t.is_file && status == 416 && t.offset > 0;
  if (!complete_partial) {
    if (!t.abort_reason.empty()) {
      if (!t.abort_retryable) unlink(partial.c_str());
      return fail(req, t.abort_reason, t.abort_retryable, status);
    }
    if (rc == CURLE_ABORTED_BY_CALLBACK) return fail(req, "cancelled", true, status);
    if (!t.is_file && (status < 200 || status >= 300) && status != 0) {
      std::string cause = "HTTP " + std::to_string(status);
      if (!t.error_body.empty() && t.error_body.size() < 200) cause += " (" + t.error_body + ")";
      while (!cause.empty() && (cause.back() == '\n' || cause.back() == '\r')) cause.pop_back();
      return fail(req, cause, status >= 500 || status == 429 || status == 408, status,
                  t.www_authenticate);
    }
    if (rc != CURLE_OK) {
      return fail(req, detail::curl_failure_text(api, c, rc, errbuf), detail::curl_retryable(rc),
                  status);
    }
  }

  FetchResult result;
  result.sha256 = t.hash->hex_final();
  result.size = t.size;
  result.bytes_fetched = t.fetched;
  result.resumed = t.resumed;
  result.http_status = t.is_file ? 0 : status;
  if (!req.sha256.empty() && result.sha256 != req.sha256) {
    unlink(partial.c_str());
    return fail(req,
                "digest mismatch (want sha256:" + req.sha256 + ", got sha256:" + result.sha256 +
                    ", " + std::to_string(result.size) + " bytes)",
                complete_partial, status);
  }
  if (fsync(fd) != 0 || rename(partial.c_str(), req.dest.c_str()) != 0) {
    return fail(req, "cannot store '" + req.dest + "': " + std::strerror(errno), false, status);
  }
  fsync_dir_of(req.dest);
  return result;
}

Expected<std::string> sha256_file(const std::string& path) {
  auto digest = flotilla::sha256_file(path);
  if (!digest) return digest.error();
  return digest->sha256;
}

}  // namespace flotilla::runtime::image
