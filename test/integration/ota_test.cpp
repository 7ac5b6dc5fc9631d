// OTA end to end: real mosquitto, hub, agent and flotctl. A signed image bundle is pushed to the
// hub's artifact store and rolled out; the agent downloads it, writes its inactive A/B slot,
// switches and commits only after its post-switch health check; with a failing health check it
// rolls back to the previous slot and the rollout counts the node as failed. An agent update
// switches the agent's own slot, and workloads started after it run the new slot's helpers. With
// two hub instances, a rollout made through one updates a node whose shard the other owns.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <thread>

#include "sync/topics.hpp"
#include "test/integration/fleet.hpp"
#include "test/support/postgres.hpp"
#include "test/support/tcp_proxy.hpp"

namespace flotilla::testing {
namespace {

namespace fs = std::filesystem;

std::string image(size_t bytes, char fill) {
  std::string s(bytes, fill);
  for (size_t i = 0; i < bytes; i += 4096) s[i] = static_cast<char>(i / 4096);
  return s;
}

std::string rollout_yaml(const std::string& name, const std::string& version,
                         const std::string& artifact = "fw") {
  return "apiVersion: flotilla/v1\nkind: Rollout\nmetadata:\n  name: " + name +
         "\nspec:\n  artifact: {name: " + artifact + ", version: \"" + version +
         "\"}\n  selector: {matchLabels: {ring: canary}}\n  waves: [{percent: 100}]\n"
         "  soakSeconds: 0\n  failureThreshold: {percent: 20, minCount: 1}\n"
         "  progressTimeoutSeconds: 120\n";
}

class OtaEndToEnd : public ::testing::Test {
 protected:
  void SetUp() override {
    fleet_.start_hub({}, hub_args());
    ASSERT_EQ(fleet_.flotctl({"artifact", "keygen", "--out", fleet_.dir() / "k"}).exit_code, 0);
    slots_ = fleet_.dir() / "slots";
    fs::create_directories(slots_);
    write_file(slots_ + "/slot-a", image(1 << 20, 'a'));
    fs::create_symlink("slot-a", slots_ + "/active");
  }

  // The hub hands out artifact URLs through this proxy, so a test can cut downloads.
  virtual std::vector<std::string> hub_args() {
    return {"--public-url", "http://127.0.0.1:" + std::to_string(proxy_.port())};
  }

  // Builds, signs and pushes fw `version` with `payload`.
  void push(const std::string& version, const std::string& payload) {
    const std::string file = fleet_.dir() / ("v" + version + ".img");
    write_file(file, payload);
    push_bundle("fw", version, "image", file);
  }
  // Builds, signs and pushes `name` `version` for `target` from `payload` (a file or folder).
  void push_bundle(const std::string& name, const std::string& version, const std::string& target,
                   const std::string& payload) {
    const std::string bundle = fleet_.dir() / ("b-" + name + "-" + version);
    for (const std::vector<std::string>& args :
         {std::vector<std::string>{"artifact", "build", "--name", name, "--version", version,
                                   "--target", target, "--payload", payload, "--out", bundle},
          {"artifact", "sign", "--key", fleet_.dir() / "k.key", bundle},
          {"artifact", "push", bundle}}) {
      auto r = fleet_.flotctl(args);
      ASSERT_EQ(r.exit_code, 0) << args[1] << ": " << r.out << r.err;
    }
  }

  void start_agent(const std::string& health_command) {
    start_agent_with({"--ota-public-key", fleet_.dir() / "k.pub", "--ota-image-slots", slots_,
                      "--ota-health-command", health_command});
  }
  void start_agent_with(const std::vector<std::string>& args) {
    fleet_.start_agent(node_, AgentOptions{.labels = "ring=canary", .args = args});
    const auto deadline = std::chrono::steady_clock::now() + 20s;
    while (!fleet_.all_ready({node_}) && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(100ms);
    }
    ASSERT_TRUE(fleet_.all_ready({node_})) << fleet_.dump_logs();
  }

  // fw 2.0 rolled out to an agent whose health check passes: Completed, on the other slot.
  void roll_out_healthy_update() {
    const std::string v2 = image(1 << 20, 'b');
    ASSERT_NO_FATAL_FAILURE(push("2.0", v2));
    ASSERT_NO_FATAL_FAILURE(start_agent("true"));
    ASSERT_EQ(fleet_.apply(rollout_yaml("fw-2", "2.0"), "fw-2.yaml").exit_code, 0);
    json done = wait_phase("fw-2", "Completed");
    EXPECT_EQ(done["status"]["counts"].value("succeeded", 0), 1) << done.dump();
    EXPECT_EQ(fs::read_symlink(slots_ + "/active").string(), "slot-b");
    EXPECT_EQ(slurp(slots_ + "/active"), v2);
  }

  // Polls the rollout until its phase is `want`; returns its last JSON.
  json wait_phase(const std::string& name, const std::string& want) {
    json r;
    const auto deadline = std::chrono::steady_clock::now() + 60s;
    while (std::chrono::steady_clock::now() < deadline) {
      r = fleet_.get("rollouts", name);
      if (r.is_object() && r["status"].value("phase", "") == want) return r;
      std::this_thread::sleep_for(200ms);
    }
    ADD_FAILURE() << "rollout " << name << " never reached " << want << ": " << r.dump() << "\n"
                  << fleet_.dump_logs();
    return r;
  }

  std::unique_ptr<Postgres> pg_;  // OtaAcrossInstances: outlives the fleet's hubs
  Fleet fleet_;
  TcpProxy proxy_{fleet_.http_port()};
  std::string slots_;
  std::string node_ = "n1";
};

TEST_F(OtaEndToEnd, AHealthyUpdateIsCommittedOnTheOtherSlotAndAFailingOneRollsBack) {
  ASSERT_NO_FATAL_FAILURE(roll_out_healthy_update());
  const std::string v2 = image(1 << 20, 'b');
  EXPECT_EQ(slurp(slots_ + "/slot-a"), image(1 << 20, 'a'));  // the old slot is kept

  // The next update fails its health check after the switch: back to 2.0 on slot-b.
  fleet_.stop_agent("n1");
  ASSERT_NO_FATAL_FAILURE(push("3.0", image(1 << 20, 'c')));
  ASSERT_NO_FATAL_FAILURE(start_agent("false"));
  ASSERT_EQ(fleet_.apply(rollout_yaml("fw-3", "3.0"), "fw-3.yaml").exit_code, 0);
  json paused = wait_phase("fw-3", "Paused");
  EXPECT_EQ(paused["status"]["counts"].value("failed", 0), 1) << paused.dump();
  EXPECT_EQ(paused["status"]["counts"].value("succeeded", 0), 0) << paused.dump();
  EXPECT_NE(paused.dump().find("RolledBack"), std::string::npos) << paused.dump();
  EXPECT_EQ(fs::read_symlink(slots_ + "/active").string(), "slot-b");
  EXPECT_EQ(slurp(slots_ + "/active"), v2);
}

// Two hub instances on PostgreSQL: the fleet's hub ("hub-a") holds the artifact and makes the
// rollout; the node's shard is owned by hub-b, which alone gets its messages unless hub-a asks
// for the update topics of the shards it does not own (SyncServer::set_fleet_updates).
class OtaAcrossInstances : public OtaEndToEnd {
 protected:
  void SetUp() override {
    if (auto why = Postgres::unavailable_reason(); !why.empty()) GTEST_SKIP() << why;
    pg_ = std::make_unique<Postgres>();
    ASSERT_TRUE(pg_->start().ok());
    ASSERT_TRUE(pg_->create_database("hub").ok());
    store_ = "postgres://flotilla@127.0.0.1:" + std::to_string(pg_->port()) + "/hub";
    ASSERT_NO_FATAL_FAILURE(OtaEndToEnd::SetUp());
    b_port_ = free_port();
    std::vector<std::string> argv = fleet_.hub_command(b_port_, "hub-b");
    for (const auto& arg : instance_args("hub-b")) argv.push_back(arg);
    hub_b_.start(argv, fleet_.dir() / "hub-b.log");
    ASSERT_TRUE(wait_for_port(b_port_, 10s)) << hub_b_.log();
    std::optional<std::set<uint32_t>> a, b;
    ASSERT_TRUE(eventually(
        [&] {
          a = owned_shards(fleet_.http_port());
          b = owned_shards(b_port_);
          return a && b && a->size() == 8 && b->size() == 8;
        },
        15s))
        << fleet_.dump_logs() << hub_b_.log();
    for (int i = 0;; ++i) {
      node_ = "n" + std::to_string(i);
      if (b->count(sync::shard_of(node_, sync::kDefaultShards)) != 0) break;
    }
    b_shards_ = *b;
  }

  // The instances share the database and the artifacts' folder.
  std::vector<std::string> instance_args(const std::string& id) {
    return {"--store",           store_, "--instance-id", id,
            "--lease-period-ms", "2000", "--artifacts",   fleet_.dir() / "artifacts"};
  }
  RunResult flotctl_at(int port, std::vector<std::string> args) {
    args.insert(args.begin(), {FLOTCTL_BIN, "--hub", "http://127.0.0.1:" + std::to_string(port)});
    return run_command(args, 30s);
  }
  json rollout_at(int port, const std::string& name) {
    RunResult r = flotctl_at(port, {"get", "rollouts", name, "-o", "json"});
    if (r.exit_code != 0) return json();
    try {
      return json::parse(r.out);
    } catch (const std::exception&) {
      return json();
    }
  }
  // Whether the instance at `port` drives the rollouts (nullopt: it did not answer).
  std::optional<bool> drives(int port) {
    RunResult r = run_command({"/usr/bin/curl", "-sf", "--max-time", "2",
                               "http://127.0.0.1:" + std::to_string(port) + "/metrics"},
                              5s);
    if (r.exit_code != 0) return std::nullopt;
    return r.out.find("\nflotilla_hub_rollouts_driving 1\n") != std::string::npos;
  }
  std::vector<std::string> hub_args() override {
    auto args = OtaEndToEnd::hub_args();
    for (const auto& arg : instance_args("hub-a")) args.push_back(arg);
    return args;
  }

  std::string store_;
  int b_port_ = 0;
  ChildProcess hub_b_;
  std::set<uint32_t> b_shards_;
};

TEST_F(OtaAcrossInstances, ARolloutMadeThroughOneInstanceUpdatesANodeOfAnotherInstancesShard) {
  ASSERT_NO_FATAL_FAILURE(roll_out_healthy_update());
  // hub-b owned the node's shard all along: hub-a heard the node through its update topics.
  EXPECT_EQ(owned_shards(b_port_), std::optional<std::set<uint32_t>>(b_shards_));
  EXPECT_EQ(b_shards_.count(sync::shard_of(node_, sync::kDefaultShards)), 1u);
}

// The instance driving the rollouts (the holder of shard 0's lease) is killed -9 while the node
// runs its post-switch health check, so the node's Committed report reaches no driver. The other
// instance takes shard 0 over, loads the rollout from the database, asks the node where it
// stands and completes the rollout. The rollout was made through the instance that did not
// drive it (forwarded), and is read through the survivor afterwards.
TEST_F(OtaAcrossInstances, WhenTheDrivingInstanceDiesTheOtherCompletesItsRollout) {
  const std::string v2 = image(1 << 20, 'b');
  ASSERT_NO_FATAL_FAILURE(push("2.0", v2));
  // The report that ends the 1 s check goes out while no instance drives (takeover: 1.3-3 s).
  ASSERT_NO_FATAL_FAILURE(start_agent("sleep 1"));
  std::optional<bool> a_drives, b_drives;
  ASSERT_TRUE(eventually(
      [&] {
        a_drives = drives(fleet_.http_port());
        b_drives = drives(b_port_);
        return a_drives && b_drives && *a_drives != *b_drives;
      },
      10s))
      << "exactly one instance should drive the rollouts\n"
      << fleet_.dump_logs() << hub_b_.log();
  const int driver = *a_drives ? fleet_.http_port() : b_port_;
  const int other = *a_drives ? b_port_ : fleet_.http_port();

  // A rollout watch on the instance that does not drive: streamed from the one that does.
  ChildProcess watch;
  watch.start({"/usr/bin/curl", "-sN", "--max-time", "60",
               "http://127.0.0.1:" + std::to_string(other) + "/api/v1/rollouts?watch=true"},
              fleet_.dir() / "rollout-watch.log");
  // Made through the instance that does not drive: forwarded to the one that does.
  const std::string file = fleet_.manifest_file(rollout_yaml("fw-2", "2.0"), "fw-2.yaml");
  RunResult made = flotctl_at(other, {"apply", "-f", file});
  ASSERT_EQ(made.exit_code, 0) << made.out << made.err << fleet_.dump_logs() << hub_b_.log();
  ASSERT_TRUE(eventually(
      [&] {
        json r = rollout_at(other, "fw-2");
        return r.is_object() && r["status"]["nodes"].size() == 1 &&
               r["status"]["nodes"][0].value("phase", "") == "HealthCheck";
      },
      30s))
      << rollout_at(driver, "fw-2").dump() << fleet_.dump_logs() << hub_b_.log();
  EXPECT_TRUE(eventually(
      [&] {
        const std::string seen = watch.log();
        return seen.find("\"type\":\"ADDED\"") != std::string::npos &&
               seen.find("\"name\":\"fw-2\"") != std::string::npos;
      },
      10s))
      << "the watch on the other instance saw: " << watch.log();

  if (driver == fleet_.http_port()) {
    fleet_.kill9_hub();
  } else {
    hub_b_.kill9();
  }
  json done;
  ASSERT_TRUE(eventually(
      [&] {
        done = rollout_at(other, "fw-2");
        return done.is_object() && done["status"].value("phase", "") == "Completed";
      },
      30s))
      << done.dump() << fleet_.dump_logs() << hub_b_.log();
  EXPECT_EQ(done["status"]["counts"].value("succeeded", 0), 1) << done.dump();
  EXPECT_EQ(drives(other), std::optional<bool>(true));
  // The driver's stream ended with it; a client reconnects (and lists again where it lands).
  EXPECT_TRUE(watch.wait_exit(10s).has_value()) << watch.log();
  EXPECT_EQ(fs::read_symlink(slots_ + "/active").string(), "slot-b");
  EXPECT_EQ(slurp(slots_ + "/active"), v2);
}

// The hub's connection is cut mid-download, then the agent is killed -9 while it waits to
// retry. Restarted, it fetches only what its partial file lacks: never the bytes it had.
TEST_F(OtaEndToEnd, ACutDownloadAndAKilledAgentResumeWithoutFetchingTheDoneBytesAgain) {
  constexpr uint64_t kPayload = 8 << 20;
  constexpr uint64_t kCut = 3 << 20;
  const std::string v2 = image(kPayload, 'b');
  ASSERT_NO_FATAL_FAILURE(push("2.0", v2));
  ASSERT_NO_FATAL_FAILURE(start_agent("true"));
  const uint64_t accepted_before = proxy_.accepted();
  proxy_.cut_after(proxy_.bytes_to_clients() + kCut);
  ASSERT_EQ(fleet_.apply(rollout_yaml("fw-2", "2.0"), "fw-2.yaml").exit_code, 0);
  const auto deadline = std::chrono::steady_clock::now() + 30s;
  while (proxy_.accepted() == accepted_before || proxy_.open_connections() > 0) {
    ASSERT_LT(std::chrono::steady_clock::now(), deadline) << fleet_.dump_logs();
    std::this_thread::sleep_for(1ms);
  }
  // Cut. The retry (0.5-1 s later) finds the link stalled; the agent dies meanwhile.
  proxy_.stall();
  std::this_thread::sleep_for(200ms);
  fleet_.kill9_agent("n1");
  uint64_t kept = 0;
  for (const auto& e : fs::directory_iterator(fleet_.dir() / "agent-n1/ota/downloads")) {
    if (e.path().extension() == ".partial") kept += fs::file_size(e.path());
  }
  // The RST discards what sat unread in the socket buffers (megabytes on loopback), so the
  // partial file holds less than kCut, but some of it.
  EXPECT_GE(kept, 64u << 10) << "the first attempt kept " << kept << " bytes";
  EXPECT_LT(kept, kPayload);
  const uint64_t served_before_restart = proxy_.bytes_to_clients();
  proxy_.resume();
  ASSERT_NO_FATAL_FAILURE(start_agent("true"));
  json done = wait_phase("fw-2", "Completed");
  EXPECT_EQ(done["status"]["counts"].value("succeeded", 0), 1) << done.dump();
  EXPECT_EQ(slurp(slots_ + "/active"), v2);
  EXPECT_GE(proxy_.accepted() - accepted_before, 2u);  // cut, then a new connection
  // After the restart: the missing bytes plus HTTP headers, not the whole payload again.
  const uint64_t served_after = proxy_.bytes_to_clients() - served_before_restart;
  EXPECT_GE(served_after, kPayload - kept);
  EXPECT_LT(served_after, kPayload - kept + (16 << 10))
      << "served " << served_after << " bytes after the restart; the partial file held " << kept
      << " of " << kPayload;
}

// The agent updates itself twice: first with a bundle carrying only flotilla-agent (the node
// copies its running helpers into the new slot), then with one carrying the agent and its
// helpers. After each, a NEW process workload starts, under the shim of the slot now active.
TEST_F(OtaEndToEnd, AfterAnAgentUpdateNewProcessWorkloadsRunUnderTheNewSlotsShim) {
  const std::string built = fs::path(FLOTILLA_AGENT_BIN).parent_path().string();
  // New versions: the built binaries with bytes appended (an ELF file runs with a tail).
  auto release = [&](const std::string& version) {
    const std::string dir = fleet_.dir() / ("agent-" + version);
    fs::create_directories(dir);
    for (const char* file : {"flotilla-agent", "flotilla-shim", "flotilla-oci-monitor"}) {
      fs::copy_file(built + "/" + file, dir + "/" + file);
      std::ofstream(dir + "/" + file, std::ios::binary | std::ios::app) << "release " << version;
    }
    return dir;
  };
  const std::string v2 = release("2.0");
  const std::string v3 = release("3.0");
  ASSERT_NO_FATAL_FAILURE(push_bundle("agent", "2.0", "agent", v2 + "/flotilla-agent"));
  ASSERT_NO_FATAL_FAILURE(push_bundle("agent", "3.0", "agent", v3));
  ASSERT_NO_FATAL_FAILURE(start_agent_with({"--ota-public-key", fleet_.dir() / "k.pub"}));
  const std::string slots = fleet_.dir() / "agent-n1/ota/agent";

  // Which binary the shim of `workload`'s new instance runs, once `want` all run.
  auto shim_exe = [&](const std::string& workload, const std::map<std::string, std::string>& want) {
    EXPECT_EQ(fleet_.apply(sleeper_manifest(workload), workload + ".yaml").exit_code, 0);
    std::string err = fleet_.wait_converged(want, {"n1"}, 30s);
    EXPECT_EQ(err, "") << fleet_.dump_logs();
    auto shims = fleet_.shim_pids("n1", workload);
    EXPECT_EQ(shims.size(), 1u);
    return shims.empty() ? std::string()
                         : fs::read_symlink("/proc/" + std::to_string(shims[0]) + "/exe").string();
  };

  ASSERT_EQ(fleet_.apply(rollout_yaml("agent-2", "2.0", "agent"), "agent-2.yaml").exit_code, 0);
  json done = wait_phase("agent-2", "Completed");
  EXPECT_EQ(done["status"]["counts"].value("succeeded", 0), 1) << done.dump();
  EXPECT_EQ(fs::read_symlink(slots + "/active").string(), "slot-b");
  EXPECT_EQ(slurp(slots + "/slot-b/flotilla-agent"), slurp(v2 + "/flotilla-agent"));
  // The helpers came from the running slot, seeded from the folder the agent was started in.
  EXPECT_EQ(slurp(slots + "/slot-b/flotilla-shim"), slurp(built + "/flotilla-shim"));
  EXPECT_EQ(shim_exe("s2", {{"s2", "1"}}), fs::canonical(slots + "/slot-b/flotilla-shim").string());

  ASSERT_EQ(fleet_.apply(rollout_yaml("agent-3", "3.0", "agent"), "agent-3.yaml").exit_code, 0);
  done = wait_phase("agent-3", "Completed");
  EXPECT_EQ(done["status"]["counts"].value("succeeded", 0), 1) << done.dump();
  EXPECT_EQ(fs::read_symlink(slots + "/active").string(), "slot-a");
  for (const char* file : {"flotilla-agent", "flotilla-shim", "flotilla-oci-monitor"}) {
    EXPECT_EQ(slurp(slots + "/slot-a/" + file), slurp(v3 + "/" + file)) << file;
  }
  EXPECT_EQ(shim_exe("s3", {{"s2", "1"}, {"s3", "1"}}),
            fs::canonical(slots + "/slot-a/flotilla-shim").string());
  // The workload started before the update keeps running under its shim.
  EXPECT_EQ(fleet_.wait_converged({{"s2", "1"}, {"s3", "1"}}, {"n1"}, 30s), "");
}

}  // namespace
}  // namespace flotilla::testing
