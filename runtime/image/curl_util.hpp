// Internal helpers shared by the libcurl users in this folder (fetch_to_file, http_get):
// one-time global init, option setup common to every transfer, and error text.
// Not a public header of the image module.
#pragma once

#include <curl/curl.h>

#include <string>

namespace flotilla::runtime::image::detail {

// curl_global_init once per process (thread-safe).
void ensure_curl_global();

// The options every transfer here shares: URL, headers, error buffer, no signals, TCP_NODELAY,
// an extra CA file (if any), and at most 5 redirects, only to http(s). `protocols` lists the
// schemes the URL itself may use ("http,https" or "http,https,file").
void set_common_options(CURL* c, const std::string& url, curl_slist* headers, char* errbuf,
                        const std::string& ca_file, const char* protocols);

// Human text for a failed transfer: "connection refused", "timed out", curl's own message.
std::string curl_failure_text(CURL* curl, CURLcode code, const char* errbuf);

// Whether a failed transfer may succeed when tried again.
bool curl_retryable(CURLcode code);

// Lowercased header name and trimmed value of a "Name: value" header line; false if none.
bool split_header(const std::string& line, std::string& name, std::string& value);

}  // namespace flotilla::runtime::image::detail
