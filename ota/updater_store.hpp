// UpdaterStore: the OTA updater's own SQLite file (<data>/ota/state.db, full sync): the current
// update's state row, what each slot holds, and the report sequence number.
//
// Every save is one transaction, so a crash leaves the previous or the next state, never a mix;
// save() can record a slot's content in the same transaction as the step that wrote it.
//
// Thread-safety: one thread at a time (the updater's loop thread).
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "common/expected.hpp"
#include "common/sqlite.hpp"
#include "ota/update_state.hpp"

namespace flotilla::ota {

class UpdaterStore {
 public:
  static Expected<std::unique_ptr<UpdaterStore>> open(const std::string& path);

  // The saved state; a default (idle) one when none was saved yet.
  Expected<UpdateState> load();
  Status save(const UpdateState& state, const std::optional<SlotRecord>& slot = std::nullopt);
  // The record of `slot` of `target`, or nullopt.
  Expected<std::optional<SlotRecord>> slot(const std::string& target, const std::string& slot);
  Status save_slot(const SlotRecord& record);
  // The next report sequence number, persisted before it is returned: strictly increasing
  // across restarts.
  Expected<uint64_t> next_seq();

 private:
  explicit UpdaterStore(sql::Db db) : db_(std::move(db)) {}
  Status write_slot(const SlotRecord& record);
  sql::Db db_;
};

}  // namespace flotilla::ota
