// flotilla-ota-delta-bench: delta size and speed of Flotilla's OTA deltas (zstd patch-from,
// ota/delta.hpp) next to xdelta3 and bsdiff, on the same synthetic image pair, in one run.
//
//   flotilla-ota-delta-bench [--size-mib 64] [--percents 1,10] [--seed 1] [--level 19] [--dir D]
//
// The base image is deterministic (seeded) and shaped like a root filesystem: 4 KiB blocks of
// random bytes (compressed files, binaries' code), text-like repeats (configs, scripts), zeros
// (free space) and small-integer tables. Each new version rewrites runs of 4..64 KiB in place
// across the image (files replaced by an update) until the given percent of bytes changed. Every
// tool's make and apply run in a child process (fork, or exec for the command-line tools), timed
// by the wall clock with the child's peak RSS from wait4(); every result is compared with the
// new image byte for byte. Prints a Markdown table (bench/run ota-delta puts it in RESULTS.md).
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "common/fs.hpp"
#include "ota/delta.hpp"

namespace {

using flotilla::ota::apply_delta;
using flotilla::ota::make_delta;

constexpr size_t kBlock = 4096;

struct Run {
  double seconds = 0;
  double peak_mib = 0;
  bool ok = false;
};

// Runs `body` in a forked child (its exit status is the result) and measures it.
Run in_child(const std::function<bool()>& body) {
  const auto start = std::chrono::steady_clock::now();
  const pid_t pid = fork();
  if (pid == 0) _exit(body() ? 0 : 1);
  int status = 0;
  rusage usage{};
  wait4(pid, &status, 0, &usage);
  Run r;
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  r.peak_mib = static_cast<double>(usage.ru_maxrss) / 1024.0;
  r.ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
  return r;
}

Run command(const std::vector<std::string>& argv) {
  return in_child([&] {
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    execvp(args[0], args.data());
    std::perror(args[0]);
    return false;
  });
}

void fill_block(std::string& img, size_t at, std::mt19937_64& rng) {
  static const char* kWords[] = {"root:x:0:0:",  "/usr/lib/", "ExecStart=", "127.0.0.1 ",
                                 "export PATH=", "\n",        "#include <", "enabled=1 "};
  const size_t kind = rng() % 10;
  char* p = img.data() + at;
  if (kind < 4) {  // compressed or code: incompressible
    for (size_t i = 0; i < kBlock; i += 8) {
      const uint64_t v = rng();
      std::memcpy(p + i, &v, 8);
    }
  } else if (kind < 7) {  // text
    size_t i = 0;
    while (i < kBlock) {
      const char* w = kWords[rng() % std::size(kWords)];
      for (size_t k = 0; w[k] != '\0' && i < kBlock; ++k) p[i++] = w[k];
      if (rng() % 4 == 0 && i < kBlock) p[i++] = static_cast<char>('a' + rng() % 26);
    }
  } else if (kind < 9) {  // free space
    std::memset(p, 0, kBlock);
  } else {  // tables of small integers
    for (size_t i = 0; i < kBlock; i += 4) {
      const uint32_t v = static_cast<uint32_t>(rng() % 4096);
      std::memcpy(p + i, &v, 4);
    }
  }
}

std::string make_base(size_t size, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::string img(size, '\0');
  for (size_t at = 0; at + kBlock <= size; at += kBlock) fill_block(img, at, rng);
  return img;
}

std::string make_update(std::string img, double percent, uint64_t seed) {
  std::mt19937_64 rng(seed);
  const auto target = static_cast<size_t>(static_cast<double>(img.size()) * percent / 100.0);
  const size_t blocks = img.size() / kBlock;
  size_t changed = 0;
  while (changed < target) {
    const size_t run = 1 + rng() % 16;  // 4..64 KiB
    const size_t first = rng() % (blocks - run);
    for (size_t b = first; b < first + run; ++b) fill_block(img, b * kBlock, rng);
    changed += run * kBlock;
  }
  return img;
}

uint64_t file_size(const std::string& path) {
  std::error_code ec;
  auto n = std::filesystem::file_size(path, ec);
  return ec ? 0 : n;
}

bool same_file(const std::string& a, const std::string& b) {
  auto x = flotilla::fs::read_file(a);
  auto y = flotilla::fs::read_file(b);
  return x && y && *x == *y;
}

std::string fixed(double v, int digits) {
  std::ostringstream s;
  s.setf(std::ios::fixed);
  s.precision(digits);
  s << v;
  return s.str();
}

}  // namespace

int main(int argc, char** argv) {
  size_t size_mib = 64;
  std::vector<double> percents = {1, 10};
  uint64_t seed = 1;
  int level = 19;
  std::string dir;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    const std::string v = i + 1 < argc ? argv[i + 1] : "";
    if (a == "--size-mib") {
      size_mib = std::stoul(v), ++i;
    } else if (a == "--seed") {
      seed = std::stoull(v), ++i;
    } else if (a == "--level") {
      level = std::stoi(v), ++i;
    } else if (a == "--dir") {
      dir = v, ++i;
    } else if (a == "--percents") {
      percents.clear();
      std::stringstream ss(v);
      for (std::string p; std::getline(ss, p, ',');) percents.push_back(std::stod(p));
      ++i;
    } else {
      std::cerr << "usage: flotilla-ota-delta-bench [--size-mib N] [--percents 1,10] [--seed S]"
                   " [--level L] [--dir DIR]\n";
      return 2;
    }
  }
  bool own_dir = false;
  if (dir.empty()) {
    char tmpl[] = "/tmp/flotilla-ota-delta.XXXXXX";
    if (mkdtemp(tmpl) == nullptr) return 1;
    dir = tmpl;
    own_dir = true;
  }
  const size_t size = size_mib << 20;
  const std::string base = dir + "/base.img";
  if (!flotilla::fs::write_atomic(base, make_base(size, seed)).ok()) return 1;

  std::cout << "| change | tool | delta bytes | % of full | make s | make peak RSS MiB | apply s |"
               " apply peak RSS MiB | result |\n"
               "|---|---|---|---|---|---|---|---|---|\n";
  bool all_ok = true;
  for (double pct : percents) {
    const std::string tag = fixed(pct, pct < 1 ? 1 : 0) + "%";
    const std::string next = dir + "/new-" + tag + ".img";
    if (!flotilla::fs::write_atomic(
             next, make_update(flotilla::fs::read_file(base).value(), pct, seed + 1000))
             .ok()) {
      return 1;
    }
    struct Tool {
      std::string name;
      std::function<Run(const std::string&)> make;
      std::function<Run(const std::string&, const std::string&)> apply;
    };
    const std::vector<Tool> tools = {
        {"zstd -19 (full payload, no delta)",
         [&](const std::string& out) {
           return command({"zstd", "-q", "-f", "-19", "-T1", next, "-o", out});
         },
         [&](const std::string& in, const std::string& out) {
           return command({"zstd", "-q", "-f", "-d", in, "-o", out});
         }},
        {"**flotilla zstd patch-from -" + std::to_string(level) + "**",
         [&](const std::string& out) {
           return in_child([&] {
             flotilla::ota::DeltaOptions options;
             options.level = level;
             auto d = make_delta(base, next, out, options);
             if (!d) std::cerr << d.error().message() << "\n";
             return d.ok();
           });
         },
         [&](const std::string& in, const std::string& out) {
           return in_child([&] {
             auto r = apply_delta(base, in, out, size);
             if (!r) std::cerr << r.error().message() << "\n";
             return r.ok();
           });
         }},
        {"xdelta3 -e -s (default -3)",
         [&](const std::string& out) {
           return command({"xdelta3", "-e", "-f", "-s", base, next, out});
         },
         [&](const std::string& in, const std::string& out) {
           return command({"xdelta3", "-d", "-f", "-s", base, in, out});
         }},
        {"xdelta3 -9 -e -s",
         [&](const std::string& out) {
           return command({"xdelta3", "-9", "-e", "-f", "-s", base, next, out});
         },
         [&](const std::string& in, const std::string& out) {
           return command({"xdelta3", "-d", "-f", "-s", base, in, out});
         }},
        {"bsdiff",
         [&](const std::string& out) {
           return command({"bsdiff", base, next, out});
         },
         [&](const std::string& in, const std::string& out) {
           return command({"bspatch", base, out, in});
         }},
    };
    for (const auto& tool : tools) {
      const std::string delta = dir + "/delta-" + tag;
      const std::string out = dir + "/out-" + tag;
      std::remove(delta.c_str());
      std::remove(out.c_str());
      const Run made = tool.make(delta);
      const uint64_t bytes = file_size(delta);
      const Run applied = made.ok ? tool.apply(delta, out) : Run{};
      const bool ok = made.ok && applied.ok && same_file(out, next);
      all_ok = all_ok && ok;
      std::cout << "| " << tag << " | " << tool.name << " | " << bytes << " | "
                << fixed(100.0 * static_cast<double>(bytes) / static_cast<double>(size), 2) << " | "
                << fixed(made.seconds, 1) << " | " << fixed(made.peak_mib, 0) << " | "
                << fixed(applied.seconds, 2) << " | " << fixed(applied.peak_mib, 0) << " | "
                << (ok ? "identical" : "FAILED") << " |" << std::endl;
      std::remove(delta.c_str());
      std::remove(out.c_str());
    }
    std::remove(next.c_str());
  }
  std::cout << "\nImage: " << size_mib << " MiB, seed " << seed
            << "; changes rewrite 4-64 KiB runs in place; % of full = delta / uncompressed image."
            << std::endl;
  if (own_dir) flotilla::fs::remove_all(dir).ok();
  return all_ok ? 0 : 1;
}
