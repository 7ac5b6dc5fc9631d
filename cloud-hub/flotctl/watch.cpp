#include "cloud-hub/flotctl/watch.hpp"

#include <chrono>
#include <map>
#include <ostream>
#include <thread>
#include <vector>

#include "cloud-hub/flotctl/printers.hpp"

namespace flotilla::flotctl {
namespace {

std::string name_of(const std::string& kind, const json& object) {
  if (!object.is_object()) return "";
  if (kind != "workloads") return object.value("name", "");  // nodes, devices
  const json& meta = object.contains("metadata") ? object["metadata"] : json();
  return meta.is_object() ? meta.value("name", "") : "";
}

class Watcher {
 public:
  Watcher(Client& client, const WatchRequest& req, std::ostream& out, std::ostream& err)
      : client_(client), req_(req), out_(out), err_(err) {}

  int run() {
    if (auto listed = list(true); !listed) {
      err_ << "error: " << listed.error().message() << "\n";
      return 1;
    }
    bool warned = false;  // about the outage going on: once
    while (!interrupted()) {
      bool relist = false;
      std::string fatal;
      SseParser parser;
      auto end = client_.stream(
          path(),
          [&](const std::string& chunk) {
            parser.feed(chunk, [&](const SseParser::Message& m) {
              warned = false;
              handle(m, relist, fatal);
            });
            return !relist && fatal.empty();
          },
          req_.interrupted);
      if (interrupted()) break;
      if (!fatal.empty()) {
        err_ << "error: " << fatal << "\n";
        return 1;
      }
      if (relist) {
        if (auto listed = list(false); !listed) {
          warn(warned, listed.error().message());
          pause();
        }
        continue;
      }
      if (end && end->status != 0 && end->status != 200 && end->status < 500) {
        err_ << "error: " << hub_error({end->status, end->body}) << "\n";
        return 1;
      }
      if (!end) {
        warn(warned, end.error().message());
      } else if (end->status != 200) {
        warn(warned, hub_error({end->status, end->body}));
      }
      // Dropped, refused for now, or ended by a hub that is stopping: again from the last id.
      pause();
    }
    return 0;
  }

 private:
  bool interrupted() const { return req_.interrupted && req_.interrupted(); }
  int64_t now() const { return req_.now_ms ? req_.now_ms() : 0; }

  void warn(bool& warned, const std::string& why) {
    if (!warned) err_ << "warning: lost the watch: " << why << "; reconnecting\n" << std::flush;
    warned = true;
  }

  // Waits retry_ms before reconnecting, unless interrupted first.
  void pause() {
    const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(req_.retry_ms);
    while (!interrupted() && std::chrono::steady_clock::now() < until) {
      std::this_thread::sleep_for(std::chrono::milliseconds(std::min<int64_t>(req_.retry_ms, 50)));
    }
  }

  std::string path() const {
    std::string p = "/api/v1/" + req_.kind;
    if (req_.name) p += "/" + url_escape(*req_.name);
    p += "?watch=true&resourceVersion=" + url_escape(version_);
    if (!req_.selector.empty()) p += "&labelSelector=" + url_escape(req_.selector);
    return p;
  }

  // Lists and prints: the first time all of it, later (after a 410) what changed meanwhile.
  Status list(bool first) {
    std::string version;
    json items = json::array();
    if (req_.name) {
      // The list's version first, then the object: a change in between comes again on the watch.
      auto versioned = client_.request_json("GET", "/api/v1/" + req_.kind + "?limit=1");
      if (!versioned) return versioned.error();
      version = versioned->value("resourceVersion", "");
      auto res = client_.request("GET", "/api/v1/" + req_.kind + "/" + url_escape(*req_.name));
      if (!res) return res.error();
      if (res->status == 404 && first) {
        return Error(req_.kind.substr(0, req_.kind.size() - 1) + " '" + *req_.name + "' not found");
      }
      if (res->status != 200 && res->status != 404) return Error(hub_error(*res));
      if (res->status == 200) items.push_back(json::parse(res->body, nullptr, false));
    } else {
      std::string p = "/api/v1/" + req_.kind;
      if (!req_.selector.empty()) p += "?labelSelector=" + url_escape(req_.selector);
      auto listed = client_.request_json("GET", p);
      if (!listed) return listed.error();
      version = listed->value("resourceVersion", "");
      if (listed->contains("items")) items = (*listed)["items"];
    }
    if (version.empty()) return Error("the hub sent no resourceVersion: it cannot be watched");
    version_ = version;
    if (first) return print_first(items);
    std::map<std::string, json> fresh;
    for (const auto& item : items) fresh[name_of(req_.kind, item)] = item;
    for (const auto& [name, item] : fresh) {
      auto it = last_.find(name);
      if (it == last_.end()) {
        print("ADDED", item);
      } else if (it->second != item.dump()) {
        print("MODIFIED", item);
      }
    }
    std::vector<std::string> gone;
    for (const auto& [name, dump] : last_) {
      if (fresh.count(name) == 0) gone.push_back(name);
    }
    for (const auto& name : gone) print("DELETED", json::parse(last_[name]));
    return Ok();
  }

  Status print_first(const json& items) {
    if (req_.output.empty()) {
      std::vector<std::vector<std::string>> rows = {table_header(req_.kind)};
      for (const auto& item : items) rows.push_back(table_row(req_.kind, item, now()));
      if (req_.watch_events) {
        for (size_t i = 0; i < rows.size(); ++i) {
          rows[i].insert(rows[i].begin(), i == 0 ? "EVENT" : "ADDED");
        }
      }
      widths_ = column_widths(rows);
      out_ << render_row(rows[0], widths_);
      for (size_t i = 0; i < items.size(); ++i) {
        const std::string line = render_row(rows[i + 1], widths_);
        out_ << line;
        const std::string name = name_of(req_.kind, items[i]);
        last_[name] = items[i].dump();
        printed_[name] = line;
      }
      out_ << std::flush;
      return Ok();
    }
    for (const auto& item : items) print("ADDED", item);
    return Ok();
  }

  // Prints one change, unless it would print the same as the object's last line or document (a
  // change to a field not shown, or one the first list already had).
  void print(const std::string& type, const json& object) {
    std::string text;
    if (req_.output.empty()) {
      std::vector<std::string> row = table_row(req_.kind, object, now());
      if (req_.watch_events) row.insert(row.begin(), type);
      text = render_row(row, widths_);
    } else {
      json shown = req_.watch_events ? json{{"type", type}, {"object", object}} : object;
      text = req_.output == "json" ? shown.dump(2) + "\n" : "---\n" + to_yaml(shown);
    }
    const std::string name = name_of(req_.kind, object);
    if (type == "DELETED") {
      last_.erase(name);
      printed_.erase(name);
    } else {
      last_[name] = object.dump();
      auto it = printed_.find(name);
      if (it != printed_.end() && it->second == text) return;
      printed_[name] = text;
    }
    out_ << text << std::flush;
  }

  void handle(const SseParser::Message& m, bool& relist, std::string& fatal) {
    if (m.event == "ERROR") {
      auto data = json::parse(m.data, nullptr, false);
      const json status = data.is_object() ? data.value("object", json::object()) : json::object();
      if (status.is_object() && status.value("code", 0) == 410) {
        relist = true;  // that version is no longer held: list again
      } else {
        fatal = "the hub ended the watch: " +
                (status.is_object() ? status.value("message", m.data) : m.data);
      }
      return;
    }
    if (m.event == "ADDED" || m.event == "MODIFIED" || m.event == "DELETED") {
      auto data = json::parse(m.data, nullptr, false);
      if (data.is_object() && data.contains("object")) print(m.event, data["object"]);
    }
    if (!m.id.empty()) version_ = m.id;
  }

  Client& client_;
  const WatchRequest& req_;
  std::ostream& out_;
  std::ostream& err_;
  std::string version_;                         // resume after this
  std::vector<size_t> widths_;                  // of the first table
  std::map<std::string, std::string> last_;     // name -> the object last seen (JSON)
  std::map<std::string, std::string> printed_;  // name -> what was last printed for it
};

}  // namespace

void SseParser::feed(const std::string& chunk,
                     const std::function<void(const Message&)>& on_message) {
  for (char c : chunk) {
    if (c != '\n') {
      line_ += c;
      continue;
    }
    if (!line_.empty() && line_.back() == '\r') line_.pop_back();
    if (line_.empty()) {
      if (any_) on_message(current_);
      current_ = Message();
      any_ = false;
    } else if (line_[0] != ':') {
      const size_t colon = line_.find(':');
      const std::string field = line_.substr(0, colon);
      std::string value = colon == std::string::npos ? "" : line_.substr(colon + 1);
      if (!value.empty() && value[0] == ' ') value.erase(0, 1);
      if (field == "event") {
        current_.event = value;
        any_ = true;
      } else if (field == "id") {
        current_.id = value;
        any_ = true;
      } else if (field == "data") {
        if (!current_.data.empty()) current_.data += "\n";
        current_.data += value;
        any_ = true;
      }
    }
    line_.clear();
  }
}

int watch(Client& client, const WatchRequest& request, std::ostream& out, std::ostream& err) {
  return Watcher(client, request, out, err).run();
}

}  // namespace flotilla::flotctl
