// Deterministic test payloads that look like filesystem images: runs of random bytes (compressed
// data, binaries) between repetitive text-like runs, and "updates" that rewrite runs in place.
#pragma once

#include <cstdint>
#include <random>
#include <string>

namespace flotilla::ota::testing {

inline std::string make_image(size_t size, uint32_t seed) {
  std::mt19937 rng(seed);
  std::string out;
  out.reserve(size);
  const std::string words[] = {"config ", "lib/", "usr/share/", "0000", "\n", "ELF", "ok "};
  while (out.size() < size) {
    const size_t run = 512 + rng() % 8192;
    if (rng() % 2 == 0) {
      for (size_t i = 0; i < run && out.size() < size; ++i) out.push_back(static_cast<char>(rng()));
    } else {
      while (out.size() < size && run > 0) {
        out += words[rng() % std::size(words)];
        if (out.size() % 8192 < 8) break;
      }
    }
  }
  out.resize(size);
  return out;
}

// Rewrites about `percent` of `image` in runs of 256..4095 bytes spread across it.
inline std::string change_image(std::string image, double percent, uint32_t seed) {
  std::mt19937 rng(seed);
  const auto target = static_cast<size_t>(static_cast<double>(image.size()) * percent / 100.0);
  size_t changed = 0;
  while (changed < target) {
    const size_t run = 256 + rng() % 3840;
    const size_t at = rng() % (image.size() - run);
    for (size_t i = 0; i < run; ++i) image[at + i] = static_cast<char>(rng());
    changed += run;
  }
  return image;
}

}  // namespace flotilla::ota::testing
