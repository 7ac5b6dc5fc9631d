// flotctl output: aligned tables, YAML, and the multi-line `describe` views, all from the hub's
// JSON. Missing or mistyped fields print as empty, never throw.
//
// Thread-safety: pure functions.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace flotilla::flotctl {

using json = nlohmann::json;

// Rows of cells, the first row the header, columns padded to line up.
std::string render_table(const std::vector<std::vector<std::string>>& rows);
// The widest cell of each column, and one row padded to such widths (a wider cell pushes the
// rest of its line out; nothing is cut).
std::vector<size_t> column_widths(const std::vector<std::vector<std::string>>& rows);
std::string render_row(const std::vector<std::string>& row, const std::vector<size_t>& widths);
std::string to_yaml(const json& value);

// "42s", "5m", "3h", "2d" since an RFC 3339 time; "<unknown>" when unparseable.
std::string age(const std::string& rfc3339, int64_t now_ms);

// The header and one item's row of a table (kind: nodes | workloads | devices).
std::vector<std::string> table_header(const std::string& kind);
std::vector<std::string> table_row(const std::string& kind, const json& item, int64_t now_ms);

std::string nodes_table(const json& nodes);
std::string workloads_table(const json& workloads, int64_t now_ms);
// NAME NODE DESIRED REPORTED OBSERVED DELTA for a {"items": [device...]} list.
std::string devices_table(const json& devices);
std::string events_table(const json& events, int64_t now_ms);
std::string describe_node(const json& node, const json& events, int64_t now_ms);
std::string describe_workload(const json& workload, const json& events, int64_t now_ms);

}  // namespace flotilla::flotctl
