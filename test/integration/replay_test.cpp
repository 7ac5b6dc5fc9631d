// Duplicated, reordered and replayed messages change nothing (docs/protocol.md). A separate MQTT
// client (the real mosquitto_sub) records every message the hub sent to node n1 and n1 sent to
// the hub while workloads were created, updated and deleted; the real mosquitto_pub then
// publishes them again, each twice, newest first and then shuffled: old revisions after new
// ones, old status after new status. Afterwards the agent must still be at its revision with the
// same instances, and the hub must show exactly what runs.
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <random>
#include <set>
#include <sstream>

#include "sync/flotilla.pb.h"
#include "test/integration/fleet.hpp"

namespace flotilla::testing {
namespace {

const std::vector<std::string> kNodes = {"n1", "n2"};
constexpr auto kConverge = 30s;
constexpr const char* kMarkerTopic = "flotilla-test/capture-marker";

struct Recorded {
  std::string topic;
  std::string payload;  // bytes, as published
  bool down() const { return topic.find("/down/") != std::string::npos; }
  std::string kind() const { return topic.substr(topic.rfind('/') + 1); }
};

std::string from_hex(const std::string& hex) {
  std::string out;
  for (size_t i = 0; i + 1 < hex.size(); i += 2) {
    out.push_back(static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16)));
  }
  return out;
}

// mosquitto_sub on the fleet's broker, printing "topic hex-payload" per message to a file.
class Recorder {
 public:
  Recorder(Fleet& fleet, const std::string& filter)
      : fleet_(fleet), path_(fleet.dir() / "sub.log") {
    proc_.start({find_executable("mosquitto_sub"), "-h", "127.0.0.1", "-p",
                 std::to_string(fleet.broker().port()), "-i", "flotilla-test-recorder", "-q", "1",
                 "-t", filter, "-t", kMarkerTopic, "-F", "%t %x"},
                path_);
  }
  ~Recorder() { proc_.stop(2s); }

  // True once the subscription is in place: a marker published now comes back.
  bool wait_subscribed() {
    return eventually(
        [&] {
          run_command({find_executable("mosquitto_pub"), "-h", "127.0.0.1", "-p",
                       std::to_string(fleet_.broker().port()), "-q", "1", "-t", kMarkerTopic, "-m",
                       "ready"},
                      5s);
          return eventually([&] { return proc_.log().find(kMarkerTopic) != std::string::npos; },
                            500ms);
        },
        10s);
  }

  std::vector<Recorded> messages() const {
    std::vector<Recorded> out;
    std::istringstream in(proc_.log());
    std::string line;
    while (std::getline(in, line)) {
      auto space = line.find(' ');
      if (space == std::string::npos || line.rfind("flotilla/v1/", 0) != 0) continue;
      out.push_back({line.substr(0, space), from_hex(line.substr(space + 1))});
    }
    return out;
  }

 private:
  Fleet& fleet_;
  std::string path_;
  ChildProcess proc_;
};

// Publishes every message with the real mosquitto_pub at QoS 1, as another client would.
void republish(Fleet& fleet, const std::vector<Recorded>& messages) {
  const std::string pub = find_executable("mosquitto_pub");
  const std::string file = fleet.dir() / "payload.bin";
  for (const auto& m : messages) {
    std::vector<std::string> argv = {
        pub,  "-h", "127.0.0.1", "-p",   std::to_string(fleet.broker().port()),
        "-q", "1",  "-t",        m.topic};
    if (m.payload.empty()) {
      argv.push_back("-n");
    } else {
      std::ofstream(file, std::ios::binary | std::ios::trunc) << m.payload;
      argv.insert(argv.end(), {"-f", file});
    }
    RunResult r = run_command(argv, 10s);
    ASSERT_EQ(r.exit_code, 0) << "mosquitto_pub " << m.topic << ": " << r.err;
  }
}

// Each message twice, newest first; then all of them once more in a shuffled order.
std::vector<Recorded> duplicated_and_reordered(std::vector<Recorded> messages, uint32_t seed) {
  std::vector<Recorded> out;
  for (auto it = messages.rbegin(); it != messages.rend(); ++it) {
    out.push_back(*it);
    out.push_back(*it);
  }
  std::mt19937 rng(seed);
  std::shuffle(messages.begin(), messages.end(), rng);
  out.insert(out.end(), messages.begin(), messages.end());
  return out;
}

std::vector<Recorded> of_kinds(const std::vector<Recorded>& messages,
                               const std::set<std::string>& kinds) {
  std::vector<Recorded> out;
  for (const auto& m : messages)
    if (kinds.count(m.kind()) != 0) out.push_back(m);
  return out;
}

// What the hub reports about n1's instances, without the time of the last update.
std::map<std::string, json> hub_instances_of_n1(Fleet& fleet) {
  std::map<std::string, json> out;
  json node = fleet.get("node", "n1");
  for (auto inst : node.value("instanceStatus", json::array())) {
    inst.erase("updatedAt");
    out[inst.value("instanceId", "")] = inst;
  }
  return out;
}

class Replay : public ::testing::Test {
 protected:
  void SetUp() override {
    if (find_executable("mosquitto_sub").empty() || find_executable("mosquitto_pub").empty()) {
      GTEST_SKIP() << "mosquitto_sub and mosquitto_pub are not installed (package "
                      "mosquitto-clients, see scripts/setup)";
    }
    fleet_.start_hub();
    ASSERT_TRUE(recorder_.wait_subscribed()) << "mosquitto_sub did not subscribe";
    for (const auto& n : kNodes) fleet_.start_agent(n);
    ASSERT_TRUE(eventually(
        [&] { return fleet_.node_state("n1") == "Ready" && fleet_.node_state("n2") == "Ready"; },
        15s));
    // A history of revisions and status changes on n1: create, update, create, delete.
    ASSERT_EQ(fleet_.apply(sleeper_manifest("a", "1") + "---\n" + sleeper_manifest("b")).exit_code,
              0);
    ASSERT_EQ(fleet_.wait_converged({{"a", "1"}, {"b", "1"}}, kNodes, kConverge), "");
    ASSERT_EQ(fleet_.apply(sleeper_manifest("a", "2")).exit_code, 0);
    ASSERT_EQ(fleet_.wait_converged({{"a", "2"}, {"b", "1"}}, kNodes, kConverge), "");
    ASSERT_EQ(fleet_.apply(sleeper_manifest("c")).exit_code, 0);
    ASSERT_EQ(fleet_.wait_converged({{"a", "2"}, {"b", "1"}, {"c", "1"}}, kNodes, kConverge), "");
    ASSERT_EQ(fleet_.flotctl({"delete", "workload", "b"}).exit_code, 0);
    ASSERT_EQ(fleet_.wait_converged(want_, kNodes, kConverge), "");

    all_ = recorder_.messages();
    for (const auto& m : all_) (m.down() ? down_ : up_).push_back(m);
    std::map<std::string, int> kinds;
    for (const auto& m : down_) ++kinds["down/" + m.kind()];
    for (const auto& m : up_) ++kinds["up/" + m.kind()];
    std::string summary;
    for (const auto& [kind, n] : kinds) summary += kind + "=" + std::to_string(n) + " ";
    std::cout << "recorded for n1: " << summary << "\n";
    // Four changes: four desired states and their acks, hello, several status batches. The
    // hub speaks v3, so each ack rides on the status batch its apply caused
    // (StatusBatch.acked_revision) or, when there was none, goes as an Ack of its own.
    std::set<uint64_t> acked;
    for (const auto& m : up_) {
      flotilla::v1::StatusBatch batch;
      flotilla::v1::Ack ack;
      if (m.kind() == "ack" && ack.ParseFromString(m.payload)) acked.insert(ack.revision());
      if (m.kind() == "status" && batch.ParseFromString(m.payload) && batch.acked_revision() > 0)
        acked.insert(batch.acked_revision());
    }
    summary += "acked revisions=" + std::to_string(acked.size());
    ASSERT_GE(kinds["down/desired"], 4) << summary;
    ASSERT_GE(acked.size(), 4u) << summary;
    ASSERT_GE(kinds["up/hello"], 1) << summary;
    ASSERT_GE(kinds["up/status"], 4) << summary;

    revision_ = fleet_.get("node", "n1").value("revision", int64_t{-1});
    ASSERT_EQ(fleet_.agent_revision("n1"), revision_);
    for (const auto& [workload, version] : want_) {
      pids_[workload] = fleet_.workload_pids("n1", workload);
      ASSERT_EQ(pids_[workload].size(), 1u) << workload;
    }
    instances_ = hub_instances_of_n1(fleet_);
    ASSERT_EQ(instances_.size(), want_.size());
  }

  // Applies one more workload and waits until n1 runs it and the hub has its status. The hub
  // sent that desired state after every replayed message had reached the broker, and n1's
  // status for it came after them as well: once it is reported, both sides have processed
  // every replay.
  void fence(const std::string& workload) {
    ASSERT_EQ(fleet_.apply(sleeper_manifest(workload)).exit_code, 0);
    want_[workload] = "1";
    fences_.insert(workload);
    ++revision_;
    ASSERT_TRUE(eventually(
        [&] {
          auto insts = fleet_.instances(workload);
          auto it = insts.find("n1");
          return it != insts.end() && it->second.value("phase", "") == "Running" &&
                 fleet_.get("node", "n1").value("ackedRevision", int64_t{-1}) == revision_;
        },
        kConverge))
        << "n1 did not take up workload " << workload << ": " << fleet_.get("node", "n1").dump();
  }

  // n1 is where it was: same revision at the agent and hub, same processes, same status.
  void expect_unchanged() {
    // (n2 may still be taking up the fence; what replays break at n1 does not mend itself.)
    EXPECT_EQ(fleet_.wait_converged(want_, kNodes, 15s), "");
    EXPECT_EQ(fleet_.get("node", "n1").value("revision", int64_t{-1}), revision_);
    EXPECT_EQ(fleet_.agent_revision("n1"), revision_) << "n1's agent changed revision";
    for (const auto& [workload, pids] : pids_) {
      EXPECT_EQ(fleet_.workload_pids("n1", workload), pids)
          << "n1's instance of " << workload << " was restarted or duplicated";
    }
    auto now = hub_instances_of_n1(fleet_);
    for (const auto& [id, inst] : instances_) {
      ASSERT_EQ(now.count(id), 1u) << "the hub lost the status of " << id;
      EXPECT_EQ(now[id], inst) << "the hub's status of " << id << " changed";
    }
    for (const auto& [id, inst] : now) {
      if (instances_.count(id) == 0 && fences_.count(inst.value("workload", "")) == 0) {
        ADD_FAILURE() << "the hub shows an instance that is not running: " << inst.dump();
      }
    }
    // Nothing changes later either (a resync, a late resend).
    EXPECT_EQ(fleet_.stays_converged(want_, kNodes, 3s), "");
  }

  Fleet fleet_;
  Recorder recorder_{fleet_, "flotilla/v1/s/+/n/n1/#"};
  std::vector<Recorded> all_;  // as recorded, oldest first
  std::vector<Recorded> down_;
  std::vector<Recorded> up_;
  std::map<std::string, std::string> want_ = {{"a", "2"}, {"c", "1"}};
  int64_t revision_ = 0;
  std::map<std::string, std::vector<pid_t>> pids_;
  std::map<std::string, json> instances_;
  std::set<std::string> fences_;
};

TEST_F(Replay, OldDesiredStatesChangeNothingOnTheAgent) {
  republish(fleet_, duplicated_and_reordered(down_, 1));
  ASSERT_NO_FATAL_FAILURE(fence("fence"));
  expect_unchanged();
}

// (Acks of v3 agents ride on status batches, replayed in OldStatusBatchesChangeNothingAtTheHub;
// replayed Ack messages of their own: SyncServerTest.DuplicateAndStaleAcksChangeNothing.)
TEST_F(Replay, OldHellosAndAcksChangeNothingAtTheHub) {
  republish(fleet_, duplicated_and_reordered(of_kinds(up_, {"hello", "ack"}), 2));
  ASSERT_NO_FATAL_FAILURE(fence("fence"));
  expect_unchanged();
}

TEST_F(Replay, OldHeartbeatsChangeNothingAtTheHub) {
  republish(fleet_, duplicated_and_reordered(of_kinds(up_, {"heartbeat"}), 3));
  ASSERT_NO_FATAL_FAILURE(fence("fence"));
  expect_unchanged();
}

TEST_F(Replay, OldStatusBatchesChangeNothingAtTheHub) {
  republish(fleet_, duplicated_and_reordered(of_kinds(up_, {"status"}), 4));
  ASSERT_NO_FATAL_FAILURE(fence("fence"));
  expect_unchanged();
}

TEST_F(Replay, EverythingShuffledTogetherChangesNothing) {
  republish(fleet_, duplicated_and_reordered(all_, 5));
  ASSERT_NO_FATAL_FAILURE(fence("fence"));
  expect_unchanged();
}

// The two ways old status goes wrong in the tests above, one message each.

TEST_F(Replay, AnOldFullStatusDoesNotDropNewerInstances) {
  // The full status n1 sent when it first connected, before it had any instance.
  std::vector<Recorded> first_full;
  for (const auto& m : of_kinds(up_, {"status"})) {
    v1::StatusBatch batch;
    ASSERT_TRUE(batch.ParseFromString(m.payload));
    if (batch.full()) {
      first_full.push_back(m);
      break;
    }
  }
  ASSERT_EQ(first_full.size(), 1u) << "no full status recorded";
  republish(fleet_, first_full);
  ASSERT_NO_FATAL_FAILURE(fence("fence"));
  expect_unchanged();
}

TEST_F(Replay, AnOldRecordOfARemovedInstanceDoesNotComeBack) {
  // The last batch reporting the replaced instance of `a` (or deleted one of `b`) alive.
  std::set<std::string> removed;
  std::vector<std::pair<Recorded, v1::StatusBatch>> batches;
  for (const auto& m : of_kinds(up_, {"status"})) {
    v1::StatusBatch batch;
    ASSERT_TRUE(batch.ParseFromString(m.payload));
    for (const auto& inst : batch.instances())
      if (inst.removed()) removed.insert(inst.instance_id());
    batches.emplace_back(m, batch);
  }
  std::vector<Recorded> last_alive;
  for (auto it = batches.rbegin(); it != batches.rend() && last_alive.empty(); ++it) {
    for (const auto& inst : it->second.instances()) {
      if (!inst.removed() && removed.count(inst.instance_id()) != 0) {
        last_alive.push_back(it->first);
        std::cout << "replaying a record of removed instance " << inst.instance_id() << " (seq "
                  << inst.seq() << ", " << v1::Phase_Name(inst.phase()) << ")\n";
        break;
      }
    }
  }
  ASSERT_EQ(last_alive.size(), 1u) << "no record of a removed instance recorded";
  republish(fleet_, last_alive);
  ASSERT_NO_FATAL_FAILURE(fence("fence"));
  expect_unchanged();
}

}  // namespace
}  // namespace flotilla::testing
