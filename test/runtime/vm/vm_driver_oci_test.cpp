// VmDriver with a disk image shipped as an OCI image (oci://, KubeVirt's containerDisk: one file
// in /disk/), pulled from a real docker-registry through the agent's ImageStore.
#include <gtest/gtest.h>

#include "common/fs.hpp"
#include "common/sha256.hpp"
#include "runtime/image/image_store.hpp"
#include "runtime/vm/vm_driver.hpp"
#include "test/support/oci_registry.hpp"
#include "test/support/peers.hpp"
#include "test/support/temp_dir.hpp"

namespace flotilla::runtime::vm {
namespace {

using namespace std::chrono_literals;
using flotilla::testing::eventually;
using flotilla::testing::TempDir;

class VmOciImageTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (std::string missing = flotilla::testing::oci_tools_missing(); !missing.empty()) {
      GTEST_SKIP() << missing;
    }
    if (flotilla::testing::find_executable("qemu-img").empty()) GTEST_SKIP() << "no qemu-img";
    registry_ =
        std::make_unique<flotilla::testing::Registry>(tmp_.path(), flotilla::testing::free_port());
    ASSERT_TRUE(registry_->start()) << registry_->log();
    image::ImageStoreConfig config;
    config.root = tmp_ / "images";
    config.registry.insecure = {registry_->host()};
    store_ = std::make_unique<image::ImageStore>(config);
    ASSERT_TRUE(store_->start().ok());
    VmDriver::Options options;
    options.images = store_.get();
    driver_ = std::make_unique<VmDriver>(tmp_ / "vm", FLOTILLA_SHIM_PATH, options);
  }

  Preparation settle(const LaunchSpec& spec) {
    Preparation p;
    EXPECT_TRUE(eventually(
        [&] {
          p = driver_->prepare(spec);
          return p.state != Preparation::State::kInProgress;
        },
        30s));
    return p;
  }

  LaunchSpec spec_for(const std::string& repo_tag, const std::string& sha256) {
    LaunchSpec spec;
    spec.type = "vm";
    spec.instance_id = "appliance-1";
    spec.vm.image = "oci://" + registry_->host() + "/" + repo_tag;
    spec.vm.sha256 = sha256;
    return spec;
  }

  TempDir tmp_;
  std::unique_ptr<flotilla::testing::Registry> registry_;
  std::unique_ptr<image::ImageStore> store_;
  std::unique_ptr<VmDriver> driver_;
};

TEST_F(VmOciImageTest, TheDiskInAnOciImageIsPulledVerifiedAndCached) {
  const std::string disk(1 << 20, 'd');
  flotilla::testing::TestImage image;
  image.files["/disk/appliance.raw"] = disk;
  ASSERT_EQ(
      flotilla::testing::push_test_image(tmp_ / "build", image, registry_->host(), "disk", "1"),
      "");
  const std::string sha = flotilla::sha256_hex(disk);
  Preparation p = settle(spec_for("disk:1", sha));
  ASSERT_EQ(p.state, Preparation::State::kReady) << p.message;
  EXPECT_TRUE(fs::exists(tmp_ / ("vm/images/sha256/" + sha)))
      << "the disk is not in the VM disk cache";
  auto argv = driver_->command_for(spec_for("disk:1", sha));
  ASSERT_TRUE(argv.ok()) << argv.error().message();

  // A digest that is not the disk's: refused, nothing cached under it.
  const std::string wrong(64, 'e');
  p = settle(spec_for("disk:1", wrong));
  EXPECT_EQ(p.state, Preparation::State::kFailed);
  EXPECT_NE(p.message.find("digest mismatch"), std::string::npos) << p.message;
  EXPECT_FALSE(fs::exists(tmp_ / ("vm/images/sha256/" + wrong)));
}

TEST_F(VmOciImageTest, AnImageWithoutADiskIsAClearFailure) {
  flotilla::testing::TestImage image;  // busybox only, no /disk/
  ASSERT_EQ(
      flotilla::testing::push_test_image(tmp_ / "build", image, registry_->host(), "nodisk", "1"),
      "");
  Preparation p = settle(spec_for("nodisk:1", std::string(64, 'a')));
  EXPECT_EQ(p.state, Preparation::State::kFailed);
  EXPECT_NE(p.message.find("/disk/ folder holds no disk file"), std::string::npos) << p.message;
  auto handle = driver_->launch(spec_for("nodisk:1", std::string(64, 'a')));
  EXPECT_FALSE(handle.ok());
}

}  // namespace
}  // namespace flotilla::runtime::vm
