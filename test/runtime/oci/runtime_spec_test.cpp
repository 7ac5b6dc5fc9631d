// The container driver's pure parts: the generated runtime spec, the Kubernetes command rule,
// environment merging, user lookup in untrusted passwd/group files, the OOM counter parser and
// container names. No runtime needed.
#include <gtest/gtest.h>

#include "common/fs.hpp"
#include "runtime/oci/cgroup_paths.hpp"
#include "runtime/oci/container_driver.hpp"
#include "runtime/oci/runtime_spec.hpp"
#include "runtime/oci/user_lookup.hpp"
#include "test/runtime/runtime_test_util.hpp"

namespace flotilla::runtime::oci {
namespace {

using Strings = std::vector<std::string>;

image::ImageConfig image_with(Strings entrypoint, Strings cmd) {
  image::ImageConfig c;
  c.entrypoint = std::move(entrypoint);
  c.cmd = std::move(cmd);
  return c;
}

ContainerLaunch launch_with(Strings command, Strings args) {
  ContainerLaunch l;
  l.command = std::move(command);
  l.args = std::move(args);
  return l;
}

TEST(ProcessArgs, FollowKubernetesCommandAndArgs) {
  auto image = image_with({"/entry", "-x"}, {"default", "cmd"});
  EXPECT_EQ(*process_args(launch_with({}, {}), image), (Strings{"/entry", "-x", "default", "cmd"}));
  EXPECT_EQ(*process_args(launch_with({}, {"mine"}), image), (Strings{"/entry", "-x", "mine"}));
  EXPECT_EQ(*process_args(launch_with({"/bin/other"}, {}), image), (Strings{"/bin/other"}));
  EXPECT_EQ(*process_args(launch_with({"/bin/other"}, {"a"}), image), (Strings{"/bin/other", "a"}));
  EXPECT_EQ(*process_args(launch_with({}, {}), image_with({}, {"sh"})), (Strings{"sh"}));
  auto none = process_args(launch_with({}, {}), image_with({}, {}));
  ASSERT_FALSE(none);
  EXPECT_NE(none.error().message().find("no command"), std::string::npos);
}

TEST(ProcessEnv, SpecOverridesImageAndDefaultsFillGaps) {
  auto env = process_env({"A=image", "B=image", "PATH=/opt/bin", "junk"},
                         {{"B", "spec"}, {"C", "x=y"}}, "/home/app");
  EXPECT_EQ(env,
            (Strings{"A=image", "B=spec", "PATH=/opt/bin", "junk", "C=x=y", "HOME=/home/app"}));
  auto bare = process_env({}, {}, "");
  EXPECT_EQ(bare, (Strings{kDefaultPath, "HOME=/"}));
}

LaunchSpec container_spec() {
  LaunchSpec s;
  s.type = "container";
  s.instance_id = "web-1";
  s.container.image = "busybox";
  s.container.command = {"sh"};
  return s;
}

RuntimeSpecInput input() {
  RuntimeSpecInput in;
  in.rootfs = "/data/bundles/web-1/rootfs";
  in.user = {1000, 1000, "/home/app"};
  in.cgroups_path = "/flotilla/web-1";
  in.hostname = "web-1";
  return in;
}

TEST(RuntimeSpec, CarriesLimitsNamespacesAndMounts) {
  LaunchSpec s = container_spec();
  s.cpu_millis = 500;
  s.memory_bytes = 64 << 20;
  s.container.pids_limit = 32;
  s.container.read_only_root = true;
  s.container.mounts = {{"/srv/data", "/data", true}, {"/srv/cache", "/cache", false}};
  RuntimeSpecInput in = input();
  in.limit_swap = true;
  auto spec = make_runtime_spec(s, {}, in);
  ASSERT_TRUE(spec) << spec.error().message();
  const auto& j = *spec;
  EXPECT_EQ(j["process"]["user"]["uid"], 1000);
  EXPECT_EQ(j["process"]["cwd"], "/");
  EXPECT_EQ(j["process"]["terminal"], false);
  EXPECT_EQ(j["root"]["readonly"], true);
  EXPECT_EQ(j["root"]["path"], in.rootfs);
  EXPECT_EQ(j["linux"]["cgroupsPath"], "/flotilla/web-1");
  const auto& r = j["linux"]["resources"];
  EXPECT_EQ(r["cpu"]["quota"], 50000);
  EXPECT_EQ(r["cpu"]["period"], 100000);
  EXPECT_EQ(r["memory"]["limit"], 64 << 20);
  EXPECT_EQ(r["memory"]["swap"], 64 << 20);
  EXPECT_EQ(r["pids"]["limit"], 32);
  std::set<std::string> namespaces;
  for (const auto& ns : j["linux"]["namespaces"]) namespaces.insert(ns["type"]);
  EXPECT_EQ(namespaces, (std::set<std::string>{"pid", "ipc", "uts", "mount"}));  // host network
  std::map<std::string, nlohmann::json> mounts;
  for (const auto& m : j["mounts"]) mounts[m["destination"]] = m;
  for (const char* d : {"/proc", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue", "/sys"}) {
    EXPECT_TRUE(mounts.count(d)) << d;
  }
  EXPECT_EQ(mounts["/data"]["source"], "/srv/data");
  EXPECT_NE(mounts["/data"]["options"].dump().find("\"ro\""), std::string::npos);
  EXPECT_NE(mounts["/cache"]["options"].dump().find("\"rw\""), std::string::npos);

  s.container.host_network = false;
  s.cpu_millis = 1;  // below the kernel's minimum quota: clamped, not rejected
  spec = make_runtime_spec(s, {}, input());
  ASSERT_TRUE(spec);
  EXPECT_NE((*spec)["linux"]["namespaces"].dump().find("network"), std::string::npos);
  EXPECT_EQ((*spec)["linux"]["resources"]["cpu"]["quota"], 1000);
  EXPECT_FALSE((*spec)["linux"]["resources"]["memory"].contains("swap"));
}

TEST(RuntimeSpec, RejectsWhatCannotBeRun) {
  auto message = [](LaunchSpec s) {
    auto spec = make_runtime_spec(s, {}, input());
    return spec ? std::string("ok") : spec.error().message();
  };
  LaunchSpec s = container_spec();
  s.container.workdir = "relative";
  EXPECT_NE(message(s).find("not an absolute path"), std::string::npos);
  s = container_spec();
  s.container.mounts = {{"/srv", "/../etc", false}};
  EXPECT_NE(message(s).find("without '..'"), std::string::npos);
  s = container_spec();
  s.env = {{"A=B", "x"}};
  EXPECT_NE(message(s).find("bad environment variable"), std::string::npos);
  s = container_spec();
  s.memory_bytes = -1;
  EXPECT_NE(message(s).find("negative"), std::string::npos);
}

TEST(UserLookup, ParsesOnlyWellFormedEntries) {
  auto users = parse_passwd(
      "root:x:0:0:root:/root:/bin/sh\n# comment\n\nbroken\nbad:x:notanumber:0::/:/bin/sh\n"
      "big:x:4294967295:0::/:/bin/sh\napp:x:1000:100:App:/home/app:/bin/sh\n:x:1:1::/:\n");
  ASSERT_EQ(users.size(), 2u);
  EXPECT_EQ(users[1].name, "app");
  EXPECT_EQ(users[1].gid, 100u);
  EXPECT_EQ(users[1].home, "/home/app");
  auto groups = parse_group("staff:x:50:app\nx:y\nodd:x:-1:\n");
  ASSERT_EQ(groups.size(), 1u);
  EXPECT_EQ(groups[0].gid, 50u);
  EXPECT_FALSE(parse_id(""));
  EXPECT_FALSE(parse_id("12345678901"));
  EXPECT_FALSE(parse_id("+1"));
  EXPECT_EQ(*parse_id("4294967294"), 4294967294u);
}

TEST(UserLookup, ResolvesNamesFromTheRootfsAndRefusesSymlinks) {
  testing::TempDir tmp;
  const std::string root = tmp.path();
  ASSERT_TRUE(fs::make_dirs(root + "/etc"));
  ASSERT_TRUE(fs::write_atomic(root + "/etc/passwd", "app:x:1000:1000::/home/app:/bin/sh\n"));
  ASSERT_TRUE(fs::write_atomic(root + "/etc/group", "staff:x:50:\n"));
  auto ids = resolve_user(root, "app:staff");
  ASSERT_TRUE(ids) << ids.error().message();
  EXPECT_EQ(ids->uid, 1000u);
  EXPECT_EQ(ids->gid, 50u);
  ids = resolve_user(root, "1000");  // primary group from passwd
  ASSERT_TRUE(ids);
  EXPECT_EQ(ids->gid, 1000u);
  ids = resolve_user(root, "77:88");
  ASSERT_TRUE(ids);
  EXPECT_EQ(ids->uid, 77u);
  EXPECT_EQ(ids->gid, 88u);
  ids = resolve_user(root, "");
  ASSERT_TRUE(ids);
  EXPECT_EQ(ids->uid, 0u);
  EXPECT_FALSE(resolve_user(root, "app:"));
  EXPECT_FALSE(resolve_user(root, ":1"));
  EXPECT_FALSE(resolve_user(root, "app:nogroup"));

  // An image whose /etc/passwd points at a host file gets no names resolved through it.
  ASSERT_TRUE(fs::remove_all(root + "/etc/passwd"));
  std::string host_file = root + "/host-passwd";
  ASSERT_TRUE(fs::write_atomic(host_file, "secret:x:5:5::/:/bin/sh\n"));
  ASSERT_EQ(::symlink(host_file.c_str(), (root + "/etc/passwd").c_str()), 0);
  auto refused = resolve_user(root, "secret");
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().message().find("no user 'secret'"), std::string::npos);
}

TEST(OomKillCount, ReadsV1AndV2Files) {
  EXPECT_EQ(*parse_oom_kill("oom_kill_disable 0\nunder_oom 0\noom_kill 3\n"), 3u);
  EXPECT_EQ(*parse_oom_kill("low 0\nhigh 0\nmax 5\noom 1\noom_kill 1\noom_group_kill 0\n"), 1u);
  EXPECT_FALSE(parse_oom_kill(""));
  EXPECT_FALSE(parse_oom_kill("oom_kill -1\n"));
  EXPECT_FALSE(parse_oom_kill("oom_kill 99999999999999999999999\n"));
  EXPECT_FALSE(parse_oom_kill("oom_kill"));
}

TEST(ContainerName, KeepsSafeIdsAndKeepsOthersDistinct) {
  EXPECT_EQ(container_name("web-1.a_b+c"), "web-1.a_b+c");
  std::string a = container_name("web:1"), b = container_name("web@1");
  EXPECT_NE(a, b);
  EXPECT_EQ(a.rfind("web_1-", 0), 0u) << a;
  EXPECT_EQ(a, container_name("web:1"));
  EXPECT_EQ(container_name(a), a);  // a sanitised name is itself a safe id
}

}  // namespace
}  // namespace flotilla::runtime::oci
