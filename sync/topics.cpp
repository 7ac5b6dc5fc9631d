#include "sync/topics.hpp"

#include <cctype>
#include <vector>

namespace flotilla::sync {
namespace {

std::vector<std::string_view> split(std::string_view s, char sep) {
  std::vector<std::string_view> out;
  size_t start = 0;
  while (true) {
    size_t pos = s.find(sep, start);
    if (pos == std::string_view::npos) {
      out.push_back(s.substr(start));
      return out;
    }
    out.push_back(s.substr(start, pos - start));
    start = pos + 1;
  }
}

bool known_kind(Direction d, std::string_view kind) {
  if (d == Direction::kUp) {
    return kind == "hello" || kind == "heartbeat" || kind == "ack" || kind == "status" ||
           kind == "will" || kind == "twin" || kind == "ota";
  }
  return kind == "desired" || kind == "resync" || kind == "twin" || kind == "ota";
}

}  // namespace

uint32_t fnv1a32(std::string_view data) {
  uint32_t h = 2166136261u;
  for (unsigned char c : data) {
    h ^= c;
    h *= 16777619u;
  }
  return h;
}

uint32_t shard_of(std::string_view node, uint32_t shard_count) {
  return shard_count == 0 ? 0 : fnv1a32(node) % shard_count;
}

Status validate_node_name(std::string_view node) {
  if (node.empty() || node.size() > 63) {
    return Error("node name '" + std::string(node) + "' must be 1 to 63 characters");
  }
  auto alnum = [](char c) {
    return std::islower(static_cast<unsigned char>(c)) ||
           std::isdigit(static_cast<unsigned char>(c));
  };
  for (char c : node) {
    if (!alnum(c) && c != '-' && c != '.' && c != '_') {
      return Error("node name '" + std::string(node) +
                   "' may hold only lowercase letters, digits, '-', '.' and '_'");
    }
  }
  if (!alnum(node.front()) || !alnum(node.back())) {
    return Error("node name '" + std::string(node) + "' must start and end with a letter or digit");
  }
  return Ok();
}

std::string make_topic(const Topic& t) {
  return "flotilla/v1/s/" + std::to_string(t.shard) + "/n/" + t.node +
         (t.direction == Direction::kUp ? "/up/" : "/down/") + t.kind;
}

std::string up_topic(std::string_view node, uint32_t shard_count, std::string_view kind) {
  return make_topic(
      {shard_of(node, shard_count), std::string(node), Direction::kUp, std::string(kind)});
}

std::string down_topic(std::string_view node, uint32_t shard_count, std::string_view kind) {
  return make_topic(
      {shard_of(node, shard_count), std::string(node), Direction::kDown, std::string(kind)});
}

std::string shard_up_filter(uint32_t shard) {
  return "flotilla/v1/s/" + std::to_string(shard) + "/n/+/up/+";
}

std::string node_down_filter(std::string_view node, uint32_t shard_count) {
  return "flotilla/v1/s/" + std::to_string(shard_of(node, shard_count)) + "/n/" +
         std::string(node) + "/down/+";
}

std::string hub_online_topic(uint32_t shard) {
  return "flotilla/v1/s/" + std::to_string(shard) + "/hub/online";
}

Expected<Topic> parse_topic(std::string_view topic) {
  auto bad = [&](const std::string& why) {
    return Error("Failed to parse topic '" + std::string(topic.substr(0, 200)) + "': " + why);
  };
  if (topic.size() > 256) return bad("longer than 256 bytes");
  auto parts = split(topic, '/');
  if (parts.size() != 8) return bad("want 8 levels, got " + std::to_string(parts.size()));
  if (parts[0] != "flotilla" || parts[1] != "v1" || parts[2] != "s" || parts[4] != "n") {
    return bad("not a flotilla/v1 topic");
  }
  Topic t;
  std::string_view shard = parts[3];
  if (shard.empty() || shard.size() > 6 || (shard.size() > 1 && shard[0] == '0')) {
    return bad("bad shard");
  }
  uint32_t v = 0;
  for (char c : shard) {
    if (!std::isdigit(static_cast<unsigned char>(c))) return bad("bad shard");
    v = v * 10 + static_cast<uint32_t>(c - '0');
  }
  t.shard = v;
  if (auto st = validate_node_name(parts[5]); !st) return bad(st.error().message());
  t.node = std::string(parts[5]);
  if (parts[6] == "up")
    t.direction = Direction::kUp;
  else if (parts[6] == "down")
    t.direction = Direction::kDown;
  else
    return bad("direction must be up or down");
  if (!known_kind(t.direction, parts[7]))
    return bad("unknown kind '" + std::string(parts[7]) + "'");
  t.kind = std::string(parts[7]);
  return t;
}

bool topic_matches(std::string_view filter, std::string_view topic) {
  auto f = split(filter, '/');
  auto t = split(topic, '/');
  for (size_t i = 0; i < f.size(); ++i) {
    if (f[i] == "#") return true;
    if (i >= t.size()) return false;
    if (f[i] != "+" && f[i] != t[i]) return false;
  }
  return f.size() == t.size();
}

}  // namespace flotilla::sync
