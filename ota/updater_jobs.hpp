// The updater's long steps, run on its worker thread: each takes copies of what it needs and
// returns a JobResult for the loop thread (ota/updater.hpp). Internal to ota/.
//
// Thread-safety: pure functions apart from the files they touch and the atomics they are given.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <string>

#include "common/expected.hpp"
#include "ota/manifest.hpp"
#include "ota/slots.hpp"

namespace flotilla::ota {

// Applies `delta_path` to `base_path`, writing `out_path` (expected to be `size` bytes).
using DeltaApplier =
    std::function<Status(const std::string& base_path, const std::string& delta_path,
                         const std::string& out_path, uint64_t size)>;

namespace detail {

enum class Job { kNone, kDownload, kVerify, kInstall, kSwitch, kHealth, kSwitchBack };

struct JobResult {
  Job job = Job::kNone;
  Status status;
  bool retryable = false;
  bool used_delta = false;
  bool delta_failed = false;  // a delta problem: fall back to the full payload
  std::string active_sha;     // the active slot's content hash, computed when it had no record
  std::string sha256;         // of what was installed
};

struct DownloadJob {
  SlotSet slots;
  std::string self_exe;
  std::string active_slot;
  std::string active_sha;  // recorded; empty: hashed here
  Manifest manifest;
  std::string payload_url;
  std::string delta_url;
  bool delta_allowed = false;  // offered, applier present, no earlier delta failure
  std::string payload_path;
  std::string delta_path;
  std::chrono::seconds low_speed_time{30};
  const std::atomic<bool>* cancel = nullptr;
  std::atomic<uint64_t>* progress = nullptr;
  std::atomic<bool>* progress_delta = nullptr;
};
// Prepares the slot set, decides delta or full, and fetches it (resuming a partial file).
JobResult run_download(const DownloadJob& job);

// Re-verifies the download; for a delta, applies it to the active slot first.
JobResult run_verify(const SlotSet& slots, const std::string& active_slot, const Manifest& manifest,
                     bool delta, const std::string& payload_path, const std::string& delta_path,
                     const DeltaApplier& apply_delta);

// Writes the verified payload into `slot` (temp, fsync, rename) and checks what was written.
// Agent target: an archive payload is kept as the slot's kAgentArchive and extracted there; the
// helpers the update does not carry are copied from `active_slot`, else from the folder of
// `self_exe` (the running binary); a slot still incomplete fails the install.
JobResult run_install(const SlotSet& slots, const std::string& slot, const Manifest& manifest,
                      const std::string& payload_path, const std::string& active_slot,
                      const std::string& self_exe);

// Points the set at `slot` and runs the switch command (when given). A forward switch (kSwitch)
// into an incomplete agent slot fails before the link moves.
JobResult run_switch(Job job, const SlotSet& slots, const std::string& slot,
                     const std::string& command, std::chrono::milliseconds timeout);

// Runs the user's health command; ok when it exits 0 within `timeout`.
JobResult run_health(const std::string& command, std::chrono::milliseconds timeout);

}  // namespace detail
}  // namespace flotilla::ota
