// ContainerDriver: the `container` runtime driver. It runs an OCI image, prepared by an
// image::ImageSource, with crun or runc -- no daemon beside the agent.
//
// Each instance runs under its own flotilla-oci-monitor (monitor_main.cpp): a detached
// supervisor like the process driver's flotilla-shim, which leads its own session, starts the
// container with `<runtime> run --detach` on pipes the container inherits, copies its output into
// size-capped logs, forwards SIGTERM, waits for the container's init and writes an exit record.
// The monitor leaves its records where the process driver keeps a shim's, so a ProcessDriver over
// `<root>/shim` observes, stops, cleans up and recovers it (pid + start time, never relaunching).
// Handle.pid is the monitor's pid. The container's cgroup stays until cleanup(), so observe()
// can tell an OOM kill ("OOMKilled") from other SIGKILLs.
//
// On-disk layout under `root` (the agent passes <data>/runtime/container):
//   state/<name>/                   the runtime's state (its --root): Flotilla's containers only
//   bundles/<id>/config.json        the generated runtime spec
//   bundles/<id>/rootfs, upper/, work/   the instance's overlay (or copied) root filesystem
//   bundles/<id>/container.pid      host pid of the container's init
//   bundles/<id>/image              the image reference it runs (for set_in_use after recover)
//   shim/instances/<id>/shim.pid, exit    the monitor's records (ProcessDriver's format)
//   shim/logs/<id>/stdout.log, stderr.log   kept after cleanup() (ProcessDriver prunes old ones)
// <name> is the instance id when the runtime accepts it as a container id, else a sanitised
// form with a hash suffix; the cgroup is <cgroup_parent>/<name>.
//
// Thread-safety: like every Driver, used by one thread. launch() blocks until the container runs
// (tens of milliseconds; at most kStartTimeout), kill(), cleanup() and exec() for one runtime
// invocation each; other calls return at once.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "runtime/driver.hpp"
#include "runtime/image/image_source.hpp"
#include "runtime/oci/command_runner.hpp"
#include "runtime/oci/oci_runtime.hpp"
#include "runtime/process_driver.hpp"

namespace flotilla::runtime::oci {

struct ContainerDriverConfig {
  std::string root;          // the driver's folder; required
  std::string runtime_path;  // crun/runc binary; empty: detected (crun if usable, else runc)
  // flotilla-shim; empty: default_shim_path(). Only its folder matters: the monitor that
  // supervises containers is looked for there unless monitor_path says otherwise.
  std::string shim_path;
  std::string monitor_path;  // flotilla-oci-monitor; empty: next to the shim
  // Parent of every container's cgroup. Absolute: from the root of each hierarchy; relative:
  // below the agent's own cgroup (keeps containers inside the agent's accounting).
  std::string cgroup_parent = "/flotilla";
};

class ContainerDriver final : public Driver {
 public:
  static constexpr std::chrono::milliseconds kStartTimeout{15000};

  // `images` and `runner` must outlive the driver; `runner` null means a SystemCommandRunner.
  static Expected<std::unique_ptr<ContainerDriver>> create(ContainerDriverConfig config,
                                                           image::ImageSource& images,
                                                           CommandRunner* runner = nullptr);

  std::string type() const override { return "container"; }
  // The image source's prepare() of spec.container.image.
  Preparation prepare(const LaunchSpec& spec) override;
  // Fails (leaving nothing behind) when the image is not prepared, the spec cannot be turned
  // into a runtime spec, or the runtime refuses it (its own message is in the Error).
  Expected<Handle> launch(const LaunchSpec& spec) override;
  // Exited containers report exit_code 128+signal when killed by one; the message starts with
  // "OOMKilled" when the kernel killed it for exceeding its memory limit.
  Observation observe(const Handle& handle) override;
  // SIGTERM to the container's init, relayed by the monitor. As pid 1 of its namespace the init
  // only sees it if it handles SIGTERM; kill() after the grace period covers the rest.
  Status terminate(const Handle& handle) override;
  // `<runtime> kill <name> KILL`; SIGKILL to the monitor's process group when the runtime has
  // nothing left to kill.
  Status kill(const Handle& handle) override;
  // Refused while the container runs. `<runtime> delete --force`, unmount, remove the bundle and
  // the monitor's records; the logs are kept.
  Status cleanup(const std::string& instance_id) override;
  // Every instance with records, a bundle or runtime state here (the agent kills and cleans up
  // those it does not know); also tells the image source which images they use.
  std::vector<Handle> recover() override;
  std::string log_path(const std::string& instance_id, bool stderr_stream) const override;

  // Runs argv inside the running container of `handle` (exec probes); its exit code.
  Expected<int> exec(const Handle& handle, const std::vector<std::string>& argv,
                     std::chrono::milliseconds timeout);

  // The container init's host pid; 0 when unknown (not started, or gone).
  int64_t container_pid(const std::string& instance_id) const;
  // The runtime binary in use, and the cgroup path (cgroupsPath) of an instance.
  const std::string& runtime_binary() const { return runtime_.binary(); }
  std::string cgroups_path(const std::string& instance_id) const;
  std::string bundle_dir(const std::string& instance_id) const;
  const std::string& state_root() const { return runtime_.state_root(); }

 private:
  ContainerDriver(ContainerDriverConfig config, std::string runtime_binary,
                  image::ImageSource& images, std::unique_ptr<CommandRunner> owned_runner,
                  CommandRunner& runner);

  Expected<Handle> start(const LaunchSpec& spec, const std::string& bundle);
  Expected<Handle> start_monitor(const LaunchSpec& spec, const std::string& bundle);
  std::string shim_instance_dir(const std::string& id) const;
  Status remove_instance(const std::string& id);
  void publish_in_use();

  ContainerDriverConfig config_;
  image::ImageSource& images_;
  std::unique_ptr<CommandRunner> owned_runner_;
  OciRuntime runtime_;
  ProcessDriver shims_;
  bool limit_swap_;
  std::map<std::string, std::string> in_use_;  // instance id -> image reference
};

// The runtime's container id (and cgroup leaf) for an instance id: the id itself when it is made
// of letters, digits and . _ - + only, else those characters kept, the rest turned to '_', and a
// hash of the whole id appended so distinct ids stay distinct.
std::string container_name(const std::string& instance_id);

}  // namespace flotilla::runtime::oci
