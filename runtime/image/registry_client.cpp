#include "runtime/image/registry_client.hpp"

#include <curl/curl.h>

#include <nlohmann/json.hpp>

#include "common/base64.hpp"
#include "common/sha256.hpp"
#include "runtime/image/http_get.hpp"
#include "runtime/image/manifest.hpp"

namespace flotilla::runtime::image {
namespace {

std::string url_escape(const std::string& s) {
  std::string out;
  static const char* kHex = "0123456789ABCDEF";
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 0xf]);
    }
  }
  return out;
}

// `Bearer realm="...",service="...",scope="..."` into its scheme and parameters.
std::map<std::string, std::string> parse_challenge(const std::string& header, std::string& scheme) {
  std::map<std::string, std::string> params;
  auto sp = header.find(' ');
  scheme = header.substr(0, sp);
  for (auto& c : scheme) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (sp == std::string::npos) return params;
  size_t i = sp + 1;
  while (i < header.size()) {
    while (i < header.size() && (header[i] == ' ' || header[i] == ',')) ++i;
    auto eq = header.find('=', i);
    if (eq == std::string::npos) break;
    std::string key = header.substr(i, eq - i);
    for (auto& c : key) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    std::string value;
    i = eq + 1;
    if (i < header.size() && header[i] == '"') {
      ++i;
      while (i < header.size() && header[i] != '"') {
        if (header[i] == '\\' && i + 1 < header.size()) ++i;
        value.push_back(header[i++]);
      }
      ++i;
    } else {
      while (i < header.size() && header[i] != ',') value.push_back(header[i++]);
    }
    params[key] = value;
  }
  return params;
}

// Network failures read as the bare cause ("connection refused"): the caller's "Failed to pull
// '<ref>'" already says what was being done.
Error pull_error(const std::string& what, const std::string& cause, bool network) {
  return Error(network ? cause : what + ": " + cause);
}

}  // namespace

std::string RegistryClient::base_url(const Reference& ref) const {
  std::string host = ref.registry == "docker.io" ? "registry-1.docker.io" : ref.registry;
  bool plain = config_.insecure.count(ref.registry) > 0;
  return (plain ? "http://" : "https://") + host + "/v2/" + ref.repository;
}

std::string RegistryClient::cached_auth(const Reference& ref) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = auth_header_.find(ref.registry + "/" + ref.repository);
  return it == auth_header_.end() ? std::string() : it->second;
}

Expected<std::string> RegistryClient::answer_challenge(const Reference& ref,
                                                       const std::string& challenge) {
  std::string scheme;
  auto params = parse_challenge(challenge, scheme);
  auto cred = config_.credentials.find(ref.registry);
  std::string header;
  if (scheme == "basic") {
    if (cred == config_.credentials.end()) {
      return Error("the registry asks for credentials and none are configured for '" +
                   ref.registry + "'");
    }
    header = "Authorization: Basic " +
             base64_encode(cred->second.username + ":" + cred->second.password);
  } else if (scheme == "bearer") {
    auto realm = params["realm"];
    if (realm.rfind("http://", 0) != 0 && realm.rfind("https://", 0) != 0) {
      return Error("the registry's token realm '" + realm.substr(0, 200) + "' is not an http URL");
    }
    std::string url = realm + (realm.find('?') == std::string::npos ? "?" : "&");
    url += "service=" + url_escape(params["service"]);
    std::string scope =
        params.count("scope") ? params["scope"] : "repository:" + ref.repository + ":pull";
    url += "&scope=" + url_escape(scope);
    HttpGetRequest req;
    req.url = url;
    req.max_bytes = 1 << 20;
    req.ca_file = config_.ca_file;
    if (cred != config_.credentials.end()) {
      req.basic_user = cred->second.username;
      req.basic_password = cred->second.password;
    }
    auto out = http_get(req);
    if (!out.ok) return Error("cannot get a token from '" + realm + "': " + out.error.cause);
    if (out.response.status != 200) {
      return Error("the token server '" + realm + "' answered HTTP " +
                   std::to_string(out.response.status));
    }
    auto j = nlohmann::json::parse(out.response.body, nullptr, false);
    std::string token;
    if (j.is_object()) {
      for (const char* key : {"token", "access_token"}) {
        auto it = j.find(key);
        if (it != j.end() && it->is_string() && !it->get<std::string>().empty()) {
          token = it->get<std::string>();
          break;
        }
      }
    }
    if (token.empty()) return Error("the token server '" + realm + "' sent no token");
    header = "Authorization: Bearer " + token;
  } else {
    return Error("unsupported auth challenge '" + challenge.substr(0, 100) + "'");
  }
  std::lock_guard<std::mutex> lock(mu_);
  auth_header_[ref.registry + "/" + ref.repository] = header;
  return header;
}

Expected<ManifestBytes> RegistryClient::get_manifest(const Reference& ref,
                                                     const std::string& manifest_ref,
                                                     PullError* failure,
                                                     const std::atomic<bool>* cancel) {
  bool network = false;
  auto fail = [&](const std::string& cause, bool retryable) -> Error {
    Error e = pull_error("manifest '" + manifest_ref + "'", cause, network);
    if (failure != nullptr) *failure = {e, retryable};
    return e;
  };
  HttpGetRequest req;
  req.url = base_url(ref) + "/manifests/" + manifest_ref;
  req.max_bytes = 4 << 20;
  req.cancel = cancel;
  req.ca_file = config_.ca_file;
  for (int attempt = 0; attempt < 2; ++attempt) {
    req.headers = {manifest_accept_header()};
    if (auto auth = cached_auth(ref); !auth.empty()) req.headers.push_back(auth);
    auto out = http_get(req);
    if (!out.ok) {
      network = out.error.retryable;
      return fail(out.error.cause, out.error.retryable);
    }
    const auto& resp = out.response;
    if (resp.status == 401 && attempt == 0) {
      auto it = resp.headers.find("www-authenticate");
      if (it == resp.headers.end()) return fail("HTTP 401 without an auth challenge", false);
      auto auth = answer_challenge(ref, it->second);
      if (!auth) return fail(auth.error().message(), false);
      continue;
    }
    if (resp.status == 404) return fail("not found (HTTP 404)", false);
    if (resp.status != 200) {
      return fail("HTTP " + std::to_string(resp.status),
                  resp.status >= 500 || resp.status == 429 || resp.status == 408);
    }
    ManifestBytes m;
    m.body = resp.body;
    auto ct = resp.headers.find("content-type");
    if (ct != resp.headers.end()) m.media_type = ct->second;
    m.digest = "sha256:" + sha256_hex(m.body);
    if (valid_digest(manifest_ref) && m.digest != manifest_ref) {
      return fail("digest mismatch (want " + manifest_ref + ", got " + m.digest + ")", false);
    }
    return m;
  }
  return fail("still unauthorized after authenticating (HTTP 401)", false);
}

FetchOutcome RegistryClient::fetch_blob(const Reference& ref, const std::string& digest,
                                        uint64_t size, const std::string& dest,
                                        const std::atomic<bool>* cancel) {
  FetchRequest req;
  req.url = base_url(ref) + "/blobs/" + digest;
  req.dest = dest;
  req.sha256 = digest_hex(digest);
  // The descriptor's size bounds the download (0 would mean "no limit" to fetch_to_file).
  req.max_bytes = size == 0 ? 1 : size;
  req.cancel = cancel;
  req.ca_file = config_.ca_file;
  for (int attempt = 0;; ++attempt) {
    req.headers.clear();
    if (auto auth = cached_auth(ref); !auth.empty()) req.headers.push_back(auth);
    auto out = fetch_to_file(req);
    if (out || attempt > 0 || out.failure().http_status != 401) return out;
    auto auth = answer_challenge(ref, out.failure().www_authenticate);
    if (!auth) {
      FetchError e = out.failure();
      e.error = Error("Failed to fetch '" + req.url + "': " + auth.error().message());
      return e;
    }
  }
}

}  // namespace flotilla::runtime::image
