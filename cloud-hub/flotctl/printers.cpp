#include "cloud-hub/flotctl/printers.hpp"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <ctime>
#include <regex>
#include <set>
#include <sstream>

namespace flotilla::flotctl {
namespace {

// The field as text whatever its JSON type; "" when absent.
std::string text(const json& j, const std::string& key) {
  if (!j.is_object() || !j.contains(key) || j[key].is_null()) return "";
  const json& v = j[key];
  return v.is_string() ? v.get<std::string>() : v.dump();
}

const json& field(const json& j, const std::string& key) {
  static const json kNull;
  return j.is_object() && j.contains(key) ? j[key] : kNull;
}

// "yes", "no", or "-" for an agent that does not report readiness.
std::string ready_text(const json& instance) {
  const json& ready = field(instance, "ready");
  return ready.is_boolean() ? (ready.get<bool>() ? "yes" : "no") : "-";
}

std::string labels_text(const json& labels) {
  if (!labels.is_object() || labels.empty()) return "<none>";
  std::string out;
  for (const auto& [k, v] : labels.items()) {
    if (!out.empty()) out += ",";
    out += k + "=" + (v.is_string() ? v.get<std::string>() : v.dump());
  }
  return out;
}

// Text that a YAML reader (1.1 or 1.2) would take for something else -- a number, bool,
// null, date, or syntax -- is quoted; everything else stays plain for readability.
bool needs_quotes(const std::string& s) {
  static const std::regex kNumber(
      R"(^[-+]?(\.[0-9]+|[0-9][0-9_]*(\.[0-9_]*)?)([eE][-+]?[0-9]+)?$|^0[xXoO][0-9a-fA-F]+$|)"
      R"(^[-+]?\.(inf|Inf|INF|nan|NaN|NAN)$)");
  static const std::regex kWord(R"(^(y|n|yes|no|on|off|true|false|null|~)$)", std::regex::icase);
  static const std::regex kDate(R"(^[0-9]{4}-[0-9]{2}-[0-9]{2})");
  if (s.empty() || std::isspace(static_cast<unsigned char>(s.front())) ||
      std::isspace(static_cast<unsigned char>(s.back()))) {
    return true;
  }
  if (std::string("-?:,[]{}#&*!|>'\"%@`").find(s.front()) != std::string::npos) return true;
  if (s.find(": ") != std::string::npos || s.find(" #") != std::string::npos || s.back() == ':' ||
      s.find('\n') != std::string::npos || s.find('\t') != std::string::npos) {
    return true;
  }
  return std::regex_search(s, kNumber) || std::regex_match(s, kWord) || std::regex_search(s, kDate);
}

void emit(YAML::Emitter& out, const json& j) {
  if ((j.is_object() || j.is_array()) && j.empty()) {
    out << YAML::Flow << (j.is_object() ? YAML::BeginMap : YAML::BeginSeq)
        << (j.is_object() ? YAML::EndMap : YAML::EndSeq);
  } else if (j.is_object()) {
    out << YAML::BeginMap;
    for (const auto& [k, v] : j.items()) {
      out << YAML::Key << k << YAML::Value;
      emit(out, v);
    }
    out << YAML::EndMap;
  } else if (j.is_array()) {
    out << YAML::BeginSeq;
    for (const auto& v : j) emit(out, v);
    out << YAML::EndSeq;
  } else if (j.is_string()) {
    const std::string& s = j.get_ref<const std::string&>();
    if (needs_quotes(s)) out << YAML::DoubleQuoted;
    out << s;
  } else if (j.is_null()) {
    out << YAML::Null;
  } else {
    out << j.dump();  // numbers and booleans as JSON spells them
  }
}

}  // namespace

std::vector<size_t> column_widths(const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> widths;
  for (const auto& row : rows) {
    if (widths.size() < row.size()) widths.resize(row.size(), 0);
    for (size_t i = 0; i < row.size(); ++i) widths[i] = std::max(widths[i], row[i].size());
  }
  return widths;
}

std::string render_row(const std::vector<std::string>& row, const std::vector<size_t>& widths) {
  std::string line;
  for (size_t i = 0; i < row.size(); ++i) {
    line += row[i];
    if (i + 1 < row.size()) {
      const size_t width = i < widths.size() ? std::max(widths[i], row[i].size()) : row[i].size();
      line += std::string(width - row[i].size() + 3, ' ');
    }
  }
  return line + "\n";
}

std::string render_table(const std::vector<std::vector<std::string>>& rows) {
  const std::vector<size_t> widths = column_widths(rows);
  std::string out;
  for (const auto& row : rows) out += render_row(row, widths);
  return out;
}

std::string to_yaml(const json& value) {
  YAML::Emitter out;
  emit(out, value);
  return std::string(out.c_str()) + "\n";
}

std::string age(const std::string& rfc3339, int64_t now_ms) {
  std::tm tm{};
  const char* end = strptime(rfc3339.c_str(), "%Y-%m-%dT%H:%M:%SZ", &tm);
  if (end == nullptr || *end != '\0') return "<unknown>";
  int64_t secs = now_ms / 1000 - static_cast<int64_t>(timegm(&tm));
  if (secs < 0) secs = 0;
  if (secs < 120) return std::to_string(secs) + "s";
  if (secs < int64_t{120} * 60) return std::to_string(secs / 60) + "m";
  if (secs < int64_t{48} * 3600) return std::to_string(secs / 3600) + "h";
  return std::to_string(secs / 86400) + "d";
}

std::vector<std::string> table_header(const std::string& kind) {
  if (kind == "nodes") return {"NAME", "STATUS", "LABELS", "ARCH", "WORKLOADS"};
  if (kind == "devices") return {"NAME", "NODE", "DESIRED", "REPORTED", "OBSERVED", "DELTA"};
  return {"NAME", "TYPE", "DESIRED", "READY", "PENDING", "AGE"};
}

std::vector<std::string> table_row(const std::string& kind, const json& item, int64_t now_ms) {
  if (kind == "nodes") {
    return {text(item, "name"), text(item, "state"), labels_text(field(item, "labels")),
            text(item, "arch"), std::to_string(field(item, "workloads").size())};
  }
  if (kind == "devices") {
    std::string delta;
    const json& changed = field(item, "delta");
    if (changed.is_object()) {
      for (auto it = changed.begin(); it != changed.end(); ++it) {
        delta += (delta.empty() ? "" : ",") + it.key();
      }
    }
    return {text(item, "name"),
            text(item, "node"),
            "v" + text(item, "desiredVersion"),
            "v" + text(item, "reportedVersion"),
            text(item, "observedDesired"),
            delta.empty() ? "-" : delta};
  }
  const json& meta = field(item, "metadata");
  const json& st = field(item, "status");
  return {text(meta, "name"),           text(field(item, "spec"), "type"),
          text(st, "desiredInstances"), text(st, "readyInstances"),
          text(st, "pending"),          age(text(meta, "creationTimestamp"), now_ms)};
}

namespace {

std::string items_table(const std::string& kind, const json& list, int64_t now_ms) {
  std::vector<std::vector<std::string>> rows = {table_header(kind)};
  for (const auto& item : field(list, "items")) rows.push_back(table_row(kind, item, now_ms));
  return render_table(rows);
}

}  // namespace

std::string nodes_table(const json& nodes) { return items_table("nodes", nodes, 0); }

std::string workloads_table(const json& workloads, int64_t now_ms) {
  return items_table("workloads", workloads, now_ms);
}

std::string devices_table(const json& devices) { return items_table("devices", devices, 0); }

std::string events_table(const json& events, int64_t now_ms) {
  std::vector<std::vector<std::string>> rows = {{"AGE", "NODE", "OBJECT", "REASON", "MESSAGE"}};
  for (const auto& e : field(events, "items")) {
    rows.push_back({age(text(e, "time"), now_ms), text(e, "node"), text(e, "object"),
                    text(e, "reason"), text(e, "message")});
  }
  return render_table(rows);
}

namespace {

void event_lines(std::ostringstream& out, const json& events, int64_t now_ms) {
  out << "Events:\n";
  const json& items = field(events, "items");
  if (items.empty()) {
    out << "  <none>\n";
    return;
  }
  std::vector<std::vector<std::string>> rows = {{"AGE", "NODE", "REASON", "MESSAGE"}};
  for (const auto& e : items) {
    rows.push_back(
        {age(text(e, "time"), now_ms), text(e, "node"), text(e, "reason"), text(e, "message")});
  }
  std::istringstream table(render_table(rows));
  for (std::string line; std::getline(table, line);) out << "  " << line << "\n";
}

void kv(std::ostringstream& out, const std::string& key, const std::string& value) {
  std::string label = key + ":";
  out << label << std::string(label.size() < 16 ? 16 - label.size() : 1, ' ')
      << (value.empty() ? "<none>" : value) << "\n";
}

}  // namespace

std::string describe_node(const json& node, const json& events, int64_t now_ms) {
  std::ostringstream out;
  kv(out, "Name", text(node, "name"));
  kv(out, "State", text(node, "state"));
  kv(out, "Labels", labels_text(field(node, "labels")));
  const json& cap = field(node, "capacity");
  kv(out, "Capacity", "cpu=" + text(cap, "cpu") + " memory=" + text(cap, "memory"));
  kv(out, "Arch", text(node, "arch"));
  std::string runtimes;
  for (const auto& r : field(node, "runtimes")) {
    runtimes += (runtimes.empty() ? "" : ",") + (r.is_string() ? r.get<std::string>() : r.dump());
  }
  kv(out, "Runtimes", runtimes);
  kv(out, "Agent", text(node, "agentVersion"));
  std::string seen = text(node, "lastSeenSecondsAgo");
  kv(out, "Last seen", seen.empty() ? "" : seen + "s ago");
  kv(out, "Revision", text(node, "revision") + " (acked " + text(node, "ackedRevision") + ")");
  out << "Instances:\n";
  const json& instances = field(node, "instanceStatus");
  if (instances.empty()) {
    out << "  <none>\n";
  } else {
    std::vector<std::vector<std::string>> rows = {
        {"WORKLOAD", "INSTANCE", "PHASE", "READY", "REASON", "RESTARTS", "PID", "MESSAGE"}};
    for (const auto& i : instances) {
      rows.push_back({text(i, "workload"), text(i, "instanceId"), text(i, "phase"), ready_text(i),
                      text(i, "reason"), text(i, "restarts"), text(i, "pid"), text(i, "message")});
    }
    std::istringstream table(render_table(rows));
    for (std::string line; std::getline(table, line);) out << "  " << line << "\n";
  }
  event_lines(out, events, now_ms);
  return out.str();
}

std::string describe_workload(const json& workload, const json& events, int64_t now_ms) {
  std::ostringstream out;
  const json& meta = field(workload, "metadata");
  const json& spec = field(workload, "spec");
  const json& st = field(workload, "status");
  kv(out, "Name", text(meta, "name"));
  kv(out, "Labels", labels_text(field(meta, "labels")));
  kv(out, "Created",
     text(meta, "creationTimestamp") + " (" + age(text(meta, "creationTimestamp"), now_ms) +
         " ago)");
  kv(out, "Generation", text(meta, "generation"));
  std::string type = text(spec, "type");
  kv(out, "Type", type);
  const json& section = field(spec, type);
  if (type == "process" || (type == "container" && field(section, "command").is_array())) {
    std::string cmd;
    for (const auto& a : field(section, "command")) {
      cmd += (cmd.empty() ? "" : " ") + (a.is_string() ? a.get<std::string>() : a.dump());
    }
    kv(out, "Command", cmd);
  }
  if (type == "container" || type == "vm") kv(out, "Image", text(section, "image"));
  kv(out, "Placement",
     field(spec, "placement").is_object() ? "every node" : text(spec, "replicas") + " replicas");
  kv(out, "Selector", labels_text(field(field(spec, "selector"), "matchLabels")));
  const json& res = field(spec, "resources");
  kv(out, "Resources",
     res.is_object() && !res.empty() ? "cpu=" + text(res, "cpu") + " memory=" + text(res, "memory")
                                     : "");
  kv(out, "Restart policy", text(spec, "restartPolicy"));
  kv(out, "Spec hash", text(st, "specHash").substr(0, 12));
  kv(out, "Instances",
     text(st, "desiredInstances") + " desired, " + text(st, "readyInstances") + " ready, " +
         text(st, "pending") + " pending");
  if (!text(st, "pendingReason").empty()) kv(out, "Pending reason", text(st, "pendingReason"));
  out << "Nodes:\n";
  const json& instances = field(st, "instances");
  const json& placed = field(st, "nodes");
  if (instances.empty() && placed.empty()) {
    out << "  <none>\n";
  } else {
    std::vector<std::vector<std::string>> rows = {
        {"NODE", "INSTANCE", "PHASE", "READY", "REASON", "RESTARTS", "EXIT", "CURRENT", "MESSAGE"}};
    std::set<std::string> reported;
    for (const auto& i : instances) {
      reported.insert(text(i, "node"));
      rows.push_back({text(i, "node"), text(i, "instanceId"), text(i, "phase"), ready_text(i),
                      text(i, "reason"), text(i, "restarts"), text(i, "exitCode"),
                      field(i, "current") == true ? "yes" : "no", text(i, "message")});
    }
    for (const auto& n : placed) {
      std::string name = n.is_string() ? n.get<std::string>() : n.dump();
      if (reported.count(name) == 0) {
        rows.push_back({name, "-", "-", "", "", "", "placed; no status reported yet"});
      }
    }
    std::istringstream table(render_table(rows));
    for (std::string line; std::getline(table, line);) out << "  " << line << "\n";
  }
  event_lines(out, events, now_ms);
  return out.str();
}

}  // namespace flotilla::flotctl
