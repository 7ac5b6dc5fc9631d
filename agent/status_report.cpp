#include "agent/status_report.hpp"

#include <cstdio>
#include <set>

#include "agent/store.hpp"
#include "common/fs.hpp"

namespace flotilla::agent {
namespace {

std::string short_phase(v1::Phase phase) {
  std::string name = v1::Phase_Name(phase);
  return name.rfind("PHASE_", 0) == 0 ? name.substr(6) : name;
}

std::string row(const char* fmt, const std::string& a, const std::string& b, const std::string& c,
                const std::string& d, const std::string& e, const std::string& f) {
  char buf[2048];
  std::snprintf(buf, sizeof(buf), fmt, a.c_str(), b.c_str(), c.c_str(), d.c_str(), e.c_str(),
                f.c_str());
  return buf;
}

}  // namespace

std::string store_path(const std::string& data_dir) { return data_dir + "/agent.db"; }

Status print_status(const std::string& data_dir, std::ostream& out) {
  const std::string path = store_path(data_dir);
  if (!fs::exists(path)) {
    return Error("Failed to read agent state '" + path + "': no such file (is --data right?)");
  }
  auto store = Store::open(path, "");
  if (!store) return store.error();
  auto desired = (*store)->load_desired();
  if (!desired) return desired.error();
  auto instances = (*store)->load_instances();
  if (!instances) return instances.error();
  auto outbox = (*store)->outbox_statuses();
  if (!outbox) return outbox.error();
  auto events = (*store)->outbox_events();
  if (!events) return events.error();
  auto twins = (*store)->load_twins();
  if (!twins) return twins.error();
  auto unsent_twins = (*store)->outbox_twins();
  if (!unsent_twins) return unsent_twins.error();
  const Meta& meta = (*store)->meta();

  out << "node:              " << meta.node << "\n"
      << "desired revision:  " << meta.desired_revision << "\n"
      << "status seq:        " << meta.status_seq << "\n"
      << "outbox:            " << outbox->size() << " status, " << events->size()
      << " events unsent (" << meta.dropped_events << " events dropped)\n\n";

  const char* wfmt = "%-24s %-10s %-14s %-10s %-8s %s\n";
  out << "WORKLOADS (" << desired->size() << ")\n"
      << row(wfmt, "NAME", "TYPE", "RESTART", "GENERATION", "", "SPEC-HASH");
  for (const auto& [name, spec] : *desired) {
    std::string policy = v1::RestartPolicy_Name(spec.restart_policy());
    if (policy.rfind("RESTART_", 0) == 0) policy = policy.substr(8);
    out << row(wfmt, name, spec.type(), policy, std::to_string(spec.generation()), "",
               spec.spec_hash());
  }
  const char* ifmt = "%-28s %-12s %-8s %-9s %-5s %s\n";
  out << "\nINSTANCES (" << instances->size() << ")\n"
      << row(ifmt, "INSTANCE", "PHASE", "PID", "RESTARTS", "EXIT", "MESSAGE");
  for (const auto& rec : *instances) {
    out << row(ifmt, rec.instance_id, short_phase(rec.phase),
               rec.pid != 0 ? std::to_string(rec.pid) : "-", std::to_string(rec.restarts),
               std::to_string(rec.exit_code), rec.message);
  }
  std::set<std::string> unsent;
  for (const auto& row : *unsent_twins) unsent.insert(row.device);
  const char* tfmt = "%-24s %-8s %-9s %-9s %-7s %s\n";
  out << "\nDEVICE TWINS (" << twins->size() << ")\n"
      << row(tfmt, "DEVICE", "DESIRED", "REPORTED", "OBSERVED", "UNSENT", "DELTA");
  for (const auto& [device, t] : *twins) {
    std::string delta = twin::canonical(t.delta());
    if (delta.size() > 60) delta = delta.substr(0, 57) + "...";
    out << row(tfmt, device, std::to_string(t.desired_version()),
               std::to_string(t.reported_version()), std::to_string(t.observed_desired()),
               unsent.count(device) != 0 ? "yes" : "no", delta);
  }
  return Ok();
}

}  // namespace flotilla::agent
