// Container workloads end to end: real mosquitto, hub and agent; a real docker-registry holding
// busybox images built with umoci and pushed with skopeo; containers run by crun or runc.
#include <signal.h>

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "common/fs.hpp"
#include "test/integration/fleet.hpp"
#include "test/support/oci_registry.hpp"

namespace flotilla::testing {
namespace {

const std::vector<std::string> kNode = {"n1"};

std::string container_manifest(const std::string& name, const std::string& image,
                               const std::string& fleet_dir, const std::string& extra = "") {
  return "apiVersion: flotilla/v1\nkind: Workload\nmetadata:\n  name: " + name +
         "\nspec:\n  type: container\n  placement:\n    everyNode: true\n" + extra +
         "  container:\n    image: " + image +
         "\n    env:\n      FLOTILLA_TEST_FLEET: " + fleet_dir + "\n";
}

class ContainerFleet : public ::testing::Test {
 protected:
  void SetUp() override {
    if (std::string missing = oci_tools_missing(); !missing.empty()) GTEST_SKIP() << missing;
    if (find_executable("crun").empty() && find_executable("runc").empty()) {
      GTEST_SKIP() << "neither crun nor runc is installed";
    }
    registry_ = std::make_unique<Registry>(fleet_.dir() / "registry", free_port());
    ASSERT_TRUE(fs::make_dirs(fleet_.dir() / "registry").ok());
    ASSERT_TRUE(registry_->start()) << registry_->log();
    fleet_.start_hub();
    fleet_.start_agent("n1", AgentOptions{.args = {"--insecure-registries", registry_->host()}});
    ASSERT_TRUE(eventually([&] { return fleet_.all_ready(kNode); }, 15s)) << fleet_.dump_logs();
  }

  // The hub's view of the workload's one instance ({} until there is exactly one).
  json instance(const std::string& workload) {
    auto all = fleet_.instances(workload);
    return all.size() == 1 ? all.begin()->second : json::object();
  }

  // The container's own processes (not the shim, monitor or runtime), by their environment.
  std::vector<pid_t> container_pids(const std::string& workload) {
    std::vector<pid_t> out;
    for (const auto& p : find_processes_with_env(
             {{"FLOTILLA_WORKLOAD", workload}, {"FLOTILLA_TEST_FLEET", fleet_.dir().path()}})) {
      if (p.comm != "flotilla-shim" && p.comm.rfind("flotilla-oci", 0) != 0 && p.comm != "runc" &&
          p.comm != "crun") {
        out.push_back(p.pid);
      }
    }
    return out;
  }

  // Container bundles (rootfs mount, spec) the agent keeps; empty once it cleaned everything up.
  size_t bundles() {
    size_t n = 0;
    std::error_code ec;
    for (auto it = std::filesystem::directory_iterator(
             fleet_.dir() / "agent-n1/runtime/container/bundles", ec);
         !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
      ++n;
    }
    return n;
  }

  std::string log_of(const std::string& instance_id) {
    auto text = fs::read_file(
        fleet_.dir() / ("agent-n1/runtime/container/shim/logs/" + instance_id + "/stdout.log"));
    return text ? *text : "";
  }

  std::string push(const std::string& repo_tag, const TestImage& image,
                   std::string* digest = nullptr) {
    auto colon = repo_tag.find(':');
    return push_test_image(fleet_.dir() / "images", image, registry_->host(),
                           repo_tag.substr(0, colon), repo_tag.substr(colon + 1), digest);
  }

  Fleet fleet_;
  std::unique_ptr<Registry> registry_;
};

TestImage looping_image(const std::string& word) {
  TestImage image;
  image.entrypoint = {"/bin/sh", "-c"};
  image.cmd = {"echo hello-from-" + word + "; exec sleep 1000000"};
  return image;
}

TEST_F(ContainerFleet, PullRunRestartAdoptAndPrePullAnUpdate) {
  ASSERT_EQ(push("app:1", looping_image("v1")), "");
  ASSERT_EQ(push("app:2", looping_image("v2")), "");
  const std::string v1 = registry_->host() + "/app:1";
  ASSERT_EQ(fleet_.apply(container_manifest("web", v1, fleet_.dir().path())).exit_code, 0);

  // Pulled and run; the container's output is in its log.
  ASSERT_TRUE(eventually([&] { return instance("web").value("phase", "") == "Running"; }, 60s))
      << fleet_.get("workload", "web").dump(2) << fleet_.dump_logs();
  const std::string id = instance("web")["instanceId"];
  EXPECT_EQ(instance("web")["ready"], true);
  ASSERT_TRUE(
      eventually([&] { return log_of(id).find("hello-from-v1") != std::string::npos; }, 10s))
      << log_of(id);
  ASSERT_TRUE(eventually([&] { return container_pids("web").size() == 1; }, 10s));

  // The container is killed: the agent restarts it.
  pid_t first = container_pids("web")[0];
  ASSERT_EQ(::kill(first, SIGKILL), 0);
  ASSERT_TRUE(eventually(
      [&] {
        json i = instance("web");
        auto pids = container_pids("web");
        return i.value("phase", "") == "Running" && i.value("restarts", 0) == 1 &&
               pids.size() == 1 && pids[0] != first;
      },
      30s))
      << fleet_.get("workload", "web").dump(2);

  // kill -9 of the agent, then a new agent: the same container is adopted, not recreated.
  pid_t container = container_pids("web")[0];
  int64_t shim_pid = instance("web")["pid"];
  fleet_.kill9_agent("n1");
  fleet_.start_agent("n1");
  ASSERT_TRUE(eventually([&] { return fleet_.all_ready(kNode); }, 15s));
  std::this_thread::sleep_for(1s);  // a few reconcile ticks
  EXPECT_EQ(container_pids("web"), std::vector<pid_t>{container}) << "container recreated";
  EXPECT_EQ(instance("web")["pid"], shim_pid);
  EXPECT_EQ(instance("web")["phase"], "Running");
  EXPECT_EQ(instance("web")["restarts"], 1);

  // An image update while the registry is down: the old container keeps running (the new image
  // is pulled first), and the status says why the update waits.
  registry_->stop();
  const std::string v2 = registry_->host() + "/app:2";
  ASSERT_EQ(fleet_.apply(container_manifest("web", v2, fleet_.dir().path())).exit_code, 0);
  ASSERT_TRUE(
      eventually([&] { return instance("web").value("reason", "").find("UpdatePull") == 0; }, 20s))
      << fleet_.get("workload", "web").dump(2);
  EXPECT_EQ(instance("web")["phase"], "Running");
  EXPECT_EQ(container_pids("web"), std::vector<pid_t>{container});

  // The registry returns: pulled, then the old instance stops and the new one starts.
  ASSERT_TRUE(registry_->start()) << registry_->log();
  ASSERT_TRUE(eventually(
      [&] {
        json i = instance("web");
        return i.value("phase", "") == "Running" && i.value("current", false) &&
               log_of(i.value("instanceId", "")).find("hello-from-v2") != std::string::npos;
      },
      90s))
      << fleet_.get("workload", "web").dump(2) << fleet_.dump_logs();
  EXPECT_FALSE(pid_alive(container)) << "the old container still runs";
  ASSERT_TRUE(eventually([&] { return container_pids("web").size() == 1; }, 10s));

  // Deleted: nothing of it is left running, and the agent cleans up its bundle and mount.
  ASSERT_EQ(fleet_.flotctl({"delete", "workload", "web"}).exit_code, 0);
  ASSERT_TRUE(eventually([&] { return container_pids("web").empty() && bundles() == 0; }, 30s))
      << bundles() << " bundles left";
}

TEST_F(ContainerFleet, OomKilledAndACorruptImageAreReported) {
  ASSERT_EQ(push("app:1", looping_image("v1")), "");
  // A layer corrupted in the registry's storage: the pull must refuse it.
  TestImage bad = looping_image("bad");
  bad.files["/payload"] = std::string(100000, 'x') + "unique-bad-layer";
  ASSERT_EQ(push("bad:1", bad), "");
  auto manifest = run_command({find_executable("skopeo"), "inspect", "--raw", "--tls-verify=false",
                               "docker://" + registry_->host() + "/bad:1"});
  ASSERT_EQ(manifest.exit_code, 0) << manifest.err;
  json layers = json::parse(manifest.out)["layers"];
  std::string layer = layers.back()["digest"];
  std::string blob = registry_->blob_path(layer);
  auto bytes = fs::read_file(blob);
  ASSERT_TRUE(bytes.ok()) << blob;
  std::string corrupted = *bytes;
  for (size_t i = corrupted.size() / 2; i < corrupted.size() / 2 + 16; ++i) corrupted[i] ^= 0x5a;
  ASSERT_TRUE(fs::write_atomic(blob, corrupted).ok());

  const std::string limits = "  restartPolicy: Never\n  resources:\n    memory: 32Mi\n";
  std::string hog =
      container_manifest("hog", registry_->host() + "/app:1", fleet_.dir().path(), limits);
  hog += "    command: [/bin/sh, -c, 'tail /dev/zero']\n";
  ASSERT_EQ(fleet_.apply(hog).exit_code, 0);
  ASSERT_EQ(
      fleet_
          .apply(container_manifest("corrupt", registry_->host() + "/bad:1", fleet_.dir().path()),
                 "bad.yaml")
          .exit_code,
      0);

  ASSERT_TRUE(eventually([&] { return instance("hog").value("reason", "") == "OOMKilled"; }, 60s))
      << fleet_.get("workload", "hog").dump(2) << fleet_.dump_logs();
  EXPECT_EQ(instance("hog")["phase"], "Failed");
  EXPECT_EQ(instance("hog")["exitCode"], 137);

  ASSERT_TRUE(eventually(
      [&] {
        json i = instance("corrupt");
        return i.value("reason", "") == "PullBackOff" &&
               i.value("message", "").find("digest") != std::string::npos;
      },
      60s))
      << fleet_.get("workload", "corrupt").dump(2);
  EXPECT_EQ(instance("corrupt")["phase"], "Pending");
  EXPECT_TRUE(container_pids("corrupt").empty()) << "a container started from a corrupt image";

  // The exited container's cgroup and rootfs stay until its workload is deleted.
  EXPECT_EQ(bundles(), 1u);
  ASSERT_EQ(fleet_.flotctl({"delete", "workload", "hog"}).exit_code, 0);
  ASSERT_TRUE(eventually([&] { return bundles() == 0; }, 30s));
}

}  // namespace
}  // namespace flotilla::testing
