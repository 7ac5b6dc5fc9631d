// The OCI runtime-spec configuration (config.json) of one container, generated from a
// LaunchSpec and the image it runs: the process (args, env, cwd, user), the root filesystem,
// mounts, namespaces and cgroup limits. Pure functions: no file is read or written here.
//
// Kubernetes semantics for the command line: `command` replaces the image's ENTRYPOINT and
// `args` replaces its CMD; a `command` given without `args` drops the image's CMD too.
//
// Thread-safety: stateless functions.
#pragma once

#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/expected.hpp"
#include "runtime/driver.hpp"
#include "runtime/image/image_source.hpp"
#include "runtime/oci/user_lookup.hpp"

namespace flotilla::runtime::oci {

inline constexpr const char* kDefaultPath =
    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
inline constexpr int64_t kCpuPeriodMicros = 100000;

struct RuntimeSpecInput {
  std::string rootfs;        // absolute path of this instance's root filesystem
  UserIds user;              // resolved from the spec's (or the image's) user
  std::string cgroups_path;  // the container's own cgroup
  std::string hostname;
  bool limit_swap = false;  // memory+swap limited to the memory limit (no swapping)
};

// The process arguments: the Kubernetes rule above applied to the image's entrypoint and cmd.
Expected<std::vector<std::string>> process_args(const ContainerLaunch& launch,
                                                const image::ImageConfig& image);

// The image's environment overridden by the spec's; PATH defaulted, HOME from the user's entry.
std::vector<std::string> process_env(const std::vector<std::string>& image_env,
                                     const std::map<std::string, std::string>& spec_env,
                                     const std::string& home);

// The user the container runs as: the spec's, else the image's ("" = root).
std::string effective_user(const ContainerLaunch& launch, const image::ImageConfig& image);

Expected<nlohmann::json> make_runtime_spec(const LaunchSpec& spec, const image::ImageConfig& image,
                                           const RuntimeSpecInput& input);

}  // namespace flotilla::runtime::oci
