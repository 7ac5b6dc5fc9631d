// The MQTT topic scheme: flotilla/v1/s/{shard}/n/{node}/{up|down}/{kind}.
//
// shard = fnv1a32(node) mod shard_count. Node names are 1..63 characters of [a-z0-9.-_],
// starting and ending alphanumeric, so they can never contain MQTT wildcards or separators.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "common/expected.hpp"

namespace flotilla::sync {

// Protocol versions (sync/desired_parts.hpp says what each added and how they are negotiated).
inline constexpr uint32_t kProtocolVersion = 3;     // newest this build speaks
inline constexpr uint32_t kMinProtocolVersion = 1;  // oldest this build still speaks
inline constexpr uint32_t kDefaultShards = 16;

enum class Direction { kUp, kDown };

struct Topic {
  uint32_t shard = 0;
  std::string node;
  Direction direction = Direction::kUp;
  std::string kind;  // up: hello heartbeat ack status will twin ota; down: desired resync twin ota
};

uint32_t fnv1a32(std::string_view data);
uint32_t shard_of(std::string_view node, uint32_t shard_count);

// Empty when valid; otherwise why not.
Status validate_node_name(std::string_view node);

std::string make_topic(const Topic& t);
std::string up_topic(std::string_view node, uint32_t shard_count, std::string_view kind);
std::string down_topic(std::string_view node, uint32_t shard_count, std::string_view kind);
// Subscription filter for every node's up/* messages of one shard.
std::string shard_up_filter(uint32_t shard);
// Subscription filter for one node's down/* messages.
std::string node_down_filter(std::string_view node, uint32_t shard_count);

// Retained HubOnline announcements of the hub owning `shard`.
std::string hub_online_topic(uint32_t shard);

// Parses a concrete topic; rejects anything not produced by make_topic.
Expected<Topic> parse_topic(std::string_view topic);

// MQTT filter matching with '+' and '#' (used by the in-memory fake broker).
bool topic_matches(std::string_view filter, std::string_view topic);

}  // namespace flotilla::sync
