// Internal helpers shared by the libcurl users in this folder (fetch_to_file, http_get):
// libcurl itself, loaded on first use; option setup common to every transfer; error text.
// Not a public header of the image module.
#pragma once

#include <curl/curl.h>

#include <string>

#include "common/expected.hpp"

namespace flotilla::runtime::image::detail {

// The libcurl functions used here. libcurl is dlopen'ed (common/dynlib.hpp), not linked: it and
// its ~20 dependencies are loaded only when a node first pulls an image or an update. Calls go
// through these pointers, so libcurl's gcc type-check macros don't apply: setopt values must
// be long, curl_off_t, a pointer or a callback, as libcurl's documentation says per option.
struct Curl {
  decltype(&::curl_global_init) global_init;
  decltype(&::curl_easy_init) easy_init;
  decltype(&::curl_easy_cleanup) easy_cleanup;
  decltype(&::curl_easy_setopt) easy_setopt;
  decltype(&::curl_easy_getinfo) easy_getinfo;
  decltype(&::curl_easy_perform) easy_perform;
  decltype(&::curl_easy_strerror) easy_strerror;
  decltype(&::curl_slist_append) slist_append;
  decltype(&::curl_slist_free_all) slist_free_all;
};

// libcurl.so.4, loaded and curl_global_init'ed once per process (thread-safe); an Error naming
// the library when it is missing. Later calls return the first outcome.
const Expected<const Curl*>& curl();

// The options every transfer here shares: URL, headers, error buffer, no signals, TCP_NODELAY,
// an extra CA file (if any), and at most 5 redirects, only to http(s). `protocols` lists the
// schemes the URL itself may use ("http,https" or "http,https,file").
void set_common_options(const Curl& api, CURL* c, const std::string& url, curl_slist* headers,
                        char* errbuf, const std::string& ca_file, const char* protocols);

// Human text for a failed transfer: "connection refused", "timed out", curl's own message.
std::string curl_failure_text(const Curl& api, CURL* curl, CURLcode code, const char* errbuf);

// Whether a failed transfer may succeed when tried again.
bool curl_retryable(CURLcode code);

// Lowercased header name and trimmed value of a "Name: value" header line; false if none.
bool split_header(const std::string& line, std::string& name, std::string& value);

}  // namespace flotilla::runtime::image::detail
