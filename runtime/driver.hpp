// runtime::Driver: the one interface behind which every workload type runs (process, container,
// vm; CompositeDriver routes by type), modelled on Mesos' containerizer: launch, observe,
// terminate, kill, cleanup, recover.
//
// A Handle is what the agent persists (in its SQLite store) to find an instance again after its
// own restart. Instances outlive the agent: they are never children that die with it, and
// recover() re-finds them so the agent adopts them instead of starting duplicates.
//
// All calls are non-blocking (the reconciler drives timeouts, e.g. SIGTERM then SIGKILL after
// the grace period). Thread-safety: one thread (the agent's loop) uses a Driver.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/expected.hpp"

namespace flotilla::runtime {

// A bind mount into a container (or a host folder shared with a VM, where supported).
struct Mount {
  std::string source;       // absolute host path
  std::string destination;  // absolute path inside the instance
  bool read_only = false;
};

// A host port forwarded to the instance (VMs on user-mode networking; containers on the host
// network need none).
struct PortForward {
  std::string protocol = "tcp";  // tcp | udp
  uint16_t host_port = 0;        // on 127.0.0.1 unless host_address says otherwise
  uint16_t guest_port = 0;
  std::string host_address = "127.0.0.1";
};

// The `container` section: an OCI image run by runc or crun.
struct ContainerLaunch {
  std::string image;                 // registry/repo[:tag][@sha256:...]
  std::vector<std::string> command;  // replaces the image's entrypoint when set
  std::vector<std::string> args;     // replaces the image's cmd when set
  std::string workdir;               // empty: the image's, else "/"
  std::string user;                  // "uid[:gid]"; empty: the image's, else 0:0
  std::vector<Mount> mounts;
  bool read_only_root = false;
  bool host_network = true;  // false: a private network namespace (loopback only)
  int64_t pids_limit = 0;    // 0: no limit
};

// The `vm` section: a disk image booted by qemu-system.
struct VmLaunch {
  std::string image;   // http(s):// URL, file:// path, or an OCI artifact reference
  std::string sha256;  // hex digest the image must have; required for remote images
  int64_t cpus = 1;
  int64_t memory_bytes = 0;  // 0: the driver's default
  std::vector<PortForward> ports;
  // Direct kernel boot (optional; paths on the node or URLs verified like `image`):
  std::string kernel;
  std::string initrd;
  std::string kernel_args;
};

struct LaunchSpec {
  std::string type = "process";  // which driver runs it: process | container | vm
  std::string instance_id;       // unique on the node; names the instance's folder
  std::string workload;
  std::vector<std::string>
      command;  // process: argv; command[0] is looked up in PATH if not absolute
  std::map<std::string, std::string> env;      // every type: the instance's environment
  std::string workdir;                         // process: empty means the instance folder
  uint64_t log_limit_bytes = 4 * 1024 * 1024;  // per stream; the oldest half is rotated out
  int64_t cpu_millis = 0;    // resources.cpu: a limit for container and vm, 0 = none
  int64_t memory_bytes = 0;  // resources.memory: a limit for container and vm, 0 = none
  ContainerLaunch container;
  VmLaunch vm;
};

struct Handle {
  std::string instance_id;
  int64_t pid = 0;           // the supervising process (leader of the instance's process group)
  uint64_t start_ticks = 0;  // its start time (/proc/<pid>/stat field 22): guards pid reuse
  std::string type;          // the driver that launched it (set by recover() and launch())
};

// What prepare() found: whether everything a launch needs (image, disk) is on the node.
struct Preparation {
  enum class State {
    kReady,       // launch() can start the instance now
    kInProgress,  // being fetched in the background; `message` tells how far
    kFailed,      // the last attempt failed; `message` says why and when the next one is
  };
  State state = State::kReady;
  std::string message;
  bool ready() const { return state == State::kReady; }
};

enum class RunState {
  kRunning,  // the instance is alive
  kExited,   // it ended; exit_code / signal tell how
  kUnknown,  // no process and no exit record (e.g. lost across a reboot)
};

struct Observation {
  RunState state = RunState::kUnknown;
  int exit_code = 0;    // valid when kExited and signal == 0
  int signal = 0;       // the signal that ended it, if any
  std::string message;  // human text: "exited with code 3", "killed by signal 9"
};

class Driver {
 public:
  virtual ~Driver() = default;

  virtual std::string type() const = 0;  // "process"
  // Makes sure what launching `spec` needs is on the node (pulls an image, downloads a disk),
  // never blocking: the first call starts the work in the background, later calls report on it,
  // and failures are retried with backoff by the driver itself. The agent calls it before
  // launch(), and for a changed spec before stopping the old instance (pre-pull), so a replace
  // costs a stop plus a start.
  virtual Preparation prepare(const LaunchSpec& /*spec*/) { return {}; }
  virtual Expected<Handle> launch(const LaunchSpec& spec) = 0;
  virtual Observation observe(const Handle& handle) = 0;
  virtual Status terminate(const Handle& handle) = 0;  // polite stop (SIGTERM)
  virtual Status kill(const Handle& handle) = 0;       // forced stop (SIGKILL, whole group)
  // Removes the instance's runtime state once it has stopped; logs are kept.
  virtual Status cleanup(const std::string& instance_id) = 0;
  // Every instance this driver finds on the node, alive or exited but not yet cleaned up.
  virtual std::vector<Handle> recover() = 0;
  // Runs `argv` in the instance's context (inside its container for containers; on the node for
  // processes) and returns its exit code: what exec probes use. Blocks up to `timeout` (a
  // command still running then is killed and counts as failed), so the agent calls it off its
  // loop thread: unlike the other calls, exec() may run on any thread, concurrently with them.
  virtual Expected<int> exec(const Handle& handle, const std::vector<std::string>& argv,
                             std::chrono::milliseconds timeout);
  // Where an instance's stdout and stderr logs live.
  virtual std::string log_path(const std::string& instance_id, bool stderr_stream) const = 0;
};

}  // namespace flotilla::runtime
