// UpMessage: one checked agent-to-hub message, and the coalescing of status batches that the
// sync server applies to each burst it hands to the controller.
#pragma once

#include <cstddef>
#include <variant>
#include <vector>

#include "sync/flotilla.pb.h"

namespace flotilla::hub {

using UpMessage = std::variant<flotilla::v1::Hello, flotilla::v1::Heartbeat, flotilla::v1::Ack,
                               flotilla::v1::StatusBatch, flotilla::v1::Offline,
                               flotilla::v1::TwinReported, flotilla::v1::UpdateReport>;

// Merges each node's runs of consecutive status batches into the first of the run, keeping per
// instance the record with the highest seq, events in order (less those the controller would
// skip as replays: seq at or below what the run already carried), summing dropped-event counts
// and keeping the highest acked_revision (v3). A run ends at anything else from the same node, and
// `full` batches are never merged (their "forget what is not listed" must see exactly their list),
// so every node's messages keep their order; handling the result changes the store as handling
// `messages` would, except that the run's dropped-event counts arrive as one EventsDropped event.
// Adds the number of batches merged away to `merged_count`.
std::vector<UpMessage> coalesce_status(std::vector<UpMessage> messages, size_t& merged_count);

}  // namespace flotilla::hub
