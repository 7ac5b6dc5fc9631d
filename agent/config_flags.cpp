#include "agent/config_flags.hpp"

#include <sys/stat.h>

#include "common/fs.hpp"
#include "sync/topics.hpp"
#include "sync/transport.hpp"

namespace flotilla::agent {
namespace {

// "a, b,,c" -> {"a", "b", "c"}
std::vector<std::string> split_list(const std::string& text) {
  std::vector<std::string> out;
  std::string item;
  for (char ch : text + ",") {
    if (ch == ',') {
      if (!item.empty()) out.push_back(item);
      item.clear();
    } else if (ch != ' ') {
      item += ch;
    }
  }
  return out;
}

// "k=v:NoSchedule,k2:NoExecute" -> taints; keys and values follow the label rules.
Expected<std::vector<NodeTaint>> parse_taints(const std::string& text) {
  std::vector<NodeTaint> out;
  for (const auto& item : split_list(text)) {
    auto colon = item.rfind(':');
    if (colon == std::string::npos) {
      return Error("taint '" + item + "' is not of the form key=value:Effect");
    }
    NodeTaint t;
    t.effect = item.substr(colon + 1);
    if (t.effect != "NoSchedule" && t.effect != "NoExecute") {
      return Error("taint '" + item + "': effect must be NoSchedule or NoExecute, got '" +
                   t.effect + "'");
    }
    std::string kv = item.substr(0, colon);
    auto eq = kv.find('=');
    t.key = kv.substr(0, eq);
    if (eq != std::string::npos) t.value = kv.substr(eq + 1);
    // The label rules for the key, and for the value when there is one.
    std::string as_label = t.key + "=" + (t.value.empty() ? "x" : t.value);
    if (auto l = parse_labels(as_label); !l)
      return Error("taint '" + item + "': " + l.error().message());
    for (const auto& other : out) {
      if (other.key == t.key && other.effect == t.effect) {
        return Error("taint '" + item + "': key '" + t.key + "' with effect " + t.effect +
                     " given twice");
      }
    }
    out.push_back(t);
  }
  return out;
}

Status load_ota_config(const Flags& flags, OtaConfig& ota) {
  ota.public_key_file = flags.get("ota-public-key");
  if (!ota.public_key_file.empty()) {
    auto pem = fs::read_file(ota.public_key_file);
    if (!pem) {
      return Error("invalid --ota-public-key '" + ota.public_key_file +
                   "': " + pem.error().message());
    }
    if (pem->find("-----BEGIN PUBLIC KEY-----") == std::string::npos) {
      return Error("invalid --ota-public-key '" + ota.public_key_file +
                   "': not a PEM public key (want -----BEGIN PUBLIC KEY-----)");
    }
    ota.public_key_pem = std::move(*pem);
  }
  ota.image_slots_dir = flags.get("ota-image-slots");
  if (!ota.image_slots_dir.empty()) {
    ota.image_slots_dir = fs::absolute_path(ota.image_slots_dir);
    struct stat st {};
    if (::stat(ota.image_slots_dir.c_str(), &st) == 0 && !S_ISDIR(st.st_mode)) {
      return Error("invalid --ota-image-slots '" + ota.image_slots_dir + "': not a folder");
    }
  }
  ota.switch_command = flags.get("ota-switch-command");
  ota.health_command = flags.get("ota-health-command");
  auto timeout = flags.get_int("ota-health-timeout", 1, 86'400);
  if (!timeout) return timeout.error();
  ota.health_timeout = Millis(*timeout * 1000);
  return Ok();
}

}  // namespace

Flags make_agent_flags() {
  Flags flags(
      "flotilla-agent",
      "Runs the Flotilla agent on an edge node: keeps the node's desired workloads\n"
      "running from its local SQLite cache (also while offline) and syncs desired state\n"
      "and status with the hub over MQTT.\n"
      "\n"
      "On SIGTERM or SIGINT the agent exits cleanly WITHOUT stopping its workloads: they\n"
      "keep running (edge autonomy) and the next agent start adopts them.\n"
      "\n"
      "Local verb: flotilla-agent status --data DIR  (cached desired state, works offline)");
  flags.add("node", "this node's name (1-63 chars of [a-z0-9.-_])", "", true);
  flags.add("mqtt", "MQTT broker URI, e.g. tcp://127.0.0.1:1883 or ssl://broker:8883", "", true);
  flags.add("mqtt-ca", "PEM file of the fleet CA that signed the broker's certificate (ssl://)");
  flags.add("mqtt-cert",
            "PEM file of this node's client certificate (CN = node name; flotctl pki issue); "
            "re-read at each reconnect and looked at every minute, so a renewed file is picked "
            "up without a restart");
  flags.add("mqtt-key", "PEM file of the client certificate's private key");
  flags.add("mqtt-cert-check-seconds",
            "while connected, how often to look whether --mqtt-cert was renewed (then the agent "
            "reconnects with it; workloads are not touched)",
            "60");
  flags.add("hub-public-key",
            "PEM file of the hub's Ed25519 signing key (one or more PUBLIC KEY blocks): every "
            "message from the hub must be signed by it, or it is dropped and counted "
            "(docs/security.md); keys rotated by the hub are taken and remembered in agent.db");
  flags.add("data", "folder for agent.db and the instances' runtime state", "", true);
  flags.add("device-mqtt",
            "local MQTT broker of the device bridge (device twins on flotilla/local/devices/...), "
            "e.g. tcp://127.0.0.1:1883; empty: no bridge");
  flags.add("labels", "node labels, k=v,k2=v2");
  flags.add("taints",
            "node taints, key=value:Effect,... (Effect: NoSchedule or NoExecute; the value may be "
            "left out); only workloads that tolerate them run here");
  flags.add("shards", "shard count shared with the hub", "16");
  flags.add("heartbeat-ms", "heartbeat period in milliseconds", "5000");
  flags.add("log-level", "trace|debug|info|warn|error|off", "info");
  flags.add("cpu-millis", "CPU capacity to report (0: 1000 x online CPUs)", "0");
  flags.add("memory-bytes", "memory capacity to report (0: MemTotal)", "0");
  flags.add("restart-backoff-ms", "first restart delay after a crash (doubles per crash)", "1000");
  flags.add("restart-backoff-max-ms", "longest restart delay", "60000");
  flags.add("termination-grace-ms", "SIGTERM -> SIGKILL delay unless the spec sets one", "10000");
  flags.add("runtimes",
            "runtimes to offer, e.g. process,container,vm (default: those whose tools are "
            "installed: crun/runc for container, qemu-system and qemu-img for vm)");
  flags.add("insecure-registries", "registries (host:port,...) to pull images from over http");
  flags.add("image-budget-mb", "disk for container images not in use, MiB", "10240");
  flags.add("vm-accel", "auto|kvm|tcg: how VMs run (auto: KVM when usable)", "auto");
  flags.add("ota-public-key",
            "PEM file of the Ed25519 public key OTA manifests must be signed with; without it "
            "every update fails. Agent updates: run the agent as "
            "DATA/ota/agent/active/flotilla-agent (e.g. systemd ExecStart)");
  flags.add("ota-image-slots",
            "folder of the A/B image slots (slot-a, slot-b, and the `active` symlink, created "
            "when missing); empty: no image updates");
  flags.add("ota-switch-command",
            "shell command run after the image slot pointer moved (e.g. set the bootloader "
            "and reboot); empty: none");
  flags.add("ota-health-command",
            "shell command run after an update reconnected to the hub; exit 0 = healthy, else "
            "the update rolls back; empty: none");
  flags.add("ota-health-timeout",
            "seconds an update has after the switch to reconnect to the hub (and for the health "
            "command) before it rolls back",
            "60");
  return flags;
}

Flags make_status_flags() {
  Flags flags(
      "flotilla-agent status",
      "Prints the desired workloads, instances and device twins cached in the agent's\n"
      "SQLite store. Reads local state only; works while offline and while the agent runs.");
  flags.add("data", "the agent's --data folder", "", true);
  return flags;
}

Expected<AgentConfig> config_from_flags(const Flags& flags) {
  AgentConfig c;
  c.node = flags.get("node");
  if (auto st = sync::validate_node_name(c.node); !st) {
    return Error("invalid --node '" + c.node + "': " + st.error().message());
  }
  c.mqtt_uri = flags.get("mqtt");
  auto scheme = c.mqtt_uri.find("://");
  if (scheme == std::string::npos || scheme == 0 || scheme + 3 >= c.mqtt_uri.size()) {
    return Error("invalid --mqtt '" + c.mqtt_uri + "': want tcp://HOST:PORT");
  }
  c.mqtt_ca_file = flags.get("mqtt-ca");
  c.mqtt_cert_file = flags.get("mqtt-cert");
  c.mqtt_key_file = flags.get("mqtt-key");
  auto cert_check = flags.get_int("mqtt-cert-check-seconds", 1, 86'400);
  if (!cert_check) return cert_check.error();
  c.mqtt_cert_check = std::chrono::seconds(*cert_check);
  {
    sync::TransportOptions tls;
    tls.server_uri = c.mqtt_uri;
    tls.tls_ca_file = c.mqtt_ca_file;
    tls.tls_cert_file = c.mqtt_cert_file;
    tls.tls_key_file = c.mqtt_key_file;
    if (auto st = sync::validate_tls_options(tls); !st) return st.error();
  }
  c.hub_public_key_file = flags.get("hub-public-key");
  if (!c.hub_public_key_file.empty()) {
    auto pem = fs::read_file(c.hub_public_key_file);
    if (!pem) return Error("invalid --hub-public-key: " + pem.error().message());
    auto keys = ed25519::PublicKey::all_from_pem(*pem);
    if (!keys) {
      return Error("invalid --hub-public-key '" + c.hub_public_key_file +
                   "': " + keys.error().message());
    }
    c.hub_public_keys = std::move(*keys);
  }
  c.device_mqtt_uri = flags.get("device-mqtt");
  if (!c.device_mqtt_uri.empty()) {
    auto at = c.device_mqtt_uri.find("://");
    if (at == std::string::npos || at == 0 || at + 3 >= c.device_mqtt_uri.size()) {
      return Error("invalid --device-mqtt '" + c.device_mqtt_uri + "': want tcp://HOST:PORT");
    }
  }
  c.data_dir = flags.get("data");
  if (c.data_dir.empty()) return Error("invalid --data: empty path");
  auto labels = parse_labels(flags.get("labels"));
  if (!labels) return Error("invalid --labels: " + labels.error().message());
  c.sync.labels = std::move(*labels);
  auto taints = parse_taints(flags.get("taints"));
  if (!taints) return Error("invalid --taints: " + taints.error().message());
  c.sync.taints = std::move(*taints);

  auto shards = flags.get_int("shards", 1, 65536);
  auto heartbeat = flags.get_int("heartbeat-ms", 100, 3'600'000);
  auto cpu = flags.get_int("cpu-millis", 0, int64_t{1} << 40);
  auto memory = flags.get_int("memory-bytes", 0, int64_t{1} << 60);
  auto backoff = flags.get_int("restart-backoff-ms", 1, 3'600'000);
  auto backoff_max = flags.get_int("restart-backoff-max-ms", 1, 86'400'000);
  auto grace = flags.get_int("termination-grace-ms", 0, 3'600'000);
  for (const auto* v : {&shards, &heartbeat, &cpu, &memory, &backoff, &backoff_max, &grace}) {
    if (!*v) return v->error();
  }
  if (*backoff_max < *backoff) {
    return Error("flag '--restart-backoff-max-ms' must be at least '--restart-backoff-ms'");
  }
  c.sync.shards = static_cast<uint32_t>(*shards);
  c.sync.heartbeat = Millis(*heartbeat);
  c.sync.cpu_millis = *cpu;
  c.sync.memory_bytes = *memory;
  c.reconciler.backoff_base = Millis(*backoff);
  c.reconciler.backoff_max = Millis(*backoff_max);
  c.reconciler.default_grace = Millis(*grace);

  auto budget = flags.get_int("image-budget-mb", 0, int64_t{1} << 30);
  if (!budget) return budget.error();
  c.drivers.image_budget_bytes = static_cast<uint64_t>(*budget) << 20;
  for (const auto& item : split_list(flags.get("runtimes"))) {
    if (item != "process" && item != "container" && item != "vm") {
      return Error("invalid --runtimes: unknown runtime '" + item +
                   "' (want process, container, vm)");
    }
    c.drivers.wanted.insert(item);
  }
  if (!c.drivers.wanted.empty()) c.drivers.wanted.insert("process");
  for (const auto& item : split_list(flags.get("insecure-registries"))) {
    c.drivers.insecure_registries.insert(item);
  }
  c.drivers.vm_accel = flags.get("vm-accel");
  if (c.drivers.vm_accel != "auto" && c.drivers.vm_accel != "kvm" && c.drivers.vm_accel != "tcg") {
    return Error("invalid --vm-accel '" + c.drivers.vm_accel + "': want auto, kvm or tcg");
  }
  if (auto st = load_ota_config(flags, c.ota); !st) return st.error();
  return c;
}

}  // namespace flotilla::agent
