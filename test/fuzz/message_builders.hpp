// Builds well-formed protocol messages from fuzz input, so that the message fuzzers reach the
// logic behind the decoders (apply, duplicate, gap, hello, ack...) and not only parse failures.
// Field values come from small pools (names the other messages also use) or free strings, and
// revisions lie near the receiver's current one or at the extremes.
#pragma once

#include <fuzzer/FuzzedDataProvider.h>
#include <google/protobuf/stubs/logging.h>

#include <cstdint>
#include <cstdlib>
#include <limits>
#include <string>
#include <vector>

#include "sync/codec.hpp"
#include "sync/flotilla.pb.h"
#include "test/fuzz/fuzz_inputs.hpp"

namespace flotilla::fuzz {

// Protobuf logs every invalid UTF-8 string it parses or writes, and fuzz inputs are full of them.
// Kept with FLOTILLA_FUZZ_LOG=1.
inline void quiet_protobuf() {
  if (std::getenv("FLOTILLA_FUZZ_LOG") == nullptr) google::protobuf::SetLogHandler(nullptr);
}

inline std::string pick(FuzzedDataProvider& in, const std::vector<std::string>& pool) {
  size_t i = in.ConsumeIntegralInRange<size_t>(0, pool.size());
  return i < pool.size() ? pool[i] : in.ConsumeRandomLengthString(kMaxFreeString);
}

// A revision near `current`: the next ones, recent ones, or an extreme.
inline uint64_t near_revision(FuzzedDataProvider& in, uint64_t current) {
  constexpr uint64_t kMax = std::numeric_limits<uint64_t>::max();
  switch (in.ConsumeIntegralInRange<uint8_t>(0, 3)) {
    case 0:
      return current + in.ConsumeIntegralInRange<uint64_t>(0, 3);
    case 1:
      return current - std::min(current, in.ConsumeIntegralInRange<uint64_t>(0, 3));
    case 2:
      return kMax - in.ConsumeIntegralInRange<uint64_t>(0, 2);
    default:
      return in.ConsumeIntegral<uint64_t>();
  }
}

inline v1::WorkloadSpec build_spec(FuzzedDataProvider& in) {
  v1::WorkloadSpec spec;
  spec.set_name(pick(in, kWorkloadNames));
  spec.set_type(pick(in, kWorkloadTypes));
  spec.set_spec_hash(pick(in, kSpecHashes));
  spec.set_generation(in.ConsumeIntegralInRange<int64_t>(0, 3));
  spec.set_restart_policy(static_cast<v1::RestartPolicy>(in.ConsumeIntegralInRange<int>(-1, 3)));
  if (in.ConsumeBool()) {
    spec.set_termination_grace_ms(in.ConsumeIntegralInRange<int64_t>(-1000, 100000));
  }
  int args = in.ConsumeIntegralInRange<int>(0, 3);
  for (int i = 0; i < args; ++i) spec.mutable_process()->add_command(pick(in, kArgs));
  int env = in.ConsumeIntegralInRange<int>(0, 2);
  for (int i = 0; i < env; ++i) {
    std::string name = pick(in, kEnvNames);
    (*spec.mutable_process()->mutable_env())[name] = in.ConsumeRandomLengthString(kMaxFreeString);
  }
  if (in.ConsumeBool()) (*spec.mutable_labels())["app"] = pick(in, kWorkloadNames);
  spec.mutable_resources()->set_cpu_millis(in.ConsumeIntegralInRange<int64_t>(-1, 4000));
  return spec;
}

// Mostly addressed to `node`; from/to near `revision`.
inline v1::DesiredState build_desired(FuzzedDataProvider& in, const std::string& node,
                                      uint64_t revision) {
  v1::DesiredState d;
  d.set_node(in.ConsumeIntegralInRange<uint8_t>(0, 15) == 0 ? "edge-2" : node);
  d.set_snapshot(in.ConsumeBool());
  d.set_from_revision(near_revision(in, revision));
  d.set_to_revision(near_revision(in, revision));
  int upserts = in.ConsumeIntegralInRange<int>(0, 4);
  for (int i = 0; i < upserts; ++i) *d.add_upserts() = build_spec(in);
  int deletes = in.ConsumeIntegralInRange<int>(0, 3);
  for (int i = 0; i < deletes; ++i) d.add_deletes(pick(in, kWorkloadNames));
  return d;
}

inline v1::InstanceStatus build_instance(FuzzedDataProvider& in, uint64_t seq_hint) {
  v1::InstanceStatus s;
  s.set_workload(pick(in, kWorkloadNames));
  s.set_instance_id(s.workload() + "-" + std::to_string(in.ConsumeIntegralInRange<int>(0, 2)));
  s.set_phase(static_cast<v1::Phase>(in.ConsumeIntegralInRange<int>(-1, 8)));
  s.set_spec_hash(pick(in, kSpecHashes));
  s.set_restarts(in.ConsumeIntegral<uint32_t>());
  s.set_exit_code(in.ConsumeIntegral<int32_t>());
  s.set_message(in.ConsumeRandomLengthString(kMaxFreeString));
  s.set_seq(near_revision(in, seq_hint));
  s.set_started_unix_ms(in.ConsumeIntegral<int64_t>());
  s.set_removed(in.ConsumeIntegralInRange<uint8_t>(0, 3) == 0);
  return s;
}

// A twin version: small (near what the rigs' twins hold) or an extreme.
inline uint64_t twin_version(FuzzedDataProvider& in) { return near_revision(in, 1); }

// Devices reporting, as an agent would send them for `node`.
inline v1::TwinReported build_twin_reported(FuzzedDataProvider& in, const std::string& node) {
  v1::TwinReported r;
  r.set_node(node);
  const int devices = in.ConsumeIntegralInRange<int>(0, 3);
  for (int i = 0; i < devices; ++i) {
    auto* d = r.add_devices();
    d->set_device(pick(in, kDevices));
    d->set_reported(pick(in, kTwinDocs));
    d->set_reported_version(twin_version(in));
    d->set_observed_desired(twin_version(in));
    d->set_desired_version(twin_version(in));
  }
  return r;
}

// Desired documents for the agent's devices, as the hub sends them to `node`.
inline v1::TwinDesired build_twin_desired(FuzzedDataProvider& in, const std::string& node) {
  v1::TwinDesired t;
  t.set_node(in.ConsumeIntegralInRange<uint8_t>(0, 15) == 0 ? "edge-2" : node);
  t.set_full(in.ConsumeBool());
  if (in.ConsumeBool()) {
    t.set_parts(in.ConsumeIntegralInRange<uint32_t>(0, 3));
    t.set_part(in.ConsumeIntegralInRange<uint32_t>(0, 3));
  }
  const int devices = in.ConsumeIntegralInRange<int>(0, 3);
  for (int i = 0; i < devices; ++i) {
    auto* d = t.add_devices();
    d->set_device(pick(in, kDevices));
    d->set_desired(pick(in, kTwinDocs));
    d->set_desired_version(twin_version(in));
    d->set_reported_version(twin_version(in));
    d->set_removed(in.ConsumeIntegralInRange<uint8_t>(0, 3) == 0);
  }
  return t;
}

// An up message of `type` whose node field is mostly `node`. `revision` and `seq` are the hub's
// current view of that node (for values near it).
inline std::string build_up(FuzzedDataProvider& in, UpType type, const std::string& node,
                            uint64_t revision, uint64_t seq) {
  const std::string who = in.ConsumeIntegralInRange<uint8_t>(0, 15) == 0 ? "edge-9" : node;
  switch (type) {
    case UpType::kHello: {
      v1::Hello h;
      h.set_node(who);
      h.set_protocol_version(in.ConsumeIntegralInRange<uint32_t>(0, 2));
      h.set_agent_version(in.ConsumeRandomLengthString(kMaxFreeString));
      if (in.ConsumeBool()) (*h.mutable_labels())["zone"] = pick(in, kHubNodes);
      h.mutable_capacity()->set_cpu_millis(in.ConsumeIntegralInRange<int64_t>(-1, 8000));
      h.mutable_capacity()->set_memory_bytes(in.ConsumeIntegral<int64_t>());
      h.set_arch(pick(in, {"amd64", "arm64"}));
      int runtimes = in.ConsumeIntegralInRange<int>(0, 3);
      for (int i = 0; i < runtimes; ++i) h.add_runtimes(pick(in, kWorkloadTypes));
      h.set_acked_revision(near_revision(in, revision));
      h.set_boot_id(pick(in, {"boot-1", "boot-2"}));
      return sync::encode(h);
    }
    case UpType::kHeartbeat: {
      v1::Heartbeat hb;
      hb.set_node(who);
      hb.set_acked_revision(near_revision(in, revision));
      hb.set_status_seq(near_revision(in, seq));
      hb.set_instances_running(in.ConsumeIntegral<uint32_t>());
      hb.set_boot_id(pick(in, {"boot-1", "boot-2"}));
      return sync::encode(hb);
    }
    case UpType::kAck: {
      v1::Ack a;
      a.set_node(who);
      a.set_revision(near_revision(in, revision));
      return sync::encode(a);
    }
    case UpType::kStatus: {
      v1::StatusBatch b;
      b.set_node(who);
      int instances = in.ConsumeIntegralInRange<int>(0, 4);
      for (int i = 0; i < instances; ++i) *b.add_instances() = build_instance(in, seq);
      int events = in.ConsumeIntegralInRange<int>(0, 2);
      for (int i = 0; i < events; ++i) {
        auto* e = b.add_events();
        e->set_object(pick(in, kWorkloadNames));
        e->set_reason(in.ConsumeRandomLengthString(kMaxFreeString));
        e->set_message(in.ConsumeRandomLengthString(kMaxFreeString));
        e->set_unix_ms(in.ConsumeIntegral<int64_t>());
        e->set_seq(near_revision(in, seq));
      }
      b.set_full(in.ConsumeBool());
      b.set_dropped_events(in.ConsumeIntegralInRange<uint64_t>(0, 2));
      return sync::encode(b);
    }
    case UpType::kOffline: {
      v1::Offline o;
      o.set_node(who);
      o.set_boot_id(pick(in, {"boot-1", "boot-2", ""}));
      return sync::encode(o);
    }
    case UpType::kTwin:
      return sync::encode(build_twin_reported(in, who));
  }
  return {};
}

// Appends an unknown length-delimited field (number 100) so that the message still decodes but
// is exactly sync::kMaxMessageBytes + delta bytes long.
inline std::string pad_to_cap(std::string encoded, int delta) {
  const size_t target = sync::kMaxMessageBytes + delta;
  auto varint_size = [](size_t v) {
    size_t n = 1;
    while (v >= 0x80) {
      v >>= 7;
      ++n;
    }
    return n;
  };
  const size_t tag = 2;  // (100 << 3) | 2 as a varint
  if (encoded.size() + tag + 1 > target) return encoded;
  size_t room = target - encoded.size() - tag;
  size_t len = room - varint_size(room);
  if (len + varint_size(len) != room) len = room - varint_size(len);
  encoded += static_cast<char>(0xa2);
  encoded += static_cast<char>(0x06);
  for (size_t v = len; true; v >>= 7) {
    if (v < 0x80) {
      encoded += static_cast<char>(v);
      break;
    }
    encoded += static_cast<char>((v & 0x7f) | 0x80);
  }
  encoded.append(len, 'x');
  return encoded;
}

}  // namespace flotilla::fuzz
