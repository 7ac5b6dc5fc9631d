#include "agent/launch_spec.hpp"

namespace flotilla::agent {
namespace {

constexpr const char* kDefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

runtime::ContainerLaunch container_launch(const v1::ContainerSpec& c) {
  runtime::ContainerLaunch out;
  out.image = c.image();
  out.command.assign(c.command().begin(), c.command().end());
  out.args.assign(c.args().begin(), c.args().end());
  out.workdir = c.workdir();
  out.user = c.user();
  for (const auto& m : c.mounts()) {
    out.mounts.push_back(runtime::Mount{m.source(), m.destination(), m.read_only()});
  }
  out.read_only_root = c.read_only_root();
  out.host_network = !c.private_network();
  out.pids_limit = c.pids_limit();
  return out;
}

runtime::VmLaunch vm_launch(const v1::VmSpec& v) {
  runtime::VmLaunch out;
  out.image = v.image();
  out.sha256 = v.sha256();
  out.cpus = v.cpus() > 0 ? v.cpus() : 1;
  out.memory_bytes = v.memory_bytes();
  for (const auto& p : v.ports()) {
    runtime::PortForward f;
    f.protocol = p.protocol().empty() ? "tcp" : p.protocol();
    f.host_port = static_cast<uint16_t>(p.host_port());
    f.guest_port = static_cast<uint16_t>(p.guest_port());
    out.ports.push_back(f);
  }
  out.kernel = v.kernel();
  out.initrd = v.initrd();
  out.kernel_args = v.kernel_args();
  return out;
}

}  // namespace

runtime::LaunchSpec make_launch_spec(const std::string& node, const v1::WorkloadSpec& spec,
                                     const std::string& instance_id) {
  runtime::LaunchSpec ls;
  ls.type = spec.type().empty() ? "process" : spec.type();
  ls.instance_id = instance_id;
  ls.workload = spec.name();
  ls.cpu_millis = spec.resources().cpu_millis();
  ls.memory_bytes = spec.resources().memory_bytes();
  if (ls.type == "process") {
    ls.command.assign(spec.process().command().begin(), spec.process().command().end());
    ls.env["PATH"] = kDefaultPath;
    for (const auto& [key, value] : spec.process().env()) ls.env[key] = value;
    ls.workdir = spec.process().workdir();
  } else if (ls.type == "container") {
    ls.container = container_launch(spec.container());
    for (const auto& [key, value] : spec.container().env()) ls.env[key] = value;
  } else if (ls.type == "vm") {
    ls.vm = vm_launch(spec.vm());
  }
  ls.env["FLOTILLA_NODE"] = node;
  ls.env["FLOTILLA_WORKLOAD"] = spec.name();
  ls.env["FLOTILLA_INSTANCE"] = instance_id;
  return ls;
}

}  // namespace flotilla::agent
