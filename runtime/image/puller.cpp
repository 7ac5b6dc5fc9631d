#include "runtime/image/puller.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include <nlohmann/json.hpp>

#include "common/fs.hpp"
#include "common/log.hpp"
#include "runtime/image/layer_unpack.hpp"

namespace flotilla::runtime::image {
namespace {

using json = nlohmann::json;

uint64_t disk_usage(const std::string& dir) {
  uint64_t total = 0;
  std::error_code ec;
  for (auto it = std::filesystem::recursive_directory_iterator(
           dir, std::filesystem::directory_options::skip_permission_denied, ec);
       !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
    struct stat st {};
    if (::lstat(it->path().c_str(), &st) == 0) total += static_cast<uint64_t>(st.st_blocks) * 512;
  }
  return total;
}

std::string config_json(const ImageConfig& c) {
  json j = {{"entrypoint", c.entrypoint},
            {"cmd", c.cmd},
            {"env", c.env},
            {"workdir", c.workdir},
            {"user", c.user}};
  return j.dump(2);
}

}  // namespace

std::string image_dir(const std::string& root, const std::string& digest) {
  return root + "/rootfs/" + digest_hex(digest);
}

Expected<ImageConfig> read_unpacked_config(const std::string& root, const std::string& digest) {
  std::string dir = image_dir(root, digest);
  auto text = fs::read_file(dir + "/config.json");
  if (!text) return Error("Failed to read image '" + digest + "': not unpacked");
  auto j = json::parse(*text, nullptr, false);
  if (!j.is_object()) return Error("Failed to read image '" + digest + "': bad config.json");
  ImageConfig c;
  try {
    c.entrypoint = j.value("entrypoint", std::vector<std::string>{});
    c.cmd = j.value("cmd", std::vector<std::string>{});
    c.env = j.value("env", std::vector<std::string>{});
    c.workdir = j.value("workdir", std::string());
    c.user = j.value("user", std::string());
  } catch (const json::exception& e) {
    return Error("Failed to read image '" + digest + "': bad config.json: " + e.what());
  }
  return c;
}

PullOutcome Puller::pull(const std::string& reference, const Progress& progress,
                         const std::atomic<bool>* cancel) {
  PullOutcome out;
  auto fail = [&](const std::string& cause, bool retryable) {
    out.ok = false;
    out.failure = {Error("Failed to pull '" + reference + "': " + cause), retryable};
    return out;
  };
  auto ref = parse_reference(reference);
  if (!ref) return fail(ref.error().message(), false);

  PullError perr;
  auto top = client_.get_manifest(*ref, ref->manifest_ref(), &perr, cancel);
  if (!top) return fail(top.error().message(), perr.retryable);
  auto doc = parse_manifest_document(top->body, top->media_type);
  if (!doc) return fail(doc.error().message(), false);
  ManifestBytes manifest_bytes = *top;
  if (doc->is_index) {
    out.blobs.push_back(top->digest);
    if (auto st = blobs_.put(top->digest, top->body); !st) return fail(st.error().message(), true);
    auto chosen = select_platform(doc->index, platform_);
    if (!chosen) return fail(chosen.error().message(), false);
    auto m = client_.get_manifest(*ref, chosen->digest, &perr, cancel);
    if (!m) return fail(m.error().message(), perr.retryable);
    doc = parse_manifest_document(m->body, m->media_type);
    if (!doc) return fail(doc.error().message(), false);
    if (doc->is_index) return fail("the index entry " + chosen->digest + " is an index", false);
    manifest_bytes = *m;
  }
  out.digest = manifest_bytes.digest;
  out.blobs.push_back(out.digest);
  if (auto st = blobs_.put(out.digest, manifest_bytes.body); !st) {
    return fail(st.error().message(), true);
  }
  const ImageManifest& manifest = doc->manifest;
  // The config is read into memory; real ones are a few KiB.
  if (manifest.config.size > (16u << 20)) {
    return fail("image config of " + std::to_string(manifest.config.size) +
                    " bytes is larger than the 16 MiB allowed",
                false);
  }
  std::vector<Descriptor> needed = {manifest.config};
  needed.insert(needed.end(), manifest.layers.begin(), manifest.layers.end());
  for (const auto& d : needed) out.blobs.push_back(d.digest);

  const std::string dir = image_dir(root_, out.digest);
  out.rootfs = dir + "/rootfs";
  if (auto cfg = read_unpacked_config(root_, out.digest); cfg) {
    out.config = *cfg;
    out.ok = true;
    return out;
  }

  int total = static_cast<int>(needed.size()), done = 0;
  if (progress) progress(done, total);
  for (const auto& d : needed) {
    bool retryable = false;
    auto blob = blobs_.ensure(
        d.digest,
        [&](const std::string& dest) {
          return client_.fetch_blob(*ref, d.digest, d.size, dest, cancel);
        },
        &retryable);
    if (!blob) return fail(blob.error().message(), retryable);
    out.bytes_fetched += blob->bytes_fetched;
    if (progress) progress(++done, total);
  }

  auto config_text = fs::read_file(blobs_.path(manifest.config.digest));
  if (!config_text) return fail(config_text.error().message(), true);
  auto config = parse_image_config(*config_text);
  if (!config) return fail(config.error().message(), false);
  out.config = *config;

  // Unpack into a temp folder named for this attempt, renamed into place when complete.
  static std::atomic<uint64_t> counter{0};
  std::string tmp = root_ + "/rootfs/.tmp-" + digest_hex(out.digest).substr(0, 12) + "-" +
                    std::to_string(::getpid()) + "-" + std::to_string(counter++);
  if (auto st = fs::make_dirs(tmp + "/rootfs"); !st) return fail(st.error().message(), true);
  ::chmod((tmp + "/rootfs").c_str(), 0755);
  for (const auto& layer : manifest.layers) {
    if (auto st = apply_layer(blobs_.path(layer.digest), tmp + "/rootfs"); !st) {
      (void)fs::remove_all(tmp);
      return fail(st.error().message(), false);
    }
  }
  json blob_list = out.blobs;
  if (auto st = fs::write_atomic(tmp + "/blobs.json", blob_list.dump()); !st) {
    (void)fs::remove_all(tmp);
    return fail(st.error().message(), true);
  }
  if (auto st = fs::write_atomic(tmp + "/config.json", config_json(out.config)); !st) {
    (void)fs::remove_all(tmp);
    return fail(st.error().message(), true);
  }
  out.rootfs_bytes = disk_usage(tmp);
  (void)fs::write_atomic(tmp + "/size", std::to_string(out.rootfs_bytes));
  if (::rename(tmp.c_str(), dir.c_str()) != 0) {
    int err = errno;
    (void)fs::remove_all(tmp);
    // Another pull of the same image finished first: its rootfs is as good as ours.
    if (!(err == ENOTEMPTY || err == EEXIST) || !read_unpacked_config(root_, out.digest)) {
      return fail("cannot move the rootfs into '" + dir + "': " + std::strerror(err), true);
    }
  }
  log::get("runtime")->info("image pulled reference={} digest={} layers={} fetched_bytes={}",
                            reference, out.digest, manifest.layers.size(), out.bytes_fetched);
  out.ok = true;
  return out;
}

}  // namespace flotilla::runtime::image
