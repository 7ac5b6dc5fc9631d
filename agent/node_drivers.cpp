#include "agent/node_drivers.hpp"

#include "common/log.hpp"
#include "runtime/image/image_store.hpp"
#include "runtime/oci/container_driver.hpp"
#include "runtime/process_driver.hpp"
#include "runtime/run_command.hpp"
#include "runtime/vm/accel.hpp"
#include "runtime/vm/vm_driver.hpp"

namespace flotilla::agent {
namespace {

bool on_path(const std::string& program) {
  auto r = runtime::run_command({"sh", "-c", "command -v \"$0\"", program});
  return r && r->exit_code == 0;
}

}  // namespace

NodeDrivers::~NodeDrivers() = default;

std::string NodeDrivers::vm_accel() const { return vm_ ? vm_->accel().accel : ""; }

Expected<std::unique_ptr<NodeDrivers>> NodeDrivers::create(const std::string& data_dir,
                                                           const DriverOptions& options) {
  auto log = log::get("agent");
  auto wanted = [&](const std::string& type) {
    return options.wanted.empty() || options.wanted.count(type) > 0;
  };
  std::unique_ptr<NodeDrivers> d(new NodeDrivers());
  const std::string root = data_dir + "/runtime";
  const std::string shim = runtime::default_shim_path();
  d->process_ = std::make_unique<runtime::ProcessDriver>(root + "/process", shim);
  d->composite_.add(*d->process_);

  // The image store serves container images and oci:// VM disk images.
  if (wanted("container") || wanted("vm")) {
    runtime::image::ImageStoreConfig images;
    images.root = root + "/images";
    images.registry.insecure = options.insecure_registries;
    images.disk_budget_bytes = options.image_budget_bytes;
    d->images_ = std::make_unique<runtime::image::ImageStore>(std::move(images));
    if (auto st = d->images_->start(); !st) return st.error().WithContext("image store");
  }
  if (wanted("container")) {
    runtime::oci::ContainerDriverConfig config;
    config.root = root + "/container";
    config.shim_path = shim;
    auto container = runtime::oci::ContainerDriver::create(config, *d->images_);
    if (container) {
      d->container_ = std::move(*container);
      d->composite_.add(*d->container_);
      log->info("runtime container available oci_runtime={}", d->container_->runtime_binary());
    } else if (!options.wanted.empty()) {
      return container.error().WithContext("--runtimes asks for container");
    } else {
      log->info("runtime container not offered: {}", container.error().message());
    }
  }
  if (wanted("vm")) {
    std::string qemu = runtime::vm::host_qemu_system_name();
    if (on_path(qemu) && on_path("qemu-img")) {
      runtime::vm::VmDriver::Options vm;
      vm.accel = options.vm_accel;
      vm.images = d->images_.get();
      d->vm_ = std::make_unique<runtime::vm::VmDriver>(root + "/vm", shim, vm);
      d->composite_.add(*d->vm_);
      log->info("runtime vm available accel={} why='{}'", d->vm_->accel().accel,
                d->vm_->accel().reason);
    } else if (!options.wanted.empty()) {
      return Error("--runtimes asks for vm, but " + qemu + " or qemu-img is not installed");
    } else {
      log->info("runtime vm not offered: {} or qemu-img is not installed", qemu);
    }
  }
  return d;
}

}  // namespace flotilla::agent
