#include "cloud-hub/artifact_store.hpp"

#include <fcntl.h>
#include <openssl/evp.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "cloud-hub/manifest.hpp"
#include "common/base64.hpp"
#include "common/fs.hpp"
#include "common/log.hpp"
#include "common/sha256.hpp"
#include "ota/signing.hpp"

namespace flotilla::hub {
namespace {

using Code = ArtifactOutcome::Code;
namespace stdfs = std::filesystem;

ArtifactOutcome outcome(Code code, std::string message = "") { return {code, std::move(message)}; }

std::string ref(const std::string& name, const std::string& version) {
  return "artifact '" + name + "' version '" + version + "'";
}

// A unique temp file in `dir`, removed by the destructor unless kept.
struct TempFile {
  std::string path;
  int fd = -1;
  bool keep = false;
  explicit TempFile(const std::string& dir) {
    path = fs::unique_temp_name(dir + "/.upload");
    fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  }
  ~TempFile() {
    if (fd >= 0) ::close(fd);
    if (!keep) ::unlink(path.c_str());
  }
};

}  // namespace

nlohmann::json artifact_json(const Artifact& a) {
  const ota::Manifest& m = a.manifest;
  nlohmann::json delta = nullptr;
  if (m.delta) {
    delta = {{"algorithm", m.delta->algorithm},
             {"baseVersion", m.delta->base_version},
             {"baseSha256", m.delta->base_sha256},
             {"sha256", m.delta->sha256},
             {"size", m.delta->size}};
  }
  return {{"name", m.name}, {"version", m.version}, {"target", m.target}, {"sha256", m.sha256},
          {"size", m.size}, {"delta", delta},       {"ready", a.payload}, {"deltaReady", a.delta}};
}

Expected<std::unique_ptr<ArtifactStore>> ArtifactStore::open(const std::string& root,
                                                             std::string public_key_pem) {
  if (auto st = fs::make_dirs(root); !st) return st.error();
  return std::unique_ptr<ArtifactStore>(new ArtifactStore(root, std::move(public_key_pem)));
}

std::string ArtifactStore::dir(const std::string& name, const std::string& version) const {
  return root_ + "/" + name + "/" + version;
}

std::string ArtifactStore::file_path(const std::string& name, const std::string& version,
                                     bool delta) const {
  return dir(name, version) + (delta ? "/delta" : "/payload");
}

ArtifactOutcome ArtifactStore::put_manifest(const std::string& name, const std::string& version,
                                            const std::string& manifest_text,
                                            const std::string& signature_base64) {
  const std::string what = "Failed to store " + ref(name, version);
  if (!artifact_word_ok(name) || !artifact_word_ok(version)) {
    return outcome(Code::kInvalid, what + ": not a valid artifact name and version");
  }
  auto manifest = ota::parse_manifest(manifest_text);
  if (!manifest) return outcome(Code::kInvalid, what + ": " + manifest.error().message());
  if (manifest->name != name || manifest->version != version) {
    return outcome(Code::kInvalid, what + ": the manifest is for artifact '" + manifest->name +
                                       "' version '" + manifest->version + "'");
  }
  auto signature = base64_decode(signature_base64);
  if (!signature || signature->size() != ota::kSignatureBytes) {
    return outcome(Code::kInvalid, what + ": signature: want base64 of " +
                                       std::to_string(ota::kSignatureBytes) + " bytes");
  }
  if (!key_.empty()) {
    if (auto st = ota::verify(key_, manifest_text, *signature); !st) {
      return outcome(Code::kInvalid, what + ": " + st.error().message());
    }
  }
  std::lock_guard lock(mu_);
  const std::string d = dir(name, version);
  if (auto old = fs::read_file(d + "/manifest.json"); old && fs::exists(d + "/manifest.sig")) {
    auto old_sig = fs::read_file(d + "/manifest.sig");
    if (*old == manifest_text && old_sig && *old_sig == *signature) return outcome(Code::kOk);
    return outcome(Code::kConflict,
                   what +
                       ": it exists with a different manifest or signature (artifacts are "
                       "immutable: delete it first, or use a new version)");
  }
  if (auto st = fs::make_dirs(d); !st)
    return outcome(Code::kFailed, what + ": " + st.error().message());
  // The signature first: manifest.json, written last, is what makes the artifact exist.
  if (auto st = fs::write_atomic(d + "/manifest.sig", *signature); !st) {
    return outcome(Code::kFailed, what + ": " + st.error().message());
  }
  if (auto st = fs::write_atomic(d + "/manifest.json", manifest_text); !st) {
    return outcome(Code::kFailed, what + ": " + st.error().message());
  }
  log::get("artifacts")->info("artifact stored name={} version={}", name, version);
  return outcome(Code::kCreated);
}

ArtifactOutcome ArtifactStore::put_file(const std::string& name, const std::string& version,
                                        bool delta, const Body& body) {
  const char* kind = delta ? "delta" : "payload";
  const std::string what = std::string("Failed to store the ") + kind + " of " + ref(name, version);
  auto a = get(name, version);
  if (!a) return outcome(Code::kNotFound, what + ": no such artifact (PUT its manifest first)");
  if (delta && !a->manifest.delta) {
    return outcome(Code::kInvalid, what + ": its manifest names no delta");
  }
  const uint64_t want_size = delta ? a->manifest.delta->size : a->manifest.size;
  const std::string want_sha = delta ? a->manifest.delta->sha256 : a->manifest.sha256;
  const std::string d = dir(name, version);
  TempFile tmp(d);
  if (tmp.fd < 0) return outcome(Code::kFailed, what + ": " + std::strerror(errno));
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), &EVP_MD_CTX_free);
  EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr);
  uint64_t size = 0;
  bool write_failed = false;
  const bool complete = body([&](const char* data, size_t n) {
    size += n;
    if (size > want_size) return false;  // no point reading on
    EVP_DigestUpdate(ctx.get(), data, n);
    if (!fs::write_all(tmp.fd, std::string_view(data, n))) {
      write_failed = true;
      return false;
    }
    return true;
  });
  if (write_failed) return outcome(Code::kFailed, what + ": " + std::strerror(errno));
  if (size > want_size) {
    return outcome(Code::kInvalid, what + ": size mismatch (want " + std::to_string(want_size) +
                                       " bytes, got more)");
  }
  if (!complete) return outcome(Code::kInvalid, what + ": the upload was cut");
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int md_len = 0;
  EVP_DigestFinal_ex(ctx.get(), md, &md_len);
  const std::string got_sha = hex_encode(md, md_len);
  if (size != want_size) {
    return outcome(Code::kInvalid, what + ": size mismatch (want " + std::to_string(want_size) +
                                       " bytes, got " + std::to_string(size) + ")");
  }
  if (got_sha != want_sha) {
    return outcome(Code::kInvalid, what + ": digest mismatch (want sha256:" + want_sha +
                                       ", got sha256:" + got_sha + ")");
  }
  if (::fsync(tmp.fd) != 0) return outcome(Code::kFailed, what + ": " + std::strerror(errno));
  const std::string dest = file_path(name, version, delta);
  if (::rename(tmp.path.c_str(), dest.c_str()) != 0) {
    return outcome(Code::kFailed, what + ": " + std::strerror(errno));
  }
  tmp.keep = true;
  fs::fsync_dir(d);
  log::get("artifacts")
      ->info("artifact file stored name={} version={} file={} bytes={}", name, version, kind, size);
  return outcome(Code::kCreated);
}

std::optional<Artifact> ArtifactStore::get(const std::string& name, const std::string& version) {
  if (!artifact_word_ok(name) || !artifact_word_ok(version)) return std::nullopt;
  const std::string d = dir(name, version);
  auto text = fs::read_file(d + "/manifest.json");
  if (!text) return std::nullopt;
  auto sig = fs::read_file(d + "/manifest.sig");
  auto manifest = ota::parse_manifest(*text);
  if (!sig || !manifest) return std::nullopt;
  Artifact a;
  a.manifest = std::move(*manifest);
  a.manifest_text = std::move(*text);
  a.signature = std::move(*sig);
  a.payload = fs::exists(file_path(name, version, false));
  a.delta = fs::exists(file_path(name, version, true));
  return a;
}

std::vector<Artifact> ArtifactStore::list() {
  std::vector<std::pair<std::string, std::string>> refs;
  std::error_code ec;
  for (stdfs::directory_iterator names(root_, ec), end; !ec && names != end; names.increment(ec)) {
    if (!names->is_directory(ec)) continue;
    std::error_code ec2;
    for (stdfs::directory_iterator versions(names->path(), ec2); !ec2 && versions != end;
         versions.increment(ec2)) {
      refs.emplace_back(names->path().filename().string(), versions->path().filename().string());
    }
  }
  std::sort(refs.begin(), refs.end());
  std::vector<Artifact> out;
  for (const auto& [name, version] : refs) {
    if (auto a = get(name, version)) out.push_back(std::move(*a));
  }
  return out;
}

ArtifactOutcome ArtifactStore::remove(const std::string& name, const std::string& version) {
  std::lock_guard lock(mu_);
  if (!get(name, version)) return outcome(Code::kNotFound, ref(name, version) + " not found");
  const std::string d = dir(name, version);
  // manifest.json goes first: from then on the artifact does not exist, whatever is left.
  if (::unlink((d + "/manifest.json").c_str()) != 0) {
    return outcome(Code::kFailed,
                   "Failed to delete " + ref(name, version) + ": " + std::strerror(errno));
  }
  fs::fsync_dir(d);
  if (auto st = fs::remove_all(d); !st) {
    log::get("artifacts")
        ->warn("artifact files left behind dir={} error='{}'", d, st.error().message());
  }
  std::error_code ec;
  stdfs::remove(root_ + "/" + name, ec);  // only when empty
  log::get("artifacts")->info("artifact deleted name={} version={}", name, version);
  return outcome(Code::kOk);
}

}  // namespace flotilla::hub
