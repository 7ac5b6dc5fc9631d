// The web console's files (cloud-hub/console/), compiled into the hub by
// cloud-hub/console/embed.cmake and served at / and /console/NAME (docs/console.md).
#pragma once

#include <string_view>
#include <vector>

namespace flotilla::hub {

struct ConsoleAsset {
  std::string_view name;  // e.g. "app.js"
  std::string_view body;
};

// Every file, in the order the build listed them; the same vector each call.
const std::vector<ConsoleAsset>& console_assets();

// The Content-Type for a console file's name ("application/octet-stream" when unknown).
std::string_view console_content_type(std::string_view name);

}  // namespace flotilla::hub
