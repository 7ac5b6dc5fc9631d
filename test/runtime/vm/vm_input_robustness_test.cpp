// The vm driver's decoders of untrusted input -- QMP lines from QEMU, image sources and port
// forwards from the workload spec -- on many seeded mutations of valid input: each call returns
// a value or an Error with a reason, and never crashes (run it under FLOTILLA_SANITIZE too).
// fuzz_vm_inputs.cpp holds the same checks as a libFuzzer target.
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "runtime/vm/disk_cache.hpp"
#include "runtime/vm/disk_format.hpp"
#include "runtime/vm/qemu_command.hpp"
#include "runtime/vm/qmp_client.hpp"

namespace flotilla::runtime::vm {
namespace {

const std::vector<std::string> kQmpSeeds = {
    R"({"QMP": {"version": {"qemu": {"micro": 22, "minor": 2, "major": 7}}, "capabilities": ["oob"]}})",
    R"({"return": {"status": "running", "singlestep": false, "running": true}, "id": 2})",
    R"({"error": {"class": "GenericError", "desc": "Invalid parameter"}, "id": 3})",
    R"({"timestamp": {"seconds": 1, "microseconds": 2}, "event": "SHUTDOWN", "data": {"guest": true}})",
};

const std::vector<std::string> kSourceSeeds = {"http://127.0.0.1:8080/disk.qcow2",
                                               "https://h/k#sha256=" + std::string(64, 'a'),
                                               "file:///var/lib/disk.raw", "/var/lib/disk.raw"};

std::string mutate(std::string s, std::mt19937& rng) {
  static const char kAlphabet[] = "{}[]\":,\\#/ \x00\xff\n\tsha256=0123456789abcdefQMPreturnerror";
  const std::string alphabet(kAlphabet, sizeof kAlphabet - 1);  // with the NUL inside
  int edits = 1 + static_cast<int>(rng() % 8);
  for (int i = 0; i < edits; ++i) {
    size_t pos = s.empty() ? 0 : rng() % (s.size() + 1);
    char c = alphabet[rng() % alphabet.size()];
    switch (rng() % 4) {
      case 0:
        s.insert(pos, 1, c);
        break;
      case 1:
        if (pos < s.size()) s.erase(pos, 1 + rng() % 4);
        break;
      case 2:
        if (pos < s.size()) s[pos] = c;
        break;
      default:
        if (pos < s.size()) s.insert(pos, s.substr(pos, rng() % 16));
        break;
    }
  }
  return s;
}

TEST(VmInputRobustnessTest, QmpMessagesGetAValueOrAReason) {
  std::mt19937 rng(20261130);
  for (int i = 0; i < 20000; ++i) {
    std::string line = mutate(kQmpSeeds[i % kQmpSeeds.size()], rng);
    auto msg = parse_qmp_message(line);
    if (!msg) {
      ASSERT_FALSE(msg.error().message().empty()) << line;
    }
  }
}

TEST(VmInputRobustnessTest, ImageSourcesAndPortForwardsGetAValueOrAReason) {
  std::mt19937 rng(7);
  for (int i = 0; i < 20000; ++i) {
    std::string location = mutate(kSourceSeeds[i % kSourceSeeds.size()], rng);
    std::string digest = i % 3 == 0 ? mutate(std::string(64, 'b'), rng) : "";
    auto source = parse_disk_source(location, digest);
    if (!source) {
      ASSERT_FALSE(source.error().message().empty()) << location;
      continue;
    }
    // What parses is something the cache can name and fetch.
    ASSERT_TRUE(source->sha256.empty() || source->sha256.size() == 64) << location;
    ASSERT_TRUE(!source->url.empty() || !source->local_path.empty()) << location;

    PortForward port{i % 2 ? "tcp" : mutate("udp", rng), static_cast<uint16_t>(rng()),
                     static_cast<uint16_t>(rng()), mutate("127.0.0.1", rng)};
    auto netdev = user_netdev({port});
    if (netdev) {
      // Accepted forwards never smuggle another option into QEMU's -netdev string.
      ASSERT_EQ(netdev->find(",hostfwd="), netdev->rfind(",hostfwd=")) << *netdev;
      ASSERT_EQ(std::count(netdev->begin(), netdev->end(), ','), 2) << *netdev;
    } else {
      ASSERT_FALSE(netdev.error().message().empty());
    }
  }
}

TEST(VmInputRobustnessTest, DiskHeadersGetAFormatOrAReason) {
  std::mt19937 rng(104);
  std::string qcow2(kDiskHeaderBytes, '\0');
  qcow2.replace(0, 4, std::string("QFI\xfb", 4));
  qcow2[7] = 3;
  for (int i = 0; i < 20000; ++i) {
    std::string head = mutate(qcow2, rng).substr(0, kDiskHeaderBytes);
    auto format = parse_disk_header(head);
    if (format) {
      ASSERT_TRUE(*format == "raw" || *format == "qcow2");
    } else {
      ASSERT_FALSE(format.error().message().empty());
    }
  }
}

}  // namespace
}  // namespace flotilla::runtime::vm
