// A/B slot sets: two slots and an `active` symlink naming the one in use.
//
// The image target keeps its slots as files (DIR/slot-a, DIR/slot-b, DIR/active -> slot-a); the
// agent target keeps its binary in folders (DIR/slot-a/flotilla-agent, ..., DIR/active ->
// slot-b), so that a service started as DIR/active/flotilla-agent runs whichever binary is
// active. Switching replaces the symlink with rename(), so a crash leaves either the old or the
// new pointer, never none.
//
// Thread-safety: SlotSet is a value; its methods touch the filesystem and may run on any thread
// (the updater never runs two of them at once on one set).
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "common/expected.hpp"

namespace flotilla::ota {

inline constexpr const char* kSlotA = "slot-a";
inline constexpr const char* kSlotB = "slot-b";
inline constexpr const char* kAgentBinary = "flotilla-agent";

struct SlotSet {
  std::string dir;        // holds slot-a, slot-b and `active`
  std::string file_name;  // empty: each slot is a file; else the file inside each slot folder
  bool executable = false;

  static SlotSet image(const std::string& dir) { return {dir, "", false}; }
  static SlotSet agent(const std::string& dir) { return {dir, kAgentBinary, true}; }
  static std::string other(const std::string& slot) { return slot == kSlotA ? kSlotB : kSlotA; }

  // The file holding `slot`'s content.
  std::string slot_path(const std::string& slot) const;
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
  // agent target slot-a is seeded with a copy of `seed_binary` when it holds none.
  Status prepare(const std::string& seed_binary = "") const;
};

}  // namespace flotilla::ota
