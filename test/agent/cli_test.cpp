// Flags -> config validation, node facts, and the offline `status` report.
#include <gtest/gtest.h>

#include <sstream>

#include "agent/config_flags.hpp"
#include "agent/node_info.hpp"
#include "agent/status_report.hpp"
#include "agent/store.hpp"
#include "agent/twin_sync.hpp"
#include "common/fs.hpp"
#include "test/agent/specs.hpp"
#include "test/support/temp_dir.hpp"

namespace flotilla::agent {
namespace {

Expected<AgentConfig> parse(std::vector<std::string> args) {
  args.insert(args.begin(), "flotilla-agent");
  std::vector<const char*> argv;
  for (const auto& a : args) argv.push_back(a.c_str());
  Flags flags = make_agent_flags();
  if (auto st = flags.parse(static_cast<int>(argv.size()), argv.data()); !st) return st.error();
  return config_from_flags(flags);
}

TEST(AgentFlags, ValidFlagsMakeAConfig) {
  auto c = parse({"--node", "edge-1", "--mqtt", "tcp://127.0.0.1:1883", "--data", "/tmp/x",
                  "--labels", "zone=north,tier=2", "--heartbeat-ms", "1000", "--shards", "4",
                  "--restart-backoff-ms", "50", "--restart-backoff-max-ms", "400"});
  ASSERT_TRUE(c.ok()) << c.error().message();
  EXPECT_EQ(c->node, "edge-1");
  EXPECT_EQ(c->sync.labels.at("tier"), "2");
  EXPECT_EQ(c->sync.heartbeat, Millis(1000));
  EXPECT_EQ(c->sync.shards, 4u);
  EXPECT_EQ(c->reconciler.backoff_base, Millis(50));
  EXPECT_EQ(c->reconciler.backoff_max, Millis(400));
  EXPECT_EQ(c->reconciler.default_grace, Millis(10000));
}

TEST(AgentFlags, BadFlagsSayWhatIsWrong) {
  const std::vector<std::string> base = {"--mqtt", "tcp://h:1", "--data", "/tmp/x"};
  auto with = [&](std::vector<std::string> extra) {
    extra.insert(extra.end(), base.begin(), base.end());
    auto c = parse(extra);
    return c.ok() ? std::string() : c.error().message();
  };
  EXPECT_NE(with({"--node", "Bad_Name!"}).find("invalid --node"), std::string::npos);
  EXPECT_NE(with({}).find("missing required flag '--node'"), std::string::npos);
  EXPECT_NE(with({"--node", "n1", "--labels", "novalue"}).find("invalid --labels"),
            std::string::npos);
  EXPECT_NE(with({"--node", "n1", "--heartbeat-ms", "0"}).find("heartbeat-ms"), std::string::npos);
  EXPECT_NE(with({"--node", "n1", "--shards", "x"}).find("shards"), std::string::npos);
  EXPECT_NE(with({"--node", "n1", "--bogus", "1"}).find("unknown flag"), std::string::npos);
  auto c = parse({"--node", "n1", "--mqtt", "localhost", "--data", "/tmp/x"});
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.error().message().find("invalid --mqtt"), std::string::npos);
  EXPECT_NE(with({"--node", "n1", "--device-mqtt", "localhost"}).find("invalid --device-mqtt"),
            std::string::npos);
}

TEST(AgentFlags, DeviceBridgeIsOffUnlessGiven) {
  auto off = parse({"--node", "n1", "--mqtt", "tcp://h:1", "--data", "/tmp/x"});
  ASSERT_TRUE(off.ok()) << off.error().message();
  EXPECT_TRUE(off->device_mqtt_uri.empty());
  auto on = parse({"--node", "n1", "--mqtt", "tcp://h:1", "--data", "/tmp/x", "--device-mqtt",
                   "tcp://127.0.0.1:1884"});
  ASSERT_TRUE(on.ok()) << on.error().message();
  EXPECT_EQ(on->device_mqtt_uri, "tcp://127.0.0.1:1884");
  EXPECT_EQ(make_device_transport_options(*on).client_id, "flotilla-agent-n1-devices");
}

TEST(AgentFlags, TaintsAreKeyValueEffect) {
  const std::vector<std::string> base = {"--node", "n1", "--mqtt", "tcp://h:1", "--data", "/tmp/x"};
  auto with = [&](const std::string& taints) {
    std::vector<std::string> args = base;
    args.push_back("--taints");
    args.push_back(taints);
    return parse(args);
  };
  auto c = with("dedicated=gpu:NoSchedule, maintenance:NoExecute");
  ASSERT_TRUE(c.ok()) << c.error().message();
  EXPECT_EQ(c->sync.taints, (std::vector<NodeTaint>{{"dedicated", "gpu", "NoSchedule"},
                                                    {"maintenance", "", "NoExecute"}}));
  EXPECT_TRUE(parse(base)->sync.taints.empty());
  auto error_of = [&](const std::string& taints) {
    auto r = with(taints);
    return r.ok() ? std::string("accepted") : r.error().message();
  };
  EXPECT_EQ(error_of("dedicated=gpu"),
            "invalid --taints: taint 'dedicated=gpu' is not of the form key=value:Effect");
  EXPECT_EQ(error_of("a=b:PreferNoSchedule"),
            "invalid --taints: taint 'a=b:PreferNoSchedule': effect must be NoSchedule or "
            "NoExecute, got 'PreferNoSchedule'");
  EXPECT_EQ(error_of("b@d=x:NoSchedule"),
            "invalid --taints: taint 'b@d=x:NoSchedule': label key 'b@d' is invalid");
  EXPECT_NE(error_of("=x:NoSchedule"), "accepted");
  EXPECT_NE(error_of("a=b:NoSchedule,a=c:NoSchedule"), "accepted");
  EXPECT_EQ(error_of("a=b:NoSchedule,a=c:NoExecute"), "accepted");
}

TEST(AgentFlags, OtaFlagsAreReadAndCheckedAtLoad) {
  flotilla::testing::TempDir dir;
  const std::vector<std::string> base = {"--node",    "edge-1", "--mqtt",
                                         "tcp://h:1", "--data", dir.path()};
  auto with = [&](std::vector<std::string> extra) {
    std::vector<std::string> args = base;
    args.insert(args.end(), extra.begin(), extra.end());
    return parse(args);
  };
  auto plain = with({});
  ASSERT_TRUE(plain) << plain.error().message();
  EXPECT_TRUE(plain->ota.public_key_pem.empty());
  EXPECT_EQ(plain->ota.health_timeout, Millis(60000));

  const std::string pem =
      "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA\n-----END PUBLIC KEY-----\n";
  ASSERT_TRUE(fs::write_atomic(dir / "ota.pub", pem));
  auto c = with({"--ota-public-key", dir / "ota.pub", "--ota-image-slots", dir / "slots",
                 "--ota-health-command", "true", "--ota-health-timeout", "5"});
  ASSERT_TRUE(c) << c.error().message();
  EXPECT_EQ(c->ota.public_key_pem, pem);
  EXPECT_EQ(c->ota.image_slots_dir, dir / "slots");
  EXPECT_EQ(c->ota.health_command, "true");
  EXPECT_EQ(c->ota.health_timeout, Millis(5000));

  auto missing = with({"--ota-public-key", dir / "nope.pub"});
  ASSERT_FALSE(missing);
  EXPECT_NE(missing.error().message().find("invalid --ota-public-key"), std::string::npos);
  ASSERT_TRUE(fs::write_atomic(dir / "not-a-key", "hello"));
  auto not_key = with({"--ota-public-key", dir / "not-a-key"});
  ASSERT_FALSE(not_key);
  EXPECT_NE(not_key.error().message().find("not a PEM public key"), std::string::npos);
  auto file_slots = with({"--ota-image-slots", dir / "not-a-key"});
  ASSERT_FALSE(file_slots);
  EXPECT_NE(file_slots.error().message().find("not a folder"), std::string::npos);
  auto zero = with({"--ota-health-timeout", "0"});
  ASSERT_FALSE(zero);
  EXPECT_NE(zero.error().message().find("ota-health-timeout"), std::string::npos);
  EXPECT_NE(make_agent_flags().usage().find("--ota-public-key"), std::string::npos);
}

TEST(AgentFlags, HelpExplainsWorkloadsSurviveStop) {
  std::string usage = make_agent_flags().usage();
  EXPECT_NE(usage.find("WITHOUT stopping its workloads"), std::string::npos);
  EXPECT_NE(usage.find("--node"), std::string::npos);
}

TEST(NodeInfo, ArchAndMemory) {
  EXPECT_EQ(arch_from_machine("x86_64"), "amd64");
  EXPECT_EQ(arch_from_machine("aarch64"), "arm64");
  EXPECT_EQ(arch_from_machine("armv7l"), "arm");
  EXPECT_EQ(parse_meminfo_total("MemTotal:       16384 kB\nMemFree: 1 kB\n"), 16384 * 1024);
  EXPECT_EQ(parse_meminfo_total("nothing here"), 0);
  EXPECT_GE(detect_cpu_millis(), 1000);
  EXPECT_GT(detect_memory_bytes(), 0);
  std::string a = make_boot_id();
  EXPECT_EQ(a.size(), 32u);
  EXPECT_NE(a, make_boot_id());
}

TEST(StatusReport, PrintsCachedStateOffline) {
  flotilla::testing::TempDir dir;
  {
    auto opened = Store::open(store_path(dir.path()), "edge-1");
    ASSERT_TRUE(opened.ok());
    auto store = std::move(*opened);
    ASSERT_TRUE(store->apply_desired(true, {testing::process_spec("web")}, {}, 9).ok());
    InstanceRecord rec;
    rec.workload = "web";
    rec.spec_hash = "h1";
    rec.phase = v1::PHASE_RUNNING;
    rec.pid = 4321;
    ASSERT_TRUE(store->create_instance(rec, {"web", "Started", "", 0}).ok());
    twin::Twin t;
    ASSERT_TRUE(t.adopt_desired({{"fan", "on"}}, 3).ok());
    ASSERT_TRUE(t.report({{"temp", 21}}).ok());
    ASSERT_TRUE(store->put_twins({{"sensor-7", t, true}}).ok());
  }
  std::ostringstream out;
  ASSERT_TRUE(print_status(dir.path(), out).ok());
  std::string text = out.str();
  EXPECT_NE(text.find("edge-1"), std::string::npos) << text;
  EXPECT_NE(text.find("desired revision:  9"), std::string::npos) << text;
  EXPECT_NE(text.find("web-1"), std::string::npos) << text;
  EXPECT_NE(text.find("RUNNING"), std::string::npos) << text;
  EXPECT_NE(text.find("4321"), std::string::npos) << text;
  EXPECT_NE(text.find("DEVICE TWINS (1)"), std::string::npos) << text;
  EXPECT_NE(text.find("sensor-7"), std::string::npos) << text;
  EXPECT_NE(text.find(R"({"fan":"on"})"), std::string::npos) << text;
}

TEST(StatusReport, MissingStoreIsAClearError) {
  flotilla::testing::TempDir dir;
  std::ostringstream out;
  auto st = print_status(dir.path(), out);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.error().message().find("no such file"), std::string::npos);
}

}  // namespace
}  // namespace flotilla::agent
