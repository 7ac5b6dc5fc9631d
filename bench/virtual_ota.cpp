#include "bench/virtual_ota.hpp"

#include <httplib.h>

#include "common/sha256.hpp"
#include "ota/manifest.hpp"
#include "sync/codec.hpp"
#include "sync/topics.hpp"

namespace flotilla::bench {
namespace pb = flotilla::v1;

namespace {

// "http://host:port/path" -> ("http://host:port", "/path").
std::pair<std::string, std::string> split_url(const std::string& url) {
  const auto scheme = url.find("://");
  const auto path = url.find('/', scheme == std::string::npos ? 0 : scheme + 3);
  if (path == std::string::npos) return {url, "/"};
  return {url.substr(0, path), url.substr(path)};
}

bool terminal(int phase) {
  return phase == pb::UPDATE_COMMITTED || phase == pb::UPDATE_ROLLED_BACK ||
         phase == pb::UPDATE_FAILED || phase == pb::UPDATE_ABORTED;
}

}  // namespace

VirtualOta::VirtualOta(VirtualFleet& fleet, EventLoop& loop, OtaOptions options)
    : fleet_(fleet), loop_(loop), options_(options), nodes_(fleet.options().nodes) {
  for (uint32_t i = 0; i < std::max(1u, options_.download_threads); ++i) {
    workers_.emplace_back([this] { download_worker(); });
  }
  fleet_.set_down_hooks("ota",
                        {[this](uint32_t node, std::string_view payload) { on_ota(node, payload); },
                         [this] { on_idle(); }});
}

VirtualOta::~VirtualOta() {
  fleet_.set_down_hooks("ota", {});
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  for (auto& t : workers_) t.join();
}

bool VirtualOta::fails(uint32_t index) const {
  return sync::fnv1a32(fleet_.node_name(index)) % 1000 < options_.fail_permille;
}

uint32_t VirtualOta::assigned_nodes() const {
  uint32_t n = 0;
  for (const auto& node : nodes_) n += node.generation > 0 ? 1 : 0;
  return n;
}

uint32_t VirtualOta::committed_nodes() const {
  uint32_t n = 0;
  for (const auto& node : nodes_) n += node.phase == pb::UPDATE_COMMITTED ? 1 : 0;
  return n;
}

void VirtualOta::on_ota(uint32_t index, std::string_view payload) {
  ++counters_.assignments;
  auto decoded = sync::decode<pb::UpdateAssignment>(payload);
  if (!decoded) return;
  const pb::UpdateAssignment& a = *decoded;
  Node& node = nodes_[index];
  if (a.generation() <= node.generation) {  // a resend after Hello: say where we are
    queue_report(index);
    return;
  }
  const bool same_rollout = a.rollout() == node.rollout;
  node.generation = a.generation();
  if (a.abort()) {
    if (!(same_rollout && node.phase >= pb::UPDATE_SWITCHING && node.phase != pb::UPDATE_FAILED &&
          node.phase != pb::UPDATE_ABORTED)) {
      node.phase = pb::UPDATE_ABORTED;
      ++counters_.aborted;
    }
    node.rollout = a.rollout();
    queue_report(index);
    return;
  }
  if (same_rollout && node.phase != pb::UPDATE_IDLE) {  // same update, newer generation
    queue_report(index);
    return;
  }
  auto manifest = ota::parse_manifest(a.manifest());
  node.rollout = a.rollout();
  node.message.clear();
  if (!manifest) {
    node.phase = pb::UPDATE_FAILED;
    node.message = manifest.error().message();
    queue_report(index);
    return;
  }
  ++counters_.started;
  node.version = manifest->version;
  node.bytes_total = manifest->size;
  node.phase = pb::UPDATE_DOWNLOADING;
  queue_report(index);
  {
    std::lock_guard<std::mutex> lock(mu_);
    downloads_.push_back({index, a.generation(), a.payload_url(), manifest->sha256});
  }
  cv_.notify_one();
}

void VirtualOta::download_worker() {
  for (;;) {
    Download d;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [this] { return stopping_ || !downloads_.empty(); });
      if (stopping_) return;
      d = std::move(downloads_.front());
      downloads_.pop_front();
    }
    auto [base, path] = split_url(d.url);
    httplib::Client client(base);
    client.set_connection_timeout(10);
    client.set_read_timeout(60);
    auto res = client.Get(path);
    bool ok = false;
    std::string why;
    if (!res) {
      why = "download failed: " + httplib::to_string(res.error());
    } else if (res->status != 200) {
      why = "download failed: HTTP " + std::to_string(res->status);
    } else if (sha256_hex(res->body) != d.sha256) {
      why = "payload digest mismatch";
    } else {
      counters_.downloaded_bytes += res->body.size();
      ok = true;
    }
    loop_.post([this, d, ok, why] { downloaded(d.node, d.generation, ok, why); });
  }
}

void VirtualOta::downloaded(uint32_t index, uint64_t generation, bool ok, const std::string& why) {
  Node& node = nodes_[index];
  if (node.generation != generation || terminal(node.phase)) return;  // aborted meanwhile
  if (!ok) {
    ++counters_.download_failures;
    node.phase = pb::UPDATE_FAILED;
    node.message = why;
  } else if (fails(index)) {
    node.phase = pb::UPDATE_ROLLED_BACK;
    node.message = "health check failed (simulated)";
    ++counters_.rolled_back;
  } else {
    node.phase = pb::UPDATE_COMMITTED;
    ++counters_.committed;
  }
  queue_report(index);
}

void VirtualOta::queue_report(uint32_t index) {
  Node& node = nodes_[index];
  if (node.queued) return;
  node.queued = true;
  queued_.push_back(index);
}

void VirtualOta::on_idle() {
  std::vector<uint32_t> queued;
  queued.swap(queued_);
  for (uint32_t index : queued) {
    Node& node = nodes_[index];
    pb::UpdateReport r;
    r.set_node(fleet_.node_name(index));
    r.set_rollout(node.rollout);
    r.set_generation(node.generation);
    r.set_phase(static_cast<pb::UpdatePhase>(node.phase));
    r.set_version(node.version);
    r.set_running_version(node.phase == pb::UPDATE_COMMITTED ? node.version : "");
    r.set_bytes_total(node.bytes_total);
    r.set_bytes_done(node.phase == pb::UPDATE_COMMITTED ? node.bytes_total : 0);
    r.set_message(node.message);
    r.set_seq(++node.seq);
    if (fleet_.publish_up(index, "ota", sync::encode(r), 1)) {
      node.queued = false;
      ++counters_.reports;
    } else {
      queued_.push_back(index);  // connection down: again next round
    }
  }
}

}  // namespace flotilla::bench
