// The updater's persisted state (ota/updater_store.hpp) and the assignment that starts it.
//
// Phase mirrors flotilla.v1.UpdatePhase value for value (the reported form). One update is in
// the store at a time: the newest assignment's; its state row is rewritten, in one SQLite
// transaction, before each step runs.
//
// Thread-safety: value types.
#pragma once

#include <cstdint>
#include <string>

namespace flotilla::ota {

enum class Phase : int {
  kIdle = 0,
  kDownloading = 1,
  kVerifying = 2,
  kInstalling = 3,
  kSwitching = 4,
  kHealthCheck = 5,  // switched, running the new version, not yet proved healthy: pending
  kCommitted = 6,
  kRolledBack = 7,
  kFailed = 8,
  kAborted = 9,
};

const char* phase_name(Phase phase);
// Committed, rolled back, failed or aborted: nothing more happens until a newer assignment.
bool is_final(Phase phase);
// Downloading, verifying or installing: an abort or a newer assignment still stops it.
bool before_switch(Phase phase);

// An UpdateAssignment from the hub (sync/flotilla.proto), decoded.
struct Assignment {
  std::string rollout;
  uint64_t generation = 0;
  std::string manifest;   // JSON text exactly as signed
  std::string signature;  // Ed25519, 64 bytes
  std::string payload_url;
  std::string delta_url;  // empty: no delta offered
  bool abort = false;
};

struct UpdateState {
  std::string rollout;
  uint64_t generation = 0;
  Phase phase = Phase::kIdle;
  std::string manifest;  // as signed; re-parsed after a restart
  std::string signature;
  std::string payload_url;
  std::string delta_url;
  std::string target;  // "agent" | "image", from the manifest
  std::string version;
  std::string from_slot;        // active when the update began (rolled back to)
  std::string to_slot;          // the inactive slot being written
  bool delta = false;           // the delta is being downloaded or applied
  bool delta_fallback = false;  // the delta failed: the full payload is used
  uint64_t bytes_done = 0;
  uint64_t bytes_total = 0;
  uint32_t attempts = 0;  // agent starts while this update is pending
  bool pending = false;   // switched, not yet committed or rolled back
  uint32_t transitions = 0;
  std::string message;  // why it failed or rolled back; notes (delta fallback)
};

// What the updater installed into a slot (a slot it never wrote has no record).
struct SlotRecord {
  std::string target;
  std::string slot;
  std::string sha256;
  std::string version;
};

}  // namespace flotilla::ota
