// Writes the seed corpus of fuzz_agent_messages and fuzz_hub_messages: real protocol messages,
// valid and near-valid, encoded in the targets' input grammar (fuzz_inputs.hpp).
//
//   cmake --build build --target fuzz_make_seeds && build/test/fuzz/fuzz_make_seeds
//   test/fuzz/corpus
//
// The topic and manifest seeds are plain text files, written by hand.
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "sync/codec.hpp"
#include "sync/flotilla.pb.h"
#include "sync/topics.hpp"
#include "test/fuzz/fuzz_inputs.hpp"

namespace flotilla::fuzz {
namespace {

// The inverse of FuzzedDataProvider for what the targets consume: numbers are read from the end
// of the input (most significant byte first), strings from the front.
class SeedWriter {
 public:
  template <typename T>
  SeedWriter& num(T value, T min, T max) {
    const uint64_t range = static_cast<uint64_t>(max) - static_cast<uint64_t>(min);
    const uint64_t v = static_cast<uint64_t>(value) - static_cast<uint64_t>(min);
    size_t bytes = 0;
    while (bytes < sizeof(T) && (range >> (8 * bytes)) > 0) ++bytes;
    for (size_t i = bytes; i > 0; --i)
      back_.push_back(static_cast<char>((v >> (8 * (i - 1))) & 0xff));
    return *this;
  }
  SeedWriter& flag(bool b) { return num<uint8_t>(b ? 1 : 0, 0, 255); }
  SeedWriter& str(const std::string& s) {
    for (char c : s) front_ += c == '\\' ? std::string("\\\\") : std::string(1, c);
    front_ += "\\.";  // a backslash and any other byte end the string
    return *this;
  }
  // A pool entry by index (the free-string slot is pool.size()).
  SeedWriter& pick(size_t index, size_t pool_size) { return num<size_t>(index, 0, pool_size); }
  SeedWriter& agent_op(AgentOp op) {
    return num<uint8_t>(static_cast<uint8_t>(op), 0, kAgentOpLast);
  }
  SeedWriter& hub_op(HubOp op) { return num<uint8_t>(static_cast<uint8_t>(op), 0, kHubOpLast); }

  std::string bytes() const { return front_ + std::string(back_.rbegin(), back_.rend()); }

 private:
  std::string front_;
  std::string back_;  // in the order the target consumes it
};

v1::WorkloadSpec spec(const std::string& name, const std::string& hash) {
  v1::WorkloadSpec s;
  s.set_name(name);
  s.set_type("process");
  s.set_spec_hash(hash);
  s.set_generation(1);
  s.mutable_process()->add_command("/bin/sleep");
  s.mutable_process()->add_command("1000");
  (*s.mutable_process()->mutable_env())["MODE"] = "fast";
  return s;
}

v1::DesiredState desired(const std::string& node, bool snapshot, uint64_t from, uint64_t to,
                         const std::vector<v1::WorkloadSpec>& upserts,
                         const std::vector<std::string>& deletes = {}) {
  v1::DesiredState d;
  d.set_node(node);
  d.set_snapshot(snapshot);
  d.set_from_revision(from);
  d.set_to_revision(to);
  for (const auto& s : upserts) *d.add_upserts() = s;
  for (const auto& n : deletes) d.add_deletes(n);
  return d;
}

// build_desired()'s reads for: our node, snapshot, from = revision, to = revision + 1, one
// process spec "web" (/bin/sleep 1000, restart Always, 100m), no deletes.
void built_snapshot(SeedWriter& w) {
  w.num<uint8_t>(1, 0, 15).flag(true);
  w.num<uint8_t>(0, 0, 3).num<uint64_t>(0, 0, 3);
  w.num<uint8_t>(0, 0, 3).num<uint64_t>(1, 0, 3);
  w.num<int>(1, 0, 4);
  w.pick(0, kWorkloadNames.size()).pick(0, kWorkloadTypes.size()).pick(0, kSpecHashes.size());
  w.num<int64_t>(1, 0, 3).num<int>(0, -1, 3).flag(false);
  w.num<int>(2, 0, 3).pick(0, kArgs.size()).pick(1, kArgs.size());
  w.num<int>(0, 0, 2).flag(false).num<int64_t>(100, -1, 4000);
  w.num<int>(0, 0, 3);
}

v1::DeviceDesired device_desired(const std::string& device, const std::string& doc,
                                 uint64_t version, bool removed = false) {
  v1::DeviceDesired d;
  d.set_device(device);
  d.set_desired(doc);
  d.set_desired_version(version);
  d.set_removed(removed);
  return d;
}

// A near_revision() read giving 1 + `plus` (0..3).
void twin_version(SeedWriter& w, uint64_t plus) {
  w.num<uint8_t>(0, 0, 3).num<uint64_t>(plus, 0, 3);
}

// A device's step on the local broker: device and leaf by index, then a built report of
// kTwinDocs[doc] observing desired version 1, or `raw` as the payload.
void local(SeedWriter& w, size_t device, size_t leaf, std::optional<size_t> doc,
           const std::string& raw = "") {
  w.agent_op(AgentOp::kLocalDevice).pick(device, kDevices.size()).pick(leaf, kLocalLeaves.size());
  w.flag(!doc.has_value());
  if (doc) {
    w.pick(*doc, kTwinDocs.size());
    twin_version(w, 0);
  } else {
    w.str(raw);
  }
}

std::map<std::string, std::string> agent_seeds() {
  const std::string me = "edge-1";
  std::map<std::string, std::string> out;
  auto raw = [](SeedWriter& w, const google::protobuf::MessageLite& m) {
    w.agent_op(AgentOp::kRawDesired).str(m.SerializeAsString());
  };
  {
    SeedWriter w;
    raw(w, desired(me, true, 0, 1, {spec("web", "h1"), spec("db", "h1")}));
    raw(w, desired(me, false, 1, 2, {spec("web", "h2")}, {"db"}));
    w.agent_op(AgentOp::kAdvanceClock).num<int64_t>(5000, 0, 20000);
    w.agent_op(AgentOp::kCrashInstance).num<int>(2, 0, 2).num<size_t>(0, 0, 0);
    out["seed-snapshot_delta_crash"] = w.bytes();
  }
  {
    SeedWriter w;
    raw(w, desired(me, true, 0, 3, {spec("web", "h1")}));
    raw(w, desired(me, true, 0, 3, {spec("web", "h1")}));
    raw(w, desired(me, false, 5, 6, {spec("db", "h1")}));
    out["seed-duplicate_and_gap"] = w.bytes();
  }
  {
    SeedWriter w;
    raw(w, desired("edge-2", true, 0, 1, {spec("web", "h1")}));
    auto bad = spec("web", "h1");
    bad.mutable_process()->clear_command();
    raw(w, desired(me, true, 0, 1, {bad}));
    raw(w, desired(me, false, 0, 1, {spec("web", "h1")}, {"web"}));
    raw(w, desired(me, false, 2, 1, {}));
    std::string truncated = desired(me, true, 0, 1, {spec("web", "h1")}).SerializeAsString();
    w.agent_op(AgentOp::kRawDesired).str(truncated.substr(0, truncated.size() / 2));
    out["seed-rejected_desired"] = w.bytes();
  }
  {
    SeedWriter w;
    v1::Resync resync;
    resync.set_reason("status records missing");
    w.agent_op(AgentOp::kRawResync).str(resync.SerializeAsString());
    w.agent_op(AgentOp::kRawResync).str("\x0a\xff\xff");
    w.agent_op(AgentOp::kOtherKind).pick(0, kAgentOtherKinds.size()).str("");
    w.agent_op(AgentOp::kOtherKind).pick(kAgentOtherKinds.size(), kAgentOtherKinds.size());
    w.str("+").str("x");
    out["seed-resync_and_other_kinds"] = w.bytes();
  }
  {
    SeedWriter w;
    v1::HubOnline online;
    online.set_epoch("00000000deadbeef");
    online.set_protocol_version(sync::kProtocolVersion);
    w.agent_op(AgentOp::kHubOnline).str(online.SerializeAsString());
    w.agent_op(AgentOp::kHubOnline).str("\x12");
    w.agent_op(AgentOp::kBrokerToggle);
    raw(w, desired(me, true, 0, 1, {spec("web", "h1")}));
    w.agent_op(AgentOp::kBrokerToggle);
    out["seed-hub_online_and_broker"] = w.bytes();
  }
  {
    // Twins: a full list, a device acting on it and reporting, a report rejected, a get, a
    // newer desired, a stale one and a removal.
    SeedWriter w;
    v1::TwinDesired full;
    full.set_node(me);
    full.set_full(true);
    *full.add_devices() = device_desired("dev-1", R"({"rate":5})", 1);
    *full.add_devices() = device_desired("dev-2", "{}", 2);
    w.agent_op(AgentOp::kRawTwin).str(full.SerializeAsString());
    local(w, 0, 0, 1);  // dev-1 reports {"rate":5}
    local(w, 0, 0, std::nullopt, R"({"reported": 5})");
    local(w, 1, 1, std::nullopt, "");  // dev-2 asks for its twin
    local(w, 2, 0, 2);                 // a device the hub does not know reports
    v1::TwinDesired change;
    change.set_node(me);
    *change.add_devices() = device_desired("dev-1", R"({"rate":null,"mode":"eco"})", 2);
    *change.add_devices() = device_desired("dev-2", R"({"rate":1})", 1);  // stale
    w.agent_op(AgentOp::kRawTwin).str(change.SerializeAsString());
    v1::TwinDesired removal;
    removal.set_node(me);
    *removal.add_devices() = device_desired("dev-2", "", 0, true);
    w.agent_op(AgentOp::kRawTwin).str(removal.SerializeAsString());
    w.agent_op(AgentOp::kAdvanceClock).num<int64_t>(5000, 0, 20000);
    out["seed-twins"] = w.bytes();
  }
  {
    // Twin messages to reject: undecodable, another node's, bad documents and names; then one
    // built from the input (dev-1, {"rate":5}, desired version 2).
    SeedWriter w;
    w.agent_op(AgentOp::kRawTwin).str("\x0a\xff\xff");
    v1::TwinDesired other;
    other.set_node("edge-2");
    *other.add_devices() = device_desired("dev-1", "{}", 1);
    w.agent_op(AgentOp::kRawTwin).str(other.SerializeAsString());
    v1::TwinDesired bad;
    bad.set_node(me);
    *bad.add_devices() = device_desired("dev-1", "[1]", 1);
    *bad.add_devices() = device_desired("Bad/Name", "{}", 1);
    *bad.add_devices() = device_desired("dev-2", R"({"rate":)", 1);
    w.agent_op(AgentOp::kRawTwin).str(bad.SerializeAsString());
    w.agent_op(AgentOp::kBuiltTwin).num<uint8_t>(1, 0, 15).flag(false).flag(false);
    w.num<int>(1, 0, 3).pick(0, kDevices.size()).pick(1, kTwinDocs.size());
    twin_version(w, 1);
    twin_version(w, 0);
    w.num<uint8_t>(1, 0, 3);  // not removed
    out["seed-twin_rejected_and_built"] = w.bytes();
  }
  {
    SeedWriter w;
    w.agent_op(AgentOp::kBuiltDesired);
    built_snapshot(w);
    w.agent_op(AgentOp::kOversizedDesired);
    built_snapshot(w);
    w.num<int>(1, -2, 2);  // one byte over the cap
    w.agent_op(AgentOp::kOversizedDesired);
    built_snapshot(w);
    w.num<int>(0, -2, 2);  // exactly at the cap
    out["seed-built_and_oversized"] = w.bytes();
  }
  return out;
}

v1::Hello hello(const std::string& node) {
  v1::Hello h;
  h.set_node(node);
  h.set_protocol_version(sync::kProtocolVersion);
  h.set_agent_version("0.1.0");
  (*h.mutable_labels())["zone"] = node;
  h.mutable_capacity()->set_cpu_millis(4000);
  h.mutable_capacity()->set_memory_bytes(1 << 30);
  h.set_arch("amd64");
  h.add_runtimes("process");
  h.add_runtimes("container");
  h.set_boot_id("boot-1");
  return h;
}

// A hub step that sends `payload` from node kHubNodes[node] on kind kUpKinds[kind].
void hub_raw(SeedWriter& w, size_t node, size_t kind, TopicForm form, const std::string& payload) {
  w.hub_op(HubOp::kRaw).pick(node, kHubNodes.size()).pick(kind, kUpKinds.size());
  w.num<uint8_t>(static_cast<uint8_t>(form), 0, kTopicFormLast).str(payload);
}

// build_up()'s reads for a Hello of the topic's node with acked_revision 0.
void built_hello(SeedWriter& w) {
  w.num<uint8_t>(static_cast<uint8_t>(UpType::kHello), 0, kUpTypeLast);
  w.num<uint8_t>(1, 0, 15).num<uint32_t>(1, 0, 2).str("0.1.0").flag(false);
  w.num<int64_t>(4000, -1, 8000);
  w.num<int64_t>(1 << 30, std::numeric_limits<int64_t>::min(), std::numeric_limits<int64_t>::max());
  w.pick(0, 2).num<int>(1, 0, 3).pick(0, kWorkloadTypes.size());
  w.num<uint8_t>(0, 0, 3).num<uint64_t>(0, 0, 3).pick(0, 2);
}

std::map<std::string, std::string> hub_seeds() {
  std::map<std::string, std::string> out;
  enum Kind : size_t { kHello, kHeartbeat, kAck, kStatus, kWill, kBogus, kTwin };
  {
    SeedWriter w;
    hub_raw(w, 0, kHello, TopicForm::kCanonical, hello("edge-1").SerializeAsString());
    v1::Heartbeat hb;
    hb.set_node("edge-1");
    hb.set_status_seq(2);
    hb.set_boot_id("boot-1");
    hub_raw(w, 0, kHeartbeat, TopicForm::kCanonical, hb.SerializeAsString());
    v1::Ack ack;
    ack.set_node("edge-1");
    ack.set_revision(1);
    hub_raw(w, 0, kAck, TopicForm::kCanonical, ack.SerializeAsString());
    v1::StatusBatch batch;
    batch.set_node("edge-1");
    batch.set_full(true);
    auto* inst = batch.add_instances();
    inst->set_workload("web");
    inst->set_instance_id("web-1");
    inst->set_phase(v1::PHASE_RUNNING);
    inst->set_seq(1);
    auto* ev = batch.add_events();
    ev->set_object("web/web-1");
    ev->set_reason("Started");
    ev->set_seq(2);
    hub_raw(w, 0, kStatus, TopicForm::kCanonical, batch.SerializeAsString());
    v1::Offline off;
    off.set_node("edge-1");
    off.set_boot_id("boot-1");
    hub_raw(w, 0, kWill, TopicForm::kCanonical, off.SerializeAsString());
    out["seed-session"] = w.bytes();
  }
  {
    SeedWriter w;
    hub_raw(w, 0, kHello, TopicForm::kCanonical, hello("edge-2").SerializeAsString());
    for (size_t kind : {kHello, kHeartbeat, kAck, kStatus, kWill}) {
      hub_raw(w, 1, kind, TopicForm::kCanonical,
              "\x0a\x05"
              "ed");
    }
    hub_raw(w, 1, kBogus, TopicForm::kCanonical, hello("edge-2").SerializeAsString());
    out["seed-mismatch_malformed_bogus"] = w.bytes();
  }
  {
    SeedWriter w;
    const std::string h = hello("edge-3").SerializeAsString();
    hub_raw(w, 2, kHello, TopicForm::kWrongShard, h);
    hub_raw(w, 2, kHello, TopicForm::kDown, h);
    w.hub_op(HubOp::kRaw).pick(2, kHubNodes.size()).pick(kHello, kUpKinds.size());
    w.num<uint8_t>(static_cast<uint8_t>(TopicForm::kFree), 0, kTopicFormLast);
    w.str(sync::up_topic("edge-3", 16, "hello")).str(h);
    out["seed-topics"] = w.bytes();
  }
  {
    SeedWriter w;
    w.hub_op(HubOp::kBuilt).pick(0, kHubNodes.size()).pick(kHello, kUpKinds.size());
    w.num<uint8_t>(0, 0, kTopicFormLast);
    built_hello(w);
    w.hub_op(HubOp::kOversized).pick(0, kHubNodes.size()).pick(kHello, kUpKinds.size());
    w.num<uint8_t>(0, 0, kTopicFormLast);
    built_hello(w);
    w.num<int>(1, -2, 2);
    w.hub_op(HubOp::kAdvanceClock).num<int64_t>(20000, 0, 60000);
    w.hub_op(HubOp::kChangeWorkloads).num<int>(0, 0, 3);
    w.hub_op(HubOp::kChangeWorkloads).num<int>(2, 0, 3);
    w.hub_op(HubOp::kAdvanceClock).num<int64_t>(60000, 0, 60000);
    out["seed-built_oversized_clock_workloads"] = w.bytes();
  }
  {
    // Twins: reports by version (new, stale, another node's device, an unknown one, malformed),
    // REST changes of desired (set, stale ifVersion, delete, create), a report built from the
    // input.
    SeedWriter w;
    hub_raw(w, 0, kHello, TopicForm::kCanonical, hello("edge-1").SerializeAsString());
    auto report = [](const std::string& device, const std::string& doc, uint64_t version) {
      v1::TwinReported r;
      r.set_node("edge-1");
      auto* d = r.add_devices();
      d->set_device(device);
      d->set_reported(doc);
      d->set_reported_version(version);
      d->set_observed_desired(1);
      d->set_desired_version(1);
      return r.SerializeAsString();
    };
    hub_raw(w, 0, kTwin, TopicForm::kCanonical, report("dev-1", R"({"rate":1})", 2));
    hub_raw(w, 0, kTwin, TopicForm::kCanonical, report("dev-1", R"({"rate":0})", 1));
    hub_raw(w, 0, kTwin, TopicForm::kCanonical, report("dev-2", R"({"rate":1})", 5));
    hub_raw(w, 0, kTwin, TopicForm::kCanonical, report("dev-x", "{}", 1));
    hub_raw(w, 0, kTwin, TopicForm::kCanonical, report("dev-1", "[1]", 7));
    hub_raw(w, 0, kTwin, TopicForm::kCanonical,
            "\x0a\x05"
            "ed");
    w.hub_op(HubOp::kChangeDevices).flag(false).num<int>(0, 0, 3).num<int>(2, 0, 3);
    w.hub_op(HubOp::kChangeDevices).flag(false).num<int>(1, 0, 3);
    w.hub_op(HubOp::kChangeDevices).flag(true).num<int>(2, 0, 3);
    w.hub_op(HubOp::kChangeDevices).flag(true).num<int>(3, 0, 3);
    w.hub_op(HubOp::kBuilt).pick(0, kHubNodes.size()).pick(kTwin, kUpKinds.size());
    w.num<uint8_t>(0, 0, kTopicFormLast);
    w.num<uint8_t>(static_cast<uint8_t>(UpType::kTwin), 0, kUpTypeLast).num<uint8_t>(1, 0, 15);
    w.num<int>(1, 0, 3).pick(0, kDevices.size()).pick(1, kTwinDocs.size());
    w.num<uint8_t>(0, 0, 3).num<uint64_t>(3, 0, 3);  // reported version 4
    w.num<uint8_t>(0, 0, 3).num<uint64_t>(0, 0, 3);
    w.num<uint8_t>(0, 0, 3).num<uint64_t>(0, 0, 3);
    w.hub_op(HubOp::kAdvanceClock).num<int64_t>(10000, 0, 60000);
    out["seed-twins"] = w.bytes();
  }
  {
    // Found by fuzz_hub_messages: a Hello claiming revision 2^64-1 wraps the node's revision to 0.
    SeedWriter w;
    hub_raw(w, 0, kHello, TopicForm::kCanonical, hello("edge-1").SerializeAsString());
    v1::Hello claim = hello("edge-1");
    claim.set_acked_revision(std::numeric_limits<uint64_t>::max());
    hub_raw(w, 0, kHello, TopicForm::kCanonical, claim.SerializeAsString());
    out["regress-claimed-revision-overflow"] = w.bytes();
  }
  return out;
}

bool write_all(const std::filesystem::path& dir, const std::map<std::string, std::string>& seeds) {
  std::filesystem::create_directories(dir);
  for (const auto& [name, bytes] : seeds) {
    std::ofstream f(dir / name, std::ios::binary);
    f << bytes;
    if (!f) {
      std::fprintf(stderr, "cannot write %s\n", (dir / name).c_str());
      return false;
    }
  }
  return true;
}

}  // namespace
}  // namespace flotilla::fuzz

int main(int argc, char** argv) {
  using namespace flotilla::fuzz;
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s CORPUS_DIR (test/fuzz/corpus)\n", argv[0]);
    return 2;
  }
  const std::filesystem::path root = argv[1];
  bool ok = write_all(root / "fuzz_agent_messages", agent_seeds()) &&
            write_all(root / "fuzz_hub_messages", hub_seeds());
  return ok ? 0 : 1;
}
