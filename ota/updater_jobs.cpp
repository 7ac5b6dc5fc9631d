#include "ota/updater_jobs.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstring>

#include "common/failpoint.hpp"
#include "ota/file_io.hpp"
#include "runtime/image/http_fetch.hpp"
#include "runtime/run_command.hpp"

namespace flotilla::ota::detail {
namespace {

using runtime::image::fetch_to_file;
using runtime::image::FetchRequest;
using runtime::image::sha256_file;

constexpr uint64_t kFailpointBytes = 1 << 20;

uint64_t file_size(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 ? static_cast<uint64_t>(st.st_size) : 0;
}

JobResult failed(Job job, const std::string& message, bool retryable = false) {
  JobResult r;
  r.job = job;
  r.status = Error(message);
  r.retryable = retryable;
  return r;
}

JobResult fetch(const DownloadJob& job, bool delta) {
  FetchRequest req;
  req.url = delta ? job.delta_url : job.payload_url;
  req.dest = delta ? job.delta_path : job.payload_path;
  req.sha256 = delta ? job.manifest.delta->sha256 : job.manifest.sha256;
  req.max_bytes = delta ? job.manifest.delta->size : job.manifest.size;
  req.low_speed_time = job.low_speed_time;
  req.cancel = job.cancel;
  job.progress_delta->store(delta);
  req.on_progress = [progress = job.progress](uint64_t size, uint64_t fetched) {
    progress->store(size);
    // Killed once this process fetched ~1 MiB, so a restarted agent resumes rather than dies.
    if (fetched >= kFailpointBytes && failpoint("ota.after_download_chunk")) ::raise(SIGKILL);
  };
  JobResult r;
  r.job = Job::kDownload;
  r.used_delta = delta;
  if (::access(req.dest.c_str(), F_OK) == 0) {
    // A finished download (a restart after it completed): fetch_to_file verified it before the
    // rename, and verifying checks it again.
    job.progress->store(file_size(req.dest));
    return r;
  }
  auto out = fetch_to_file(req);
  if (!out) {
    r.status = out.failure().error;
    r.retryable = out.failure().retryable;
    // A delta that cannot be had is not worth retrying forever: the full payload can be.
    r.delta_failed = delta && !r.retryable;
    return r;
  }
  job.progress->store(out->size);
  return r;
}

}  // namespace

JobResult run_download(const DownloadJob& job) {
  if (auto st = job.slots.prepare(job.self_exe); !st) {
    return failed(Job::kDownload, st.error().message());
  }
  JobResult hashed;
  std::string active_sha = job.active_sha;
  bool delta = false;
  if (job.delta_allowed && job.manifest.delta) {
    if (active_sha.empty()) {
      auto sha = sha256_file(job.slots.base_path(job.active_slot));
      if (sha) active_sha = *sha;
    }
    delta = active_sha == job.manifest.delta->base_sha256;
  }
  JobResult r = fetch(job, delta);
  if (job.active_sha.empty()) r.active_sha = active_sha;
  return r;
}

JobResult run_verify(const SlotSet& slots, const std::string& active_slot, const Manifest& manifest,
                     bool delta, const std::string& payload_path, const std::string& delta_path,
                     const DeltaApplier& apply_delta) {
  if (delta && ::access(payload_path.c_str(), F_OK) != 0) {
    const std::string out = payload_path + ".applying";
    ::unlink(out.c_str());
    Status st = apply_delta
                    ? apply_delta(slots.base_path(active_slot), delta_path, out, manifest.size)
                    : Status(Error("no delta support"));
    if (st && ::rename(out.c_str(), payload_path.c_str()) != 0) {
      st = Error("Failed to store the patched payload '" + payload_path + "'");
    }
    if (!st) {
      ::unlink(out.c_str());
      JobResult r = failed(Job::kVerify, "Failed to apply the delta: " + st.error().message());
      r.delta_failed = true;
      return r;
    }
  }
  auto sha = sha256_file(payload_path);
  std::string problem;
  if (!sha) {
    problem = sha.error().message();
  } else if (*sha != manifest.sha256 || file_size(payload_path) != manifest.size) {
    problem = "Failed to verify the payload of " + manifest.name + " " + manifest.version +
              ": digest mismatch (want sha256:" + manifest.sha256 + ", got sha256:" + *sha + ", " +
              std::to_string(file_size(payload_path)) + " bytes)";
  }
  if (problem.empty()) return JobResult{Job::kVerify};
  ::unlink(payload_path.c_str());
  JobResult r = failed(Job::kVerify, problem);
  r.delta_failed = delta;
  return r;
}

JobResult run_install(const SlotSet& slots, const std::string& slot, const Manifest& manifest,
                      const std::string& payload_path, const std::string& active_slot,
                      const std::string& self_exe) {
  const bool archive = manifest.format == kPayloadTar && slots.executable;
  const std::string folder = slots.dir + "/" + slot;
  const std::string archive_path = folder + "/" + kAgentArchive;
  CopyOptions copy{.mode = static_cast<mode_t>(slots.executable ? 0755 : 0644), .at_half = [] {
                     if (failpoint("ota.during_install")) ::raise(SIGKILL);
                   }};
  if (slots.executable && !archive && ::unlink(archive_path.c_str()) != 0 && errno != ENOENT) {
    return failed(Job::kInstall,
                  "Failed to remove '" + archive_path + "': " + std::strerror(errno));
  }
  auto written =
      copy_file_atomic(payload_path, archive ? archive_path : slots.slot_path(slot), copy);
  if (!written) return failed(Job::kInstall, written.error().message());
  const std::string& sha = written->sha256;
  if (sha != manifest.sha256) {
    return failed(Job::kInstall, "Failed to install into " + slot + ": written digest mismatch" +
                                     " (want sha256:" + manifest.sha256 + ", got sha256:" + sha +
                                     ")");
  }
  if (slots.executable) {
    std::vector<std::string> have = {kAgentBinary};
    if (archive) {
      auto extracted = extract_agent_archive(archive_path, folder);
      if (!extracted) {
        return failed(Job::kInstall,
                      "Failed to install into " + slot + ": " + extracted.error().message());
      }
      have = std::move(*extracted);
    }
    auto st =
        slots.copy_helpers(slot, have, {slots.dir + "/" + active_slot, binary_folder(self_exe)});
    if (st) st = slots.complete(slot);
    if (!st) return failed(Job::kInstall, st.error().message());
  }
  JobResult r;
  r.job = Job::kInstall;
  r.sha256 = sha;
  return r;
}

JobResult run_switch(Job job, const SlotSet& slots, const std::string& slot,
                     const std::string& command, std::chrono::milliseconds timeout) {
  const bool forward = job == Job::kSwitch;
  if (forward) {
    if (auto st = slots.complete(slot); !st) return failed(job, st.error().message());
  }
  // ota.during_switch: killed with the new link made but not yet renamed over `active`.
  auto st = slots.point_to(slot, [forward] {
    if (forward && failpoint("ota.during_switch")) ::raise(SIGKILL);
  });
  if (!st) return failed(job, st.error().message());
  if (forward && failpoint("ota.after_switch")) ::raise(SIGKILL);
  if (command.empty()) return JobResult{job};
  runtime::CommandOptions opts;
  opts.timeout = timeout;
  auto ran = runtime::run_command({"/bin/sh", "-c", command}, opts);
  if (!ran) return failed(job, "Failed to run the switch command: " + ran.error().message());
  if (ran->exit_code != 0 || ran->timed_out) {
    return failed(job, "Failed to run the switch command '" + command +
                           "': " + (ran->timed_out ? "timed out" : runtime::command_failure(*ran)));
  }
  return JobResult{job};
}

JobResult run_health(const std::string& command, std::chrono::milliseconds timeout) {
  runtime::CommandOptions opts;
  opts.timeout = timeout;
  auto ran = runtime::run_command({"/bin/sh", "-c", command}, opts);
  if (!ran) return failed(Job::kHealth, "health command: " + ran.error().message());
  if (ran->timed_out) {
    return failed(Job::kHealth, "health command '" + command + "' timed out after " +
                                    std::to_string(timeout.count()) + " ms");
  }
  if (ran->exit_code != 0) {
    return failed(Job::kHealth,
                  "health command '" + command + "' failed: " + runtime::command_failure(*ran));
  }
  return JobResult{Job::kHealth};
}

}  // namespace flotilla::ota::detail
