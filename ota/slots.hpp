// A/B slot sets: two slots and an `active` symlink naming the one in use.
//
// The image target keeps its slots as files (DIR/slot-a, DIR/slot-b, DIR/active -> slot-a); the
// agent target keeps its binary and its helpers in folders (DIR/slot-a/flotilla-agent,
// flotilla-shim, flotilla-oci-monitor, ..., DIR/active -> slot-b), so that a service started as
// DIR/active/flotilla-agent runs whichever binary is active, and that binary runs the helpers of
// its own version (they are looked up next to it). An agent slot that lacks a helper is never
// switched to: its agent could not start workloads. Switching replaces the symlink with rename(),
// so a crash leaves either the old or the new pointer, never none.
//
// Thread-safety: SlotSet is a value; its methods touch the filesystem and may run on any thread
// (the updater never runs two of them at once on one set).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "common/expected.hpp"
#include "ota/agent_archive.hpp"

namespace flotilla::ota {

inline constexpr const char* kSlotA = "slot-a";
inline constexpr const char* kSlotB = "slot-b";
// In an agent slot installed from an archive payload: that archive, the base of the next delta.
inline constexpr const char* kAgentArchive = "payload.tar";

// The folder of `binary` after resolving links (/proc/self/exe names the running binary).
std::string binary_folder(const std::string& binary);

struct SlotSet {
  std::string dir;        // holds slot-a, slot-b and `active`
  std::string file_name;  // empty: each slot is a file; else the file inside each slot folder
  bool executable = false;

  static SlotSet image(const std::string& dir) { return {dir, "", false}; }
  static SlotSet agent(const std::string& dir) { return {dir, kAgentBinary, true}; }
  static std::string other(const std::string& slot) { return slot == kSlotA ? kSlotB : kSlotA; }

  // The file holding `slot`'s content.
  std::string slot_path(const std::string& slot) const;
  // The file that stands for `slot`'s content: what its recorded SHA-256 is of and what a delta
  // applies to (the agent's archive when it came as one, else slot_path()).
  std::string base_path(const std::string& slot) const;
  // The active slot's file through the `active` link (what a service starts).
  std::string active_path() const;
  // "slot-a" or "slot-b" as the link says; an error when there is no valid link.
  Expected<std::string> active() const;
  // The active slot, or slot-a when the set has no link yet (prepare() will make it so).
  std::string active_or_default() const;
  // Points `active` at `slot`: a new link beside it, renamed over it, the folder fsynced.
  // `before_rename` runs between the two (a fail point).
  Status point_to(const std::string& slot, const std::function<void()>& before_rename = {}) const;
  // Creates what is missing: the folder, empty slots (image), and `active` -> slot-a; for the
  // agent target slot-a is seeded with a copy of `seed_binary` and of the helpers beside it when
  // it holds no binary (a helper missing there is left out; complete() then says so).
  Status prepare(const std::string& seed_binary = "") const;
  // Agent target: copies into `slot` each helper not named in `have`, from the first of
  // `sources` (folders) that holds it, temp -> fsync -> rename with its mode; symlinks are
  // followed, so the slot holds its own files. A helper found nowhere is an error naming it
  // (skipped with `missing_ok`).
  Status copy_helpers(const std::string& slot, const std::vector<std::string>& have,
                      const std::vector<std::string>& sources, bool missing_ok = false) const;
  // Ok when `slot` can run: always for the image target; for the agent target flotilla-agent
  // and every helper are regular executable files there. Else an error naming what is missing.
  Status complete(const std::string& slot) const;
};

}  // namespace flotilla::ota
