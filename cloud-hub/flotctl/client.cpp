#include "cloud-hub/flotctl/client.hpp"

#include <curl/curl.h>

#include <cctype>
#include <cstring>
#include <memory>

#include <nlohmann/json.hpp>

namespace flotilla::flotctl {
namespace {

size_t append_body(char* data, size_t size, size_t n, void* user) {
  static_cast<std::string*>(user)->append(data, size * n);
  return size * n;
}

// What stream()'s libcurl callbacks share.
struct StreamState {
  CURL* curl = nullptr;
  const std::function<bool(const std::string&)>* on_data = nullptr;
  const std::function<bool()>* stop = nullptr;
  long status = 0;
  std::string body;  // of an answer other than 200
  bool stopped = false;
};

size_t stream_body(char* data, size_t size, size_t n, void* user) {
  auto* st = static_cast<StreamState*>(user);
  if (st->status == 0) curl_easy_getinfo(st->curl, CURLINFO_RESPONSE_CODE, &st->status);
  if (st->status != 200) {
    st->body.append(data, size * n);
    return size * n;
  }
  if (!(*st->on_data)(std::string(data, size * n))) {
    st->stopped = true;
    return 0;  // libcurl ends the transfer
  }
  return size * n;
}

int stream_progress(void* user, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  auto* st = static_cast<StreamState*>(user);
  if (*st->stop && (*st->stop)()) {
    st->stopped = true;
    return 1;  // abort
  }
  return 0;
}

// "Connection refused" says more to a user than "Couldn't connect to server".
std::string transfer_error(CURL* c, CURLcode rc) {
  long os_errno = 0;
  curl_easy_getinfo(c, CURLINFO_OS_ERRNO, &os_errno);
  return os_errno != 0 && rc == CURLE_COULDNT_CONNECT ? std::strerror(static_cast<int>(os_errno))
                                                      : curl_easy_strerror(rc);
}

}  // namespace

std::string url_escape(const std::string& s) {
  static const char* kHex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 0xf];
    }
  }
  return out;
}

std::string hub_error(const HttpResponse& res) {
  auto j = nlohmann::json::parse(res.body, nullptr, false);
  if (j.is_object() && j.contains("error") && j["error"].is_string()) {
    return j["error"].get<std::string>();
  }
  std::string first = res.body.substr(0, res.body.find('\n'));
  return "hub answered HTTP " + std::to_string(res.status) + (first.empty() ? "" : ": " + first);
}

Client::Client(std::string base_url, long timeout_ms, ClientAuth auth)
    : base_url_(std::move(base_url)), timeout_ms_(timeout_ms), auth_(std::move(auth)) {
  while (!base_url_.empty() && base_url_.back() == '/') base_url_.pop_back();
}

Expected<nlohmann::json> Client::request_json(const std::string& method, const std::string& path,
                                              const JsonRequest& req) {
  auto res = request(method, path, req.body, req.content_type);
  if (!res) return res.error();
  if (res->status == 404 && !req.not_found.empty()) return Error(req.not_found + " not found");
  if (res->status != 200) return Error(hub_error(*res));
  auto j = nlohmann::json::parse(res->body, nullptr, false);
  if (!j.is_object()) return Error("hub sent a response that is not JSON");
  return j;
}

curl_slist* Client::apply_auth(void* curl, curl_slist* headers) const {
  if (!auth_.token.empty()) {
    headers = curl_slist_append(headers, ("Authorization: Bearer " + auth_.token).c_str());
  }
  if (!auth_.ca_file.empty()) curl_easy_setopt(curl, CURLOPT_CAINFO, auth_.ca_file.c_str());
  return headers;
}

Expected<HttpResponse> Client::request(const std::string& method, const std::string& path,
                                       const std::string& body, const std::string& content_type) {
  std::unique_ptr<CURL, decltype(&curl_easy_cleanup)> curl(curl_easy_init(), curl_easy_cleanup);
  if (!curl) return Error("Failed to reach hub at " + base_url_ + ": cannot initialise libcurl");
  HttpResponse res;
  const std::string url = base_url_ + path;
  curl_slist* headers = nullptr;
  if (!content_type.empty()) {
    headers = curl_slist_append(headers, ("Content-Type: " + content_type).c_str());
  }
  headers = curl_slist_append(headers, "Accept: application/json");
  headers = apply_auth(curl.get(), headers);
  std::unique_ptr<curl_slist, decltype(&curl_slist_free_all)> header_guard(headers,
                                                                           curl_slist_free_all);
  CURL* c = curl.get();
  curl_easy_setopt(c, CURLOPT_URL, url.c_str());
  curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method.c_str());
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, append_body);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &res.body);
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms_);
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, std::min(timeout_ms_, 10000L));
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  if (method == "PUT" || method == "POST") {
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body.data());
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
  } else if (method == "GET") {
    curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
  }
  CURLcode rc = curl_easy_perform(c);
  if (rc != CURLE_OK) {
    return Error("Failed to reach hub at " + base_url_ + ": " + transfer_error(c, rc));
  }
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &res.status);
  return res;
}

Expected<StreamEnd> Client::stream(const std::string& path,
                                   const std::function<bool(const std::string&)>& on_data,
                                   const std::function<bool()>& stop, long idle_timeout_ms) {
  std::unique_ptr<CURL, decltype(&curl_easy_cleanup)> curl(curl_easy_init(), curl_easy_cleanup);
  if (!curl) return Error("Failed to reach hub at " + base_url_ + ": cannot initialise libcurl");
  CURL* c = curl.get();
  const std::string url = base_url_ + path;
  curl_slist* headers = apply_auth(c, curl_slist_append(nullptr, "Accept: text/event-stream"));
  std::unique_ptr<curl_slist, decltype(&curl_slist_free_all)> header_guard(headers,
                                                                           curl_slist_free_all);
  StreamState st;
  st.curl = c;
  st.on_data = &on_data;
  st.stop = &stop;
  curl_easy_setopt(c, CURLOPT_URL, url.c_str());
  curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, stream_body);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &st);
  curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, stream_progress);
  curl_easy_setopt(c, CURLOPT_XFERINFODATA, &st);
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, std::min(timeout_ms_, 10000L));
  // No overall timeout; a connection that carries nothing for this long is dead.
  curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
  curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, std::max(1L, idle_timeout_ms / 1000));
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  CURLcode rc = curl_easy_perform(c);
  if (st.status == 0) curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &st.status);
  if (rc != CURLE_OK && !st.stopped) {
    return Error("Failed to reach hub at " + base_url_ + ": " + transfer_error(c, rc));
  }
  return StreamEnd{st.status, std::move(st.body), st.stopped};
}

}  // namespace flotilla::flotctl
