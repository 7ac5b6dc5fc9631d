// NodeDrivers: the runtime drivers this node offers, behind one CompositeDriver: `process`
// always; `container` when crun or runc is installed (images pulled into <data>/runtime/images);
// `vm` when qemu-system and qemu-img are (KVM when usable, else TCG). What is left out, and why,
// is logged at startup; the hub schedules only what the node reports.
//
// Ownership: owns every driver and the image store. Thread-safety: as each Driver.
#pragma once

#include <memory>
#include <set>
#include <string>
#include <vector>

#include "agent/config.hpp"
#include "common/expected.hpp"
#include "runtime/composite_driver.hpp"

namespace flotilla::runtime {
class ProcessDriver;
namespace image {
class ImageStore;
}
namespace oci {
class ContainerDriver;
}
namespace vm {
class VmDriver;
}
}  // namespace flotilla::runtime

namespace flotilla::agent {

class NodeDrivers {
 public:
  static Expected<std::unique_ptr<NodeDrivers>> create(const std::string& data_dir,
                                                       const DriverOptions& options);
  ~NodeDrivers();

  runtime::Driver& driver() { return composite_; }
  std::vector<std::string> runtimes() const { return composite_.types(); }
  // "kvm" | "tcg" when the vm runtime is offered, else empty.
  std::string vm_accel() const;

 private:
  NodeDrivers() = default;

  std::unique_ptr<runtime::ProcessDriver> process_;
  std::unique_ptr<runtime::image::ImageStore> images_;
  std::unique_ptr<runtime::oci::ContainerDriver> container_;
  std::unique_ptr<runtime::vm::VmDriver> vm_;
  runtime::CompositeDriver composite_;
};

}  // namespace flotilla::agent
