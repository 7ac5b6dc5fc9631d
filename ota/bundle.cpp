#include "ota/bundle.hpp"

#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <system_error>
#include <utility>
#include <vector>

#include "common/fs.hpp"
#include "ota/agent_archive.hpp"
#include "ota/file_io.hpp"
#include "ota/signing.hpp"

namespace flotilla::ota {
namespace {

std::string join(const std::string& dir, const char* file) { return dir + "/" + file; }

// Ok when the file at `path` has `size` bytes and `sha256`; else says which differs.
Status check_file(const std::string& path, const char* label, uint64_t size,
                  const std::string& sha256) {
  std::error_code ec;
  const uint64_t actual = std::filesystem::file_size(path, ec);
  if (ec) return Error(std::string(label) + ": " + ec.message());
  if (actual != size) {
    return Error(std::string(label) + ": size is " + std::to_string(actual) +
                 " bytes, manifest says " + std::to_string(size));
  }
  auto digest = sha256_file(path);
  if (!digest) return digest.error();
  if (digest->sha256 != sha256) {
    return Error(std::string(label) + ": sha256 is " + digest->sha256 + ", manifest says " +
                 sha256);
  }
  return Ok();
}

bool is_dir(const std::string& path) {
  std::error_code ec;
  return std::filesystem::is_directory(path, ec);
}

// An agent payload given as a folder is packed into `packed`; one given as a file that is a tar
// archive must be a valid agent archive. Returns the file to use and whether it is an archive.
Expected<std::pair<std::string, bool>> agent_payload(const std::string& path,
                                                     const std::string& packed) {
  if (is_dir(path)) {
    if (auto st = write_agent_archive(path, packed); !st) return st.error();
    return std::make_pair(packed, true);
  }
  auto file = MappedFile::open(path);
  if (!file) return file.error();
  if (!looks_like_tar(file->data())) return std::make_pair(path, false);
  auto entries = read_agent_archive(file->data());
  if (!entries) return entries.error().WithContext("'" + path + "'");
  return std::make_pair(path, true);
}

}  // namespace

Expected<Manifest> build_bundle(const BuildRequest& req) {
  const std::string what = "Failed to build bundle '" + req.out_dir + "'";
  if (req.base_path.empty() != req.base_version.empty()) {
    return Error(what + ": a base payload needs its version and a base version needs its payload");
  }
  Manifest m;
  m.name = req.name;
  m.version = req.version;
  m.target = req.target;
  m.sha256 = std::string(64, '0');
  if (!req.base_path.empty()) {
    m.delta = DeltaInfo{"zstd-patch-from", req.base_version, m.sha256, m.sha256, 0};
  }
  // The same rules a receiver applies, before the copy and the delta take their time.
  auto valid = parse_manifest(manifest_json(m));
  if (!valid) return valid.error().WithContext(what);
  if (m.delta && m.delta->base_version == m.version) {
    return Error(what + ": the base version is the version being built");
  }

  auto dirs = fs::make_dirs(req.out_dir);
  if (!dirs) return dirs.error().WithContext(what);
  std::string payload_path = req.payload_path;
  std::string base_path = req.base_path;
  const std::string packed = join(req.out_dir, ".payload.tar");
  const std::string packed_base = join(req.out_dir, ".base.tar");
  struct Cleanup {
    std::vector<std::string> paths;
    ~Cleanup() {
      for (const std::string& p : paths) ::unlink(p.c_str());
    }
  } cleanup{{packed, packed_base}};
  if (m.target == "agent") {
    auto payload = agent_payload(req.payload_path, packed);
    if (!payload) return payload.error().WithContext(what);
    payload_path = payload->first;
    if (payload->second) m.format = kPayloadTar;
    if (!base_path.empty()) {
      auto base = agent_payload(req.base_path, packed_base);
      if (!base) return base.error().WithContext(what);
      base_path = base->first;
    }
  } else if (is_dir(req.payload_path)) {
    return Error(what + ": the payload '" + req.payload_path +
                 "' is a folder; only an agent payload (--target agent) may be one");
  }
  for (const char* stale : {kSignatureFile, kManifestFile, kDeltaFile}) {
    const std::string path = join(req.out_dir, stale);
    if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
      return Error(what + ": cannot remove the old '" + path + "': " + std::strerror(errno));
    }
  }
  auto payload = copy_file_atomic(payload_path, join(req.out_dir, kPayloadFile));
  if (!payload) return payload.error().WithContext(what);
  m.sha256 = payload->sha256;
  m.size = payload->size;
  if (m.delta) {
    auto base = sha256_file(base_path);
    if (!base) return base.error().WithContext(what);
    auto delta =
        make_delta(base_path, payload_path, join(req.out_dir, kDeltaFile), req.delta_options);
    if (!delta) return delta.error().WithContext(what);
    m.delta->base_sha256 = base->sha256;
    m.delta->sha256 = delta->sha256;
    m.delta->size = delta->size;
  }
  auto st = fs::write_atomic(join(req.out_dir, kManifestFile), manifest_json(m));
  if (!st) return st.error().WithContext(what);
  return m;
}

Status sign_bundle(const std::string& dir, std::string_view private_pem) {
  const std::string what = "Failed to sign bundle '" + dir + "'";
  const std::string path = join(dir, kManifestFile);
  auto text = fs::read_file(path);
  if (!text) return text.error().WithContext(what);
  // Signing what a receiver would refuse helps nobody.
  auto manifest = parse_manifest(*text);
  if (!manifest) return manifest.error().WithContext(what + ": " + kManifestFile);
  auto sig = sign(private_pem, *text);
  if (!sig) return sig.error().WithContext(what);
  auto st = fs::write_atomic(join(dir, kSignatureFile), *sig);
  if (!st) return st.error().WithContext(what);
  return Ok();
}

Expected<Bundle> load_bundle(const std::string& dir, std::optional<std::string_view> public_pem) {
  const std::string what = "Failed to load bundle '" + dir + "'";
  Bundle b;
  const std::string manifest_path = join(dir, kManifestFile);
  std::error_code ec;
  const uint64_t manifest_size = std::filesystem::file_size(manifest_path, ec);
  if (ec) return Error(what + ": " + kManifestFile + ": " + ec.message());
  if (manifest_size > kMaxManifestBytes) {
    return Error(what + ": " + kManifestFile + ": " + std::to_string(manifest_size) +
                 " bytes, more than the limit of " + std::to_string(kMaxManifestBytes));
  }
  auto text = fs::read_file(manifest_path);
  if (!text) return text.error().WithContext(what);
  b.manifest_text = std::move(*text);

  const std::string sig_path = join(dir, kSignatureFile);
  if (public_pem || fs::exists(sig_path)) {
    auto sig = fs::read_file(sig_path);
    if (!sig)
      return Error(what + ": " + kSignatureFile + " is missing (run flotctl artifact sign)");
    b.signature = std::move(*sig);
  }
  if (public_pem) {
    auto st = verify(*public_pem, b.manifest_text, b.signature);
    if (!st) return st.error().WithContext(what + ": " + kSignatureFile);
  }
  auto manifest = parse_manifest(b.manifest_text);
  if (!manifest) return manifest.error().WithContext(what + ": " + kManifestFile);
  b.manifest = std::move(*manifest);

  b.payload_path = join(dir, kPayloadFile);
  auto payload = check_file(b.payload_path, kPayloadFile, b.manifest.size, b.manifest.sha256);
  if (!payload) return payload.error().WithContext(what);
  if (b.manifest.format == kPayloadTar) {
    auto file = MappedFile::open(b.payload_path);
    if (!file) return file.error().WithContext(what);
    auto entries = read_agent_archive(file->data());
    if (!entries) return entries.error().WithContext(what + ": " + kPayloadFile);
  }
  const std::string delta_path = join(dir, kDeltaFile);
  if (b.manifest.delta) {
    auto delta =
        check_file(delta_path, kDeltaFile, b.manifest.delta->size, b.manifest.delta->sha256);
    if (!delta) return delta.error().WithContext(what);
    b.delta_path = delta_path;
  } else if (fs::exists(delta_path)) {
    return Error(what + ": " + kDeltaFile + " is there but the manifest names no delta");
  }
  return b;
}

Expected<Manifest> verify_manifest(std::string_view manifest_text, std::string_view signature,
                                   std::string_view public_pem) {
  auto st = verify(public_pem, manifest_text, signature);
  if (!st) return st.error();
  return parse_manifest(manifest_text);
}

Expected<FileDigest> apply_bundle_delta(const Manifest& manifest, const std::string& base_path,
                                        const std::string& delta_path,
                                        const std::string& out_path) {
  const std::string what = "Failed to apply the delta of " + manifest.name + " " + manifest.version;
  if (!manifest.delta) return Error(what + ": the manifest names no delta");
  auto base = sha256_file(base_path);
  if (!base) return base.error().WithContext(what);
  if (base->sha256 != manifest.delta->base_sha256) {
    return Error(what + ": base does not match ('" + base_path + "' has sha256 " + base->sha256 +
                 ", the delta wants " + manifest.delta->base_sha256 + " of version " +
                 manifest.delta->base_version + ")");
  }
  auto delta = check_file(delta_path, kDeltaFile, manifest.delta->size, manifest.delta->sha256);
  if (!delta) return delta.error().WithContext(what);
  auto result = apply_delta(base_path, delta_path, out_path, manifest.size);
  if (!result) return result.error();
  if (result->sha256 != manifest.sha256) {
    ::unlink(out_path.c_str());
    return Error(what + ": the result has sha256 " + result->sha256 + ", manifest says " +
                 manifest.sha256);
  }
  return result;
}

}  // namespace flotilla::ota
