#include "runtime/image/image_store.hpp"

#include <dirent.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/fs.hpp"
#include "common/log.hpp"

namespace flotilla::runtime::image {
namespace {

std::string progress_text(const std::string& ref, int done, int total) {
  if (total == 0) return "pulling '" + ref + "': resolving";
  return "pulling '" + ref + "': " + std::to_string(done) + "/" + std::to_string(total) + " blobs";
}

}  // namespace

ImageStore::ImageStore(ImageStoreConfig config)
    : config_(std::move(config)),
      clock_(config_.clock != nullptr ? config_.clock : &system_clock_),
      client_(config_.registry),
      blobs_(config_.root),
      puller_(config_.root, client_, blobs_, config_.platform) {}

ImageStore::~ImageStore() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cancel_ = true;
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

Status ImageStore::start() {
  if (auto st = blobs_.init(); !st) return st;
  if (auto st = fs::make_dirs(config_.root + "/rootfs"); !st) return st;
  // Leftovers of unpacks a crash interrupted: never complete, never used.
  if (DIR* d = opendir((config_.root + "/rootfs").c_str())) {
    std::vector<std::string> stale;
    while (auto* e = readdir(d)) {
      if (std::string(e->d_name).rfind(".tmp-", 0) == 0) stale.push_back(e->d_name);
    }
    closedir(d);
    for (const auto& name : stale) (void)fs::remove_all(config_.root + "/rootfs/" + name);
  }
  auto loaded = load_index(config_.root + "/index.json");
  if (loaded) {
    index_ = *loaded;
  } else {
    log::get("runtime")->warn("image index unreadable, starting empty error=\"{}\"",
                              loaded.error().message());
  }
  thread_ = std::thread([this] { worker(); });
  return Ok();
}

bool ImageStore::image_present(const std::string& digest) const {
  return !digest.empty() && fs::exists(image_dir(config_.root, digest) + "/config.json");
}

void ImageStore::enqueue_locked(const std::string& reference, PullState& state) {
  state.phase = PullState::Phase::kQueued;
  state.done = state.total = 0;
  queue_.push_back(reference);
  cv_.notify_all();
}

Preparation ImageStore::prepare(const std::string& reference) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = pulls_.find(reference);
  if (it == pulls_.end()) {
    auto ref = parse_reference(reference);
    if (!ref) {
      return {Preparation::State::kFailed,
              "Failed to pull '" + reference + "': " + ref.error().message()};
    }
    PullState state;
    auto known = index_.digest_of.find(reference);
    if (known != index_.digest_of.end() && image_present(known->second)) {
      state.phase = PullState::Phase::kReady;
      state.digest = known->second;
      pulls_[reference] = state;
      return {Preparation::State::kReady, ""};
    }
    it = pulls_.emplace(reference, state).first;
    enqueue_locked(reference, it->second);
    return {Preparation::State::kInProgress, progress_text(reference, 0, 0)};
  }
  PullState& s = it->second;
  switch (s.phase) {
    case PullState::Phase::kReady:
      if (image_present(s.digest)) return {Preparation::State::kReady, ""};
      enqueue_locked(reference, s);  // removed behind our back (gc of an unused image)
      return {Preparation::State::kInProgress, progress_text(reference, 0, 0)};
    case PullState::Phase::kQueued:
    case PullState::Phase::kPulling:
      return {Preparation::State::kInProgress, progress_text(reference, s.done, s.total)};
    case PullState::Phase::kFailed: {
      auto now = clock_->now();
      if (now >= s.next_retry) {
        enqueue_locked(reference, s);
        return {Preparation::State::kInProgress, progress_text(reference, 0, 0)};
      }
      auto left = std::chrono::duration_cast<Millis>(s.next_retry - now).count();
      long secs = static_cast<long>(std::ceil(static_cast<double>(left) / 1000.0));
      return {Preparation::State::kFailed,
              s.error + "; retrying in " + std::to_string(secs) + " s"};
    }
  }
  return {Preparation::State::kFailed, "Failed to pull '" + reference + "': unknown state"};
}

Expected<UnpackedImage> ImageStore::unpacked(const std::string& reference) {
  std::string digest;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = pulls_.find(reference);
    if (it != pulls_.end() && it->second.phase == PullState::Phase::kReady) {
      digest = it->second.digest;
    }
    if (digest.empty()) return Error("Failed to get image '" + reference + "': not prepared");
    index_.last_used_ms[digest] = clock_->wall_ms();
  }
  auto config = read_unpacked_config(config_.root, digest);
  if (!config) return Error("Failed to get image '" + reference + "': no longer unpacked");
  UnpackedImage img;
  img.reference = reference;
  img.digest = digest;
  img.rootfs = image_dir(config_.root, digest) + "/rootfs";
  img.config = *config;
  return img;
}

void ImageStore::set_in_use(const std::set<std::string>& references) {
  std::lock_guard<std::mutex> lock(mu_);
  in_use_ = references;
}

void ImageStore::worker() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!stopping_) {
    if (queue_.empty()) {
      cv_.wait_for(lock, config_.worker_tick, [&] { return stopping_ || !queue_.empty(); });
      // Failed pulls come back by themselves once due, prepare() or not.
      auto now = clock_->now();
      for (auto& [ref, s] : pulls_) {
        if (s.phase == PullState::Phase::kFailed && now >= s.next_retry) enqueue_locked(ref, s);
      }
      continue;
    }
    std::string ref = queue_.front();
    queue_.pop_front();
    auto it = pulls_.find(ref);
    if (it == pulls_.end() || it->second.phase != PullState::Phase::kQueued) continue;
    it->second.phase = PullState::Phase::kPulling;
    lock.unlock();
    run_pull(ref);
    lock.lock();
  }
}

void ImageStore::run_pull(const std::string& reference) {
  std::lock_guard<std::mutex> pull_lock(pull_mu_);
  auto outcome = puller_.pull(
      reference,
      [&](int done, int total) {
        std::lock_guard<std::mutex> lock(mu_);
        auto& s = pulls_[reference];
        s.done = done;
        s.total = total;
      },
      &cancel_);
  bytes_fetched_ += outcome.bytes_fetched;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto& s = pulls_[reference];
    if (outcome.ok) {
      s.phase = PullState::Phase::kReady;
      s.digest = outcome.digest;
      s.failures = 0;
      s.error.clear();
      index_.digest_of[reference] = outcome.digest;
      index_.last_used_ms[outcome.digest] = clock_->wall_ms();
      if (auto st = save_index(config_.root + "/index.json", index_); !st) {
        log::get("runtime")->warn("image index not saved error=\"{}\"", st.error().message());
      }
    } else {
      s.phase = PullState::Phase::kFailed;
      s.failures++;
      // Doubling from backoff_min, capped; the shift is bounded so it cannot overflow.
      auto backoff = config_.backoff_min * (int64_t{1} << std::min(s.failures - 1, 20));
      if (backoff > config_.backoff_max) backoff = config_.backoff_max;
      s.next_retry = clock_->now() + backoff;
      s.error = outcome.failure.error.message();
      log::get("runtime")->warn(
          "image pull failed reference={} attempt={} retry_in_ms={} error=\"{}\"", reference,
          s.failures, backoff.count(), s.error);
    }
  }
  gc_locked_pulls();
}

GcReport ImageStore::gc() {
  std::lock_guard<std::mutex> pull_lock(pull_mu_);
  return gc_locked_pulls();
}

GcReport ImageStore::gc_locked_pulls() {
  GcReport report;
  struct Image {
    std::string digest;
    uint64_t bytes = 0;
    std::vector<std::string> blobs;
    int64_t last_used = 0;
  };
  std::vector<Image> images;
  std::set<std::string> keep_digests;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& ref : in_use_) {
      auto d = index_.digest_of.find(ref);
      if (d != index_.digest_of.end()) keep_digests.insert(d->second);
      auto p = pulls_.find(ref);
      if (p != pulls_.end() && !p->second.digest.empty()) keep_digests.insert(p->second.digest);
    }
    if (DIR* dir = opendir((config_.root + "/rootfs").c_str())) {
      while (auto* e = readdir(dir)) {
        std::string name = e->d_name;
        if (name.size() != 64) continue;
        Image img;
        img.digest = "sha256:" + name;
        std::string base = config_.root + "/rootfs/" + name;
        if (auto size = fs::read_file(base + "/size"); size) {
          img.bytes = std::strtoull(size->c_str(), nullptr, 10);
        }
        if (auto list = fs::read_file(base + "/blobs.json"); list) {
          auto j = nlohmann::json::parse(*list, nullptr, false);
          if (j.is_array()) {
            for (const auto& b : j) {
              if (b.is_string()) img.blobs.push_back(b.get<std::string>());
            }
          }
        }
        auto used = index_.last_used_ms.find(img.digest);
        img.last_used = used == index_.last_used_ms.end() ? 0 : used->second;
        images.push_back(std::move(img));
      }
      closedir(dir);
    }
  }
  auto blob_sizes = blobs_.list();
  uint64_t usage = 0;
  for (const auto& img : images) usage += img.bytes;
  for (const auto& [d, size] : blob_sizes) usage += size;
  report.bytes_before = report.bytes_after = usage;
  if (config_.disk_budget_bytes == 0 || usage <= config_.disk_budget_bytes) return report;

  auto referenced = [&](const std::string& blob) {
    for (const auto& img : images) {
      if (std::find(img.blobs.begin(), img.blobs.end(), blob) != img.blobs.end()) return true;
    }
    return false;
  };
  auto drop_unreferenced_blobs = [&] {
    for (auto it = blob_sizes.begin(); it != blob_sizes.end();) {
      if (!referenced(it->first) && blobs_.remove(it->first)) {
        usage -= it->second;
        report.blobs_removed++;
        it = blob_sizes.erase(it);
      } else {
        ++it;
      }
    }
  };
  drop_unreferenced_blobs();  // left by failed pulls or removed images
  std::sort(images.begin(), images.end(),
            [](const Image& a, const Image& b) { return a.last_used < b.last_used; });
  while (usage > config_.disk_budget_bytes) {
    auto victim = std::find_if(images.begin(), images.end(),
                               [&](const Image& i) { return keep_digests.count(i.digest) == 0; });
    if (victim == images.end()) break;
    std::string digest = victim->digest;
    if (!fs::remove_all(image_dir(config_.root, digest))) break;
    usage -= victim->bytes;
    report.images_removed++;
    images.erase(victim);
    drop_unreferenced_blobs();
    std::lock_guard<std::mutex> lock(mu_);
    for (auto it = index_.digest_of.begin(); it != index_.digest_of.end();) {
      it = it->second == digest ? index_.digest_of.erase(it) : std::next(it);
    }
    index_.last_used_ms.erase(digest);
    for (auto it = pulls_.begin(); it != pulls_.end();) {
      bool gone = it->second.phase == PullState::Phase::kReady && it->second.digest == digest;
      it = gone ? pulls_.erase(it) : std::next(it);
    }
    log::get("runtime")->info("image removed by gc digest={} usage_bytes={} budget_bytes={}",
                              digest, usage, config_.disk_budget_bytes);
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    (void)save_index(config_.root + "/index.json", index_);
  }
  report.bytes_after = usage;
  return report;
}

}  // namespace flotilla::runtime::image
