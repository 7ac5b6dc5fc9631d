// The simulator's device names: "dev-0001234" for device 1234 (valid device names: node-name
// rules), attached to node 1234 mod nodes.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace flotilla::bench {

std::string device_name(uint32_t index);
// The index of a device_name(); nullopt for any other text (also "dev-1" or "dev-+000001").
std::optional<uint32_t> device_index(std::string_view name);

}  // namespace flotilla::bench
