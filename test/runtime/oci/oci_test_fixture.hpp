// Shared pieces of the container driver's tests: a busybox root filesystem built in a temporary
// folder, a fake ImageSource over it, and a fixture parametrised by the OCI runtime (runc,
// crun) that creates a ContainerDriver over a temporary root and tears everything down.
#pragma once

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "common/fs.hpp"
#include "runtime/image/image_source.hpp"
#include "runtime/oci/cgroup_paths.hpp"
#include "runtime/oci/container_driver.hpp"
#include "runtime/oci/instance_rootfs.hpp"
#include "runtime/oci/oci_runtime.hpp"
#include "test/runtime/runtime_test_util.hpp"
#include "test/support/peers.hpp"
#include "test/support/process.hpp"

namespace flotilla::runtime::oci::testing {

using runtime::testing::eventually;
using runtime::testing::read_or_empty;
using runtime::testing::TempDir;

inline constexpr const char* kBusybox = "busybox:test";

// Makes a root filesystem of busybox-static plus a symlink per applet, /etc/passwd with root and
// "app" (1000:1000), /etc/group, and /srv. Returns an empty string (with `why` set) on failure.
inline std::string build_busybox_rootfs(const std::string& dir, std::string* why) {
  namespace stdfs = std::filesystem;
  std::string busybox = flotilla::testing::find_executable("busybox");
  if (busybox.empty()) {
    *why = "busybox is not installed";
    return "";
  }
  auto applets = flotilla::testing::run_command({busybox, "--list"});
  if (applets.exit_code != 0) {
    *why = "busybox --list failed: " + applets.err;
    return "";
  }
  std::error_code ec;
  for (const char* d : {"bin", "etc", "srv", "tmp", "root", "home/app"}) {
    stdfs::create_directories(dir + "/" + d, ec);
  }
  stdfs::copy_file(busybox, dir + "/bin/busybox", ec);
  if (ec) {
    *why = "copying busybox failed: " + ec.message();
    return "";
  }
  std::istringstream names(applets.out);
  std::string name;
  while (names >> name) {
    if (name != "busybox") stdfs::create_symlink("busybox", dir + "/bin/" + name, ec);
  }
  (void)fs::write_atomic(dir + "/etc/passwd",
                         "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\n");
  (void)fs::write_atomic(dir + "/etc/group", "root:x:0:\napp:x:1000:\nstaff:x:50:app\n");
  ::chmod((dir + "/tmp").c_str(), 01777);
  return dir;
}

// Images are folders on disk; prepare() is ready for every registered reference.
class FakeImageSource final : public image::ImageSource {
 public:
  void add(const std::string& ref, image::UnpackedImage image) {
    std::lock_guard lock(mu_);
    image.reference = ref;
    images_[ref] = std::move(image);
  }
  Preparation prepare(const std::string& ref) override {
    std::lock_guard lock(mu_);
    if (images_.count(ref)) return {};
    return {Preparation::State::kFailed, "unknown image '" + ref + "'"};
  }
  Expected<image::UnpackedImage> unpacked(const std::string& ref) override {
    std::lock_guard lock(mu_);
    auto it = images_.find(ref);
    if (it == images_.end()) return Error("image '" + ref + "' has not been pulled");
    return it->second;
  }
  void set_in_use(const std::set<std::string>& refs) override {
    std::lock_guard lock(mu_);
    in_use_ = refs;
  }
  std::set<std::string> in_use() {
    std::lock_guard lock(mu_);
    return in_use_;
  }

 private:
  std::mutex mu_;
  std::map<std::string, image::UnpackedImage> images_;
  std::set<std::string> in_use_;
};

// Removes the per-test cgroup parent folders (and any empty cgroup a failed test left below
// them) from every hierarchy.
inline void remove_cgroup_parents(const std::string& parent_name) {
  namespace stdfs = std::filesystem;
  std::vector<stdfs::path> found;
  std::error_code ec;
  for (stdfs::recursive_directory_iterator it("/sys/fs/cgroup", ec), end; !ec && it != end;
       it.increment(ec)) {
    std::error_code ec2;
    if (it.depth() > 3 || !it->is_directory(ec2)) {
      it.disable_recursion_pending();
      continue;
    }
    if (it->path().filename() == parent_name) {
      it.disable_recursion_pending();
      found.push_back(it->path());
    }
  }
  for (const stdfs::path& parent : found) {
    std::vector<std::string> dirs;
    for (stdfs::recursive_directory_iterator it(parent, ec), end; !ec && it != end;
         it.increment(ec)) {
      std::error_code ec2;
      if (it->is_directory(ec2)) dirs.push_back(it->path().string());
    }
    std::sort(dirs.rbegin(), dirs.rend());  // children before their parents
    for (const std::string& d : dirs) ::rmdir(d.c_str());
    ::rmdir(parent.c_str());
  }
}

inline std::string runtime_name(const ::testing::TestParamInfo<std::string>& info) {
  return info.param;
}

class ContainerTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    runtime_path_ = flotilla::testing::find_executable(GetParam());
    if (runtime_path_.empty()) GTEST_SKIP() << GetParam() << " is not installed";
    if (GetParam() == "crun") {
      std::string why = crun_unsupported_reason();
      if (!why.empty()) GTEST_SKIP() << "crun cannot run containers on this node: " << why;
    }
    if (::geteuid() != 0)
      GTEST_SKIP() << "containers need root (the driver runs " << GetParam()
                   << " without user namespaces)";
    std::string why;
    rootfs_ = build_busybox_rootfs(tmp_.path() + "/image/rootfs", &why);
    ASSERT_FALSE(rootfs_.empty()) << why;
    image::UnpackedImage busybox;
    busybox.digest = "sha256:test";
    busybox.rootfs = rootfs_;
    busybox.config.cmd = {"sh"};
    busybox.config.env = {"PATH=/bin", "FROM_IMAGE=image"};
    images_.add(kBusybox, busybox);
    cgroup_parent_ = "flotilla-test-" + std::to_string(::getpid());
    driver_ = make_driver();
    ASSERT_NE(driver_, nullptr);
  }

  void TearDown() override {
    if (driver_ != nullptr) {
      for (const Handle& h : driver_->recover()) {
        (void)driver_->kill(h);
        eventually([&] { return driver_->observe(h).state != RunState::kRunning; });
        (void)driver_->cleanup(h.instance_id);
      }
    }
    remove_cgroup_parents(cgroup_parent_);
  }

  std::unique_ptr<ContainerDriver> make_driver() {
    ContainerDriverConfig config;
    config.root = tmp_.path() + "/root";
    config.runtime_path = runtime_path_;
    config.shim_path = FLOTILLA_SHIM_PATH;
    config.monitor_path = FLOTILLA_OCI_MONITOR_PATH;
    config.cgroup_parent = cgroup_parent_;  // relative: inside this test's own cgroups
    auto driver = ContainerDriver::create(config, images_);
    EXPECT_TRUE(driver) << driver.error().message();
    return driver ? std::move(*driver) : nullptr;
  }

  LaunchSpec spec(const std::string& id, std::vector<std::string> command,
                  std::vector<std::string> args = {}) {
    LaunchSpec s;
    s.type = "container";
    s.instance_id = id;
    s.workload = "test";
    s.container.image = kBusybox;
    s.container.command = std::move(command);
    s.container.args = std::move(args);
    return s;
  }

  Observation wait_exited(const Handle& h,
                          std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    Observation last;
    eventually(
        [&] {
          last = driver_->observe(h);
          return last.state != RunState::kRunning;
        },
        timeout);
    return last;
  }

  std::string out(const std::string& id) { return read_or_empty(driver_->log_path(id, false)); }
  std::string err(const std::string& id) { return read_or_empty(driver_->log_path(id, true)); }

  // Runs a container to completion and returns its stdout.
  std::string run_to_end(const LaunchSpec& s) {
    auto h = driver_->launch(s);
    EXPECT_TRUE(h) << h.error().message();
    if (!h) return "";
    Observation o = wait_exited(*h);
    EXPECT_EQ(o.state, RunState::kExited) << o.message;
    return out(s.instance_id);
  }

  std::optional<MemoryCgroup> memory_of(const std::string& id) {
    return memory_cgroup(driver_->cgroups_path(id));
  }

  TempDir tmp_;
  std::string runtime_path_;
  std::string rootfs_;
  std::string cgroup_parent_;
  FakeImageSource images_;
  std::unique_ptr<ContainerDriver> driver_;
};

}  // namespace flotilla::runtime::oci::testing
