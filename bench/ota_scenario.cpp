// The OTA rollout benchmark (issue 8): wall time to update a simulated fleet in waves, through
// the hub's artifact store, Rollout controller, MQTT and virtual agents that really download the
// payload over HTTP. See run_ota in scenarios.hpp.
#include <algorithm>
#include <cstring>
#include <iostream>
#include <memory>
#include <random>
#include <thread>

#include <nlohmann/json.hpp>

#include "bench/harness.hpp"
#include "bench/virtual_ota.hpp"
#include "common/base64.hpp"
#include "common/sha256.hpp"
#include "ota/manifest.hpp"
#include "ota/signing.hpp"

namespace flotilla::bench {
namespace {

// The virtual updaters live on the loop thread: made and unhooked there.
class LoopOta {
 public:
  LoopOta(Harness& h, OtaOptions options) : h_(h) {
    ota_ = call_on_loop(h_.loop_,
                        [&] { return std::make_unique<VirtualOta>(h_.fleet_, h_.loop_, options); });
  }
  ~LoopOta() {
    call_on_loop(h_.loop_, [this] { ota_.reset(); });
  }
  template <typename F>
  auto on_loop(F fn) {
    return call_on_loop(h_.loop_, [&] { return fn(*ota_); });
  }
  const OtaCounters& counters() const { return ota_->counters(); }

 private:
  Harness& h_;
  std::unique_ptr<VirtualOta> ota_;
};

std::string random_payload(size_t bytes) {
  std::mt19937_64 rng(42);
  std::string s(bytes, '\0');
  for (size_t i = 0; i < bytes; i += 8) {
    const uint64_t v = rng();
    std::memcpy(s.data() + i, &v, std::min<size_t>(8, bytes - i));
  }
  return s;
}

// Pushes artifact fw/`version` (an image payload of `bytes`); an error says which step failed.
Status push_artifact(HubProbe& hub, const std::string& version, size_t bytes) {
  const std::string payload = random_payload(bytes);
  ota::Manifest m;
  m.name = "fw";
  m.version = version;
  m.target = "image";
  m.sha256 = sha256_hex(payload);
  m.size = payload.size();
  const std::string text = ota::manifest_json(m);
  auto key = ota::generate_key();
  if (!key) return key.error();
  auto sig = ota::sign(key->private_pem, text);
  if (!sig) return sig.error();
  const std::string path = "/api/v1/artifacts/fw/" + version;
  nlohmann::json body{{"manifest", text}, {"signature", base64_encode(*sig)}};
  auto r = hub.send_json("PUT", path, body.dump());
  if (!r) return r.error();
  if (r->status / 100 != 2) {
    return Error("PUT " + path + ": HTTP " + std::to_string(r->status) + " " + r->body);
  }
  r = hub.send_json("PUT", path + "/payload", payload, "application/octet-stream");
  if (!r) return r.error();
  if (r->status / 100 != 2) {
    return Error("PUT " + path + "/payload: HTTP " + std::to_string(r->status) + " " + r->body);
  }
  return {};
}

std::string rollout_manifest(const ScenarioOptions& o, const std::string& name,
                             const std::string& version) {
  nlohmann::json waves = nlohmann::json::array();
  for (uint32_t p : o.ota_waves) waves.push_back({{"percent", p}});
  nlohmann::json m{{"apiVersion", "flotilla/v1"},
                   {"kind", "Rollout"},
                   {"metadata", {{"name", name}}},
                   {"spec",
                    {{"artifact", {{"name", "fw"}, {"version", version}}},
                     {"selector", {{"matchLabels", {{"fleet", "sim"}}}}},
                     {"waves", waves},
                     {"soakSeconds", o.ota_soak_s},
                     {"failureThreshold", {{"percent", o.ota_threshold_percent}, {"minCount", 1}}},
                     {"progressTimeoutSeconds", o.timeout_s}}}};
  return m.dump();
}

struct RolloutView {
  std::string phase;
  int wave = -1;
  uint64_t succeeded = 0, failed = 0;
  std::string reason;
};

RolloutView view_of(const std::string& body) {
  RolloutView v;
  auto j = nlohmann::json::parse(body, nullptr, false);
  if (!j.is_object() || !j.contains("status")) return v;
  const auto& st = j["status"];
  v.phase = st.value("phase", "");
  v.wave = st.value("currentWave", 0) - 1;  // the hub counts waves from 1
  v.reason = st.value("pausedReason", "");
  if (st.contains("counts")) {
    v.succeeded = st["counts"].value("succeeded", uint64_t{0});
    v.failed = st["counts"].value("failed", uint64_t{0});
  }
  return v;
}

}  // namespace

int run_ota(const ScenarioOptions& o, std::ostream& out) {
  Harness h(o);
  if (connect_and_report_ready(h, o, out) < 0) return 1;
  LoopOta sim(h, OtaOptions{o.ota_fail_permille, o.ota_download_threads});
  const size_t bytes = static_cast<size_t>(o.ota_payload_kib) * 1024;
  if (auto st = push_artifact(h.hub_, "2.0", bytes); !st) {
    std::cerr << "ota: " << st.error().message() << "\n";
    h.usage_rows(out);
    return 1;
  }
  const CpuSample cpu0 = sample_cpu(o);
  const Clock::time_point t0 = Clock::now();
  auto put = h.hub_.send_json("PUT", "/api/v1/rollouts/fw-2", rollout_manifest(o, "fw-2", "2.0"));
  if (!put || put->status / 100 != 2) {
    std::cerr << "ota: PUT rollout: " << (put ? put->body : put.error().message()) << "\n";
    h.usage_rows(out);
    return 1;
  }
  // Poll the rollout; note when each wave opened and how it ended.
  std::vector<double> wave_opened;
  RolloutView v;
  bool ended = false;
  while (seconds_since(t0) < o.timeout_s) {
    if (auto body = h.hub_.get("/api/v1/rollouts/fw-2")) v = view_of(*body);
    while (v.wave >= 0 && static_cast<int>(wave_opened.size()) <= v.wave) {
      wave_opened.push_back(seconds_since(t0));
    }
    if (v.phase == "Completed" || v.phase == "Paused" || v.phase == "Aborted") {
      ended = true;
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(o.poll_ms));
  }
  const double wall = seconds_since(t0);
  const CpuSample cpu1 = sample_cpu(o);
  const auto [assigned, committed] = sim.on_loop(
      [](VirtualOta& ota) { return std::make_pair(ota.assigned_nodes(), ota.committed_nodes()); });
  std::string waves;
  for (uint32_t p : o.ota_waves) waves += (waves.empty() ? "" : ", ") + std::to_string(p) + "%";
  out << "| rollout | " << o.fleet.nodes << " nodes in waves " << waves << ", soak " << o.ota_soak_s
      << " s, payload " << o.ota_payload_kib << " KiB, " << o.ota_fail_permille
      << "‰ of nodes fail their health check, threshold " << o.ota_threshold_percent
      << "% (min 1) |\n";
  out << "| rollout PUT → " << (ended ? v.phase : "TIMEOUT (" + v.phase + ")") << " | "
      << fmt(wall, 2) << " s |\n";
  std::string opened;
  for (size_t i = 0; i < wave_opened.size(); ++i) {
    opened += (i ? ", " : "") + std::string("wave ") + std::to_string(i + 1) + " at " +
              fmt(wave_opened[i], 2) + " s";
  }
  out << "| waves opened (polled every " << o.poll_ms << " ms) | " << opened << " |\n";
  out << "| hub counts succeeded / failed | " << v.succeeded << " / " << v.failed
      << (v.reason.empty() ? "" : " (paused: " + v.reason + ")") << " |\n";
  out << "| simulator: nodes assigned / committed / rolled back | " << assigned << " / "
      << committed << " / " << sim.counters().rolled_back << " |\n";
  out << "| simulator: payload bytes downloaded | " << sim.counters().downloaded_bytes << " ("
      << fmt(sim.counters().downloaded_bytes / std::max(wall, 1e-9) / (1 << 20), 1)
      << " MiB/s) |\n";
  out << "| CPU during the rollout (machine / hub / broker / sim / other, % of a core) | "
      << cpu_shares(o, cpu0, cpu1, wall) << " |\n";
  h.usage_rows(out);
  return ended ? 0 : 1;
}

}  // namespace flotilla::bench
