#include "runtime/image/http_get.hpp"

#include <cerrno>
#include <cstring>
#include <memory>

#include "common/dynlib.hpp"
#include "runtime/image/curl_util.hpp"

namespace flotilla::runtime::image {
namespace detail {

const Expected<const Curl*>& curl() {
  static const Expected<const Curl*> loaded = []() -> Expected<const Curl*> {
    auto lib = DynLib::open("libcurl.so.4");
    if (!lib) return lib.error();
    static Curl api;
    lib->bind("curl_global_init", api.global_init);
    lib->bind("curl_easy_init", api.easy_init);
    lib->bind("curl_easy_cleanup", api.easy_cleanup);
    lib->bind("curl_easy_setopt", api.easy_setopt);
    lib->bind("curl_easy_getinfo", api.easy_getinfo);
    lib->bind("curl_easy_perform", api.easy_perform);
    lib->bind("curl_easy_strerror", api.easy_strerror);
    lib->bind("curl_slist_append", api.slist_append);
    lib->bind("curl_slist_free_all", api.slist_free_all);
    if (auto st = lib->status(); !st) return st.error();
    if (CURLcode rc = api.global_init(CURL_GLOBAL_DEFAULT); rc != CURLE_OK) {
      return Error("Failed to initialise libcurl: " + std::string(api.easy_strerror(rc)));
    }
    return &api;
  }();
  return loaded;
}

void set_common_options(const Curl& api, CURL* c, const std::string& url, curl_slist* headers,
                        char* errbuf, const std::string& ca_file, const char* protocols) {
  api.easy_setopt(c, CURLOPT_URL, url.c_str());
  api.easy_setopt(c, CURLOPT_HTTPHEADER, headers);
  api.easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
  api.easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  api.easy_setopt(c, CURLOPT_TCP_NODELAY, 1L);
  if (!ca_file.empty()) api.easy_setopt(c, CURLOPT_CAINFO, ca_file.c_str());
  api.easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
  api.easy_setopt(c, CURLOPT_MAXREDIRS, 5L);
  api.easy_setopt(c, CURLOPT_PROTOCOLS_STR, protocols);
  api.easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
}

std::string curl_failure_text(const Curl& api, CURL* curl, CURLcode code, const char* errbuf) {
  long os_errno = 0;
  api.easy_getinfo(curl, CURLINFO_OS_ERRNO, &os_errno);
  if (code == CURLE_COULDNT_CONNECT && os_errno == ECONNREFUSED) return "connection refused";
  if (code == CURLE_OPERATION_TIMEDOUT) return "timed out";
  if (errbuf != nullptr && errbuf[0] != '\0') return errbuf;
  return api.easy_strerror(code);
}

bool curl_retryable(CURLcode code) {
  switch (code) {
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_URL_MALFORMAT:
    case CURLE_FILE_COULDNT_READ_FILE:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CACERT_BADFILE:
      return false;
    default:
      return true;
  }
}

bool split_header(const std::string& line, std::string& name, std::string& value) {
  auto colon = line.find(':');
  if (colon == std::string::npos) return false;
  name = line.substr(0, colon);
  for (auto& ch : name) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  size_t b = colon + 1, e = line.size();
  while (b < e && (line[b] == ' ' || line[b] == '\t')) ++b;
  while (e > b && (line[e - 1] == '\r' || line[e - 1] == '\n' || line[e - 1] == ' ')) --e;
  value = line.substr(b, e - b);
  return true;
}

}  // namespace detail

namespace {

struct GetState {
  HttpResponse* resp;
  uint64_t max_bytes;
  bool too_large = false;
};

size_t on_header(char* data, size_t size, size_t n, void* user) {
  auto* st = static_cast<GetState*>(user);
  std::string line(data, size * n);
  if (line.rfind("HTTP/", 0) == 0) {
    st->resp->headers.clear();
    return size * n;
  }
  std::string name, value;
  if (detail::split_header(line, name, value)) st->resp->headers[name] = value;
  return size * n;
}

size_t on_body(char* data, size_t size, size_t n, void* user) {
  auto* st = static_cast<GetState*>(user);
  if (st->resp->body.size() + size * n > st->max_bytes) {
    st->too_large = true;
    return 0;
  }
  st->resp->body.append(data, size * n);
  return size * n;
}

int on_progress(void* user, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  const auto* cancel = static_cast<const std::atomic<bool>*>(user);
  return (cancel != nullptr && cancel->load()) ? 1 : 0;
}

}  // namespace

HttpGetOutcome http_get(const HttpGetRequest& req) {
  HttpGetOutcome out;
  const auto& loaded = detail::curl();
  if (!loaded) {
    out.error = {loaded.error().message(), false};
    return out;
  }
  const detail::Curl& api = **loaded;
  GetState st{&out.response, req.max_bytes};
  std::unique_ptr<CURL, decltype(&curl_easy_cleanup)> curl(api.easy_init(), api.easy_cleanup);
  CURL* c = curl.get();
  char errbuf[CURL_ERROR_SIZE] = {0};
  curl_slist* headers = nullptr;
  for (const auto& h : req.headers) headers = api.slist_append(headers, h.c_str());
  std::unique_ptr<curl_slist, decltype(&curl_slist_free_all)> header_list(headers,
                                                                          api.slist_free_all);
  detail::set_common_options(api, c, req.url, headers, errbuf, req.ca_file, "http,https");
  api.easy_setopt(c, CURLOPT_TIMEOUT, static_cast<long>(req.timeout.count()));
  api.easy_setopt(c, CURLOPT_CONNECTTIMEOUT, static_cast<long>(req.connect_timeout.count()));
  api.easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
  api.easy_setopt(c, CURLOPT_HEADERDATA, &st);
  api.easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
  api.easy_setopt(c, CURLOPT_WRITEDATA, &st);
  if (req.cancel != nullptr) {
    api.easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
    api.easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
    api.easy_setopt(c, CURLOPT_XFERINFODATA, const_cast<std::atomic<bool>*>(req.cancel));
  }
  if (!req.basic_user.empty()) {
    api.easy_setopt(c, CURLOPT_HTTPAUTH, CURLAUTH_BASIC);
    api.easy_setopt(c, CURLOPT_USERNAME, req.basic_user.c_str());
    api.easy_setopt(c, CURLOPT_PASSWORD, req.basic_password.c_str());
  }
  CURLcode rc = api.easy_perform(c);
  if (st.too_large) {
    out.error = {"response larger than " + std::to_string(req.max_bytes) + " bytes", false};
    return out;
  }
  if (rc == CURLE_ABORTED_BY_CALLBACK) {
    out.error = {"cancelled", true};
    return out;
  }
  if (rc != CURLE_OK) {
    out.error = {detail::curl_failure_text(api, c, rc, errbuf), detail::curl_retryable(rc)};
    return out;
  }
  api.easy_getinfo(c, CURLINFO_RESPONSE_CODE, &out.response.status);
  out.ok = true;
  return out;
}

}  // namespace flotilla::runtime::image
