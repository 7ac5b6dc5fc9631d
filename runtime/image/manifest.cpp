#include "runtime/image/manifest.hpp"

#include <sys/utsname.h>

#include <nlohmann/json.hpp>

#include "runtime/image/reference.hpp"

namespace flotilla::runtime::image {
namespace {

using json = nlohmann::json;

Error bad(const std::string& what, const std::string& why) {
  return Error("Failed to parse " + what + ": " + why);
}

Expected<std::string> opt_string(const json& obj, const char* key, const std::string& what) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return std::string();
  if (!it->is_string()) return bad(what, std::string("'") + key + "' is not a string");
  return it->get<std::string>();
}

Expected<Descriptor> parse_descriptor(const json& j, const std::string& what) {
  if (!j.is_object()) return bad(what, "descriptor is not an object");
  Descriptor d;
  auto mt = opt_string(j, "mediaType", what);
  if (!mt) return mt.error();
  d.media_type = *mt;
  auto digest = opt_string(j, "digest", what);
  if (!digest) return digest.error();
  if (!valid_digest(*digest)) {
    return bad(what, "digest '" + digest->substr(0, 80) + "' is not sha256:<64 hex>");
  }
  d.digest = *digest;
  auto size = j.find("size");
  if (size == j.end() || !size->is_number_unsigned()) {
    return bad(what, "descriptor " + d.digest + " has no valid 'size'");
  }
  d.size = size->get<uint64_t>();
  auto platform = j.find("platform");
  if (platform != j.end()) {
    if (!platform->is_object()) return bad(what, "'platform' is not an object");
    auto os = opt_string(*platform, "os", what);
    auto arch = opt_string(*platform, "architecture", what);
    auto variant = opt_string(*platform, "variant", what);
    if (!os) return os.error();
    if (!arch) return arch.error();
    if (!variant) return variant.error();
    d.platform = {*os, *arch, *variant};
  }
  return d;
}

Expected<std::vector<std::string>> string_list(const json& obj, const char* key) {
  std::vector<std::string> out;
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return out;
  if (!it->is_array()) return bad("image config", std::string("'") + key + "' is not a list");
  for (const auto& v : *it) {
    if (!v.is_string()) {
      return bad("image config", std::string("'") + key + "' holds a non-string");
    }
    out.push_back(v.get<std::string>());
  }
  return out;
}

}  // namespace

std::string manifest_accept_header() {
  return std::string("Accept: ") + kOciManifest + ", " + kOciIndex + ", " + kDockerManifest + ", " +
         kDockerManifestList;
}

Platform host_platform() {
  struct utsname u {};
  uname(&u);
  std::string m = u.machine;
  if (m == "x86_64") return {"linux", "amd64", ""};
  if (m == "aarch64" || m == "arm64") return {"linux", "arm64", "v8"};
  if (m.rfind("armv7", 0) == 0) return {"linux", "arm", "v7"};
  if (m.rfind("armv6", 0) == 0) return {"linux", "arm", "v6"};
  if (m == "i686" || m == "i386") return {"linux", "386", ""};
  return {"linux", m, ""};
}

Expected<ManifestDocument> parse_manifest_document(const std::string& body,
                                                   const std::string& content_type) {
  const std::string what = "manifest";
  json j = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return bad(what, "not valid JSON");
  if (!j.is_object()) return bad(what, "not a JSON object");
  auto schema = j.find("schemaVersion");
  if (schema == j.end() || !schema->is_number_integer() || schema->get<int64_t>() != 2) {
    return bad(what, "schemaVersion is not 2 (Docker schema 1 manifests are not supported)");
  }
  auto mt = opt_string(j, "mediaType", what);
  if (!mt) return mt.error();
  std::string media_type = mt->empty() ? content_type.substr(0, content_type.find(';')) : *mt;
  ManifestDocument doc;
  // OCI documents may omit mediaType; then the shape tells (an index has "manifests").
  bool index = media_type == kOciIndex || media_type == kDockerManifestList ||
               (media_type.empty() && j.contains("manifests"));
  bool manifest = media_type == kOciManifest || media_type == kDockerManifest ||
                  (media_type.empty() && j.contains("layers"));
  if (index) {
    doc.is_index = true;
    doc.index.media_type = media_type.empty() ? kOciIndex : media_type;
    auto list = j.find("manifests");
    if (list == j.end() || !list->is_array()) return bad(what, "index has no 'manifests' list");
    for (const auto& entry : *list) {
      auto d = parse_descriptor(entry, "image index");
      if (!d) return d.error();
      doc.index.manifests.push_back(*d);
    }
    return doc;
  }
  if (!manifest) return bad(what, "unsupported media type '" + media_type.substr(0, 100) + "'");
  doc.manifest.media_type = media_type.empty() ? kOciManifest : media_type;
  auto config = j.find("config");
  if (config == j.end()) return bad(what, "no 'config'");
  auto cd = parse_descriptor(*config, "manifest config");
  if (!cd) return cd.error();
  doc.manifest.config = *cd;
  auto layers = j.find("layers");
  if (layers == j.end() || !layers->is_array()) return bad(what, "no 'layers' list");
  if (layers->size() > 1000) return bad(what, "more than 1000 layers");
  for (const auto& l : *layers) {
    auto d = parse_descriptor(l, "manifest layer");
    if (!d) return d.error();
    if (auto st = check_layer_media_type(d->media_type); !st) return st.error();
    doc.manifest.layers.push_back(*d);
  }
  return doc;
}

Status check_layer_media_type(const std::string& mt) {
  static const char* kKnown[] = {
      "application/vnd.oci.image.layer.v1.tar",
      "application/vnd.oci.image.layer.v1.tar+gzip",
      "application/vnd.oci.image.layer.v1.tar+zstd",
      "application/vnd.docker.image.rootfs.diff.tar.gzip",
      "application/vnd.docker.image.rootfs.diff.tar.zstd",
      "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
      "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
  };
  for (const char* k : kKnown) {
    if (mt == k) return Ok();
  }
  return bad("manifest", "unsupported layer media type '" + mt.substr(0, 100) + "'");
}

Expected<Descriptor> select_platform(const ImageIndex& index, const Platform& want) {
  const Descriptor* loose = nullptr;
  std::string have;
  for (const auto& d : index.manifests) {
    const auto& p = d.platform;
    if (!have.empty()) have += ", ";
    have += p.os + "/" + p.architecture + (p.variant.empty() ? "" : "/" + p.variant);
    if (p.os != want.os || p.architecture != want.architecture) continue;
    if (p.variant == want.variant) return d;
    // arm64's v8 is the only variant there is; an index may leave it out.
    bool compatible = p.variant.empty() || want.variant.empty() ||
                      (want.architecture == "arm" && want.variant > p.variant);
    if (compatible && loose == nullptr) loose = &d;
  }
  if (loose != nullptr) return *loose;
  std::string w =
      want.os + "/" + want.architecture + (want.variant.empty() ? "" : "/" + want.variant);
  return Error("Failed to select a platform: the image index has no " + w + " entry (it has " +
               (have.empty() ? std::string("none") : have) + ")");
}

Expected<ImageConfig> parse_image_config(const std::string& body) {
  json j = json::parse(body, nullptr, false);
  if (j.is_discarded()) return bad("image config", "not valid JSON");
  if (!j.is_object()) return bad("image config", "not a JSON object");
  ImageConfig cfg;
  auto it = j.find("config");
  if (it == j.end() || it->is_null()) return cfg;
  if (!it->is_object()) return bad("image config", "'config' is not an object");
  const json& c = *it;
  auto entrypoint = string_list(c, "Entrypoint");
  auto cmd = string_list(c, "Cmd");
  auto env = string_list(c, "Env");
  auto workdir = opt_string(c, "WorkingDir", "image config");
  auto user = opt_string(c, "User", "image config");
  if (!entrypoint) return entrypoint.error();
  if (!cmd) return cmd.error();
  if (!env) return env.error();
  if (!workdir) return workdir.error();
  if (!user) return user.error();
  cfg.entrypoint = *entrypoint;
  cfg.cmd = *cmd;
  cfg.env = *env;
  cfg.workdir = *workdir;
  cfg.user = *user;
  return cfg;
}

}  // namespace flotilla::runtime::image
