#include "cloud-hub/flotctl/rollout.hpp"

#include <ostream>
#include <sstream>

#include "cloud-hub/flotctl/printers.hpp"

namespace flotilla::flotctl {
namespace {

using json = nlohmann::json;

constexpr int kOk = 0;
constexpr int kFailed = 1;
constexpr int kUsage = 2;

std::string str(const json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return "";
  return it->is_string() ? it->get<std::string>() : it->dump();
}

const json& sub(const json& j, const char* key) {
  static const json kEmpty = json::object();
  auto it = j.find(key);
  return it != j.end() && it->is_object() ? *it : kEmpty;
}

std::string artifact_of(const json& r) {
  const json& a = sub(sub(r, "spec"), "artifact");
  return str(a, "name") + " " + str(a, "version");
}

}  // namespace

std::string rollouts_table(const json& rollouts, int64_t now_ms) {
  std::vector<std::vector<std::string>> rows = {{"NAME", "ARTIFACT", "PHASE", "WAVE", "NODES",
                                                 "SUCCEEDED", "FAILED", "IN-PROGRESS", "PENDING",
                                                 "AGE"}};
  auto items = rollouts.find("items");
  if (items == rollouts.end() || !items->is_array()) return render_table(rows);
  for (const auto& r : *items) {
    const json& st = sub(r, "status");
    const json& c = sub(st, "counts");
    rows.push_back({str(sub(r, "metadata"), "name"), artifact_of(r), str(st, "phase"),
                    str(st, "currentWave") + "/" + str(st, "waves"), str(c, "nodes"),
                    str(c, "succeeded"), str(c, "failed"), str(c, "inProgress"), str(c, "pending"),
                    age(str(sub(r, "metadata"), "creationTimestamp"), now_ms)});
  }
  return render_table(rows);
}

std::string describe_rollout(const json& r, const json& events, int64_t now_ms) {
  const json& st = sub(r, "status");
  const json& c = sub(st, "counts");
  const json& spec = sub(r, "spec");
  std::ostringstream o;
  o << "Name:          " << str(sub(r, "metadata"), "name") << "\n"
    << "Artifact:      " << artifact_of(r) << "\n"
    << "Selector:      " << sub(spec, "selector").dump() << "\n"
    << "Waves:         " << str(spec, "waves") << "\n"
    << "Soak:          " << str(spec, "soakSeconds") << "s\n"
    << "Threshold:     " << sub(spec, "failureThreshold").dump() << "\n"
    << "Phase:         " << str(st, "phase") << "\n";
  if (!str(st, "pausedReason").empty()) o << "Paused reason: " << str(st, "pausedReason") << "\n";
  o << "Wave:          " << str(st, "currentWave") << " of " << str(st, "waves") << "\n";
  if (str(st, "soakRemainingSeconds") != "0" && !str(st, "soakRemainingSeconds").empty()) {
    o << "Soaking:       " << str(st, "soakRemainingSeconds") << "s left\n";
  }
  o << "Nodes:         " << str(c, "nodes") << " (succeeded " << str(c, "succeeded") << ", failed "
    << str(c, "failed") << ", in progress " << str(c, "inProgress") << ", pending "
    << str(c, "pending") << ", aborted " << str(c, "aborted") << ")\n";
  if (str(st, "acceptedFailures") != "0") {
    o << "Accepted:      " << str(st, "acceptedFailures") << " failures before the last resume\n";
  }
  std::vector<std::vector<std::string>> rows = {
      {"NODE", "WAVE", "PHASE", "RESULT", "ATTEMPTS", "UPDATED", "MESSAGE"}};
  auto nodes = st.find("nodes");
  if (nodes != st.end() && nodes->is_array()) {
    for (const auto& n : *nodes) {
      rows.push_back({str(n, "node"), str(n, "wave"), str(n, "phase"), str(n, "result"),
                      str(n, "attempts"), age(str(n, "updated"), now_ms), str(n, "message")});
    }
  }
  o << "\n" << render_table(rows);
  if (!events.is_null()) o << "\nEvents:\n" << events_table(events, now_ms);
  return o.str();
}

int rollout_command(Client& client, const std::vector<std::string>& args, int64_t now_ms,
                    std::ostream& out, std::ostream& err) {
  if (args.size() != 2) {
    err << "flotctl: usage: flotctl rollout status|pause|resume|abort NAME\n";
    return kUsage;
  }
  const std::string& verb = args[0];
  const std::string& name = args[1];
  const std::string path = "/api/v1/rollouts/" + url_escape(name);
  if (verb != "status" && verb != "pause" && verb != "resume" && verb != "abort") {
    err << "flotctl: unknown rollout command '" << verb << "' (want status, pause, resume or "
        << "abort)\n";
    return kUsage;
  }
  auto got = verb == "status" ? client.request_json("GET", path)
                              : client.request_json("POST", path + "/" + verb);
  if (!got) {
    err << "error: " << got.error().message() << "\n";
    return kFailed;
  }
  const json& r = *got;
  if (verb == "status") {
    out << describe_rollout(r, json(), now_ms);
  } else {
    out << "rollout/" << name << " " << str(r, "action") << " (phase "
        << str(sub(r, "status"), "phase") << ")\n";
  }
  return kOk;
}

}  // namespace flotilla::flotctl
