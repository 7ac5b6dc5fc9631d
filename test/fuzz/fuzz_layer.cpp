// fuzz_layer: apply_layer (runtime/image/layer_unpack.hpp) on arbitrary layer bytes (tar, gzip or
// zstd: libarchive detects which), unpacked into a fresh root folder inside a fresh sandbox.
//
// Invariants: nothing crashes; a rejection has a reason; whatever happens, nothing is written
// outside the root (the sandbox holds only the root and the layer file afterwards).
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "runtime/image/layer_unpack.hpp"
#include "test/fuzz/fuzz_check.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  namespace stdfs = std::filesystem;
  static const std::string base = [] {
    char tmpl[] = "/tmp/fuzz-layer-XXXXXX";
    const char* dir = ::mkdtemp(tmpl);
    if (dir == nullptr) std::abort();
    static const std::string path = dir;
    std::atexit([] {
      std::error_code ignored;
      std::filesystem::remove_all(path, ignored);
    });
    return path;
  }();
  const std::string sandbox = base + "/s";
  std::error_code ec;
  stdfs::remove_all(sandbox, ec);
  stdfs::create_directories(sandbox + "/root", ec);
  const std::string layer = sandbox + "/layer";
  std::ofstream(layer, std::ios::binary)
      .write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  flotilla::Status st = flotilla::runtime::image::apply_layer(layer, sandbox + "/root");
  if (!st) FUZZ_CHECK(!st.error().message().empty(), "layer rejected without a reason");
  for (const auto& entry : stdfs::directory_iterator(sandbox, ec)) {
    std::string name = entry.path().filename().string();
    FUZZ_CHECK(name == "root" || name == "layer", "layer wrote outside the root: " + name);
  }
  FUZZ_CHECK(!stdfs::exists(base + "/escape", ec) && !stdfs::exists("/tmp/escape", ec),
             "layer wrote outside the sandbox");
  return 0;
}
