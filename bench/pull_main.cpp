// flotilla-pull-bench: one image pull by Flotilla's own image code (RegistryClient, BlobStore,
// Puller) into a fresh store, timed in two parts: fetch (manifest and blobs) and unpack (layers
// into the rootfs). bench/runtimes runs it against `skopeo copy` of the same image.
//
//   flotilla-pull-bench --root EMPTY_DIR --reference 127.0.0.1:5000/app:1 [--insecure HOST:PORT]
//
// Prints one JSON object: {"fetch_ms":..,"unpack_ms":..,"total_ms":..,"bytes":..,"digest":..}.
#include <chrono>
#include <iostream>

#include "common/flags.hpp"
#include "common/log.hpp"
#include "runtime/image/blob_store.hpp"
#include "runtime/image/manifest.hpp"
#include "runtime/image/puller.hpp"
#include "runtime/image/registry_client.hpp"

namespace {

namespace image = flotilla::runtime::image;
using Clock = std::chrono::steady_clock;

double ms_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

int usage_error(const flotilla::Flags& flags, const std::string& message) {
  std::cerr << "flotilla-pull-bench: " << message << "\n\n" << flags.usage();
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  flotilla::Flags flags("flotilla-pull-bench",
                        "Pulls one image into an empty store with Flotilla's image code and "
                        "prints fetch and unpack times as JSON.");
  flags.add("root", "an empty folder for the store (blobs/ and rootfs/)", "", true);
  flags.add("reference", "the image, e.g. 127.0.0.1:5000/app:1", "", true);
  flags.add("insecure", "registries (host:port,...) reached over plain http");
  flags.add("log-level", "trace|debug|info|warn|error|off", "warn");
  if (auto st = flags.parse(argc, argv); !st) return usage_error(flags, st.error().message());
  if (flags.help_requested()) {
    std::cout << flags.usage();
    return 0;
  }
  if (auto st = flotilla::log::init(flags.get("log-level")); !st) {
    return usage_error(flags, "invalid --log-level: " + st.error().message());
  }
  image::RegistryConfig registry;
  std::string insecure = flags.get("insecure");
  for (size_t from = 0; from < insecure.size();) {
    size_t comma = insecure.find(',', from);
    if (comma == std::string::npos) comma = insecure.size();
    if (comma > from) registry.insecure.insert(insecure.substr(from, comma - from));
    from = comma + 1;
  }

  const auto t0 = Clock::now();
  image::RegistryClient client(registry);
  image::BlobStore blobs(flags.get("root"));
  if (auto st = blobs.init(); !st) {
    std::cerr << "flotilla-pull-bench: " << st.error().message() << "\n";
    return 1;
  }
  image::Puller puller(flags.get("root"), client, blobs, image::host_platform());
  // The last progress call comes when every blob is present; unpacking follows.
  Clock::time_point fetched = t0;
  auto outcome = puller.pull(flags.get("reference"), [&](int done, int total) {
    if (done == total) fetched = Clock::now();
  });
  const auto t1 = Clock::now();
  if (!outcome.ok) {
    std::cerr << "flotilla-pull-bench: " << outcome.failure.error.message() << "\n";
    return 1;
  }
  std::cout << "{\"fetch_ms\":" << ms_between(t0, fetched)
            << ",\"unpack_ms\":" << ms_between(fetched, t1)
            << ",\"total_ms\":" << ms_between(t0, t1) << ",\"bytes\":" << outcome.bytes_fetched
            << ",\"digest\":\"" << outcome.digest << "\"}\n";
  return 0;
}
