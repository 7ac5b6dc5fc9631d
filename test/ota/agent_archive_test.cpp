// The agent archive (the agent and its helpers as one payload): packed deterministically, read by
// GNU tar too, read back strictly, and what build_bundle makes of an agent folder.
#include "ota/agent_archive.hpp"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstring>

#include "common/fs.hpp"
#include "ota/bundle.hpp"
#include "test/support/process.hpp"
#include "test/support/temp_dir.hpp"

namespace flotilla::ota {
namespace {

class AgentArchiveTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(fs::make_dirs(tmp_ / "agent"));
    write("agent/flotilla-agent", "agent v2", 0755);
    write("agent/flotilla-shim", std::string(1000, 's'), 0750);
    write("agent/flotilla-oci-monitor", "monitor v2", 0755);
  }
  void write(const std::string& file, const std::string& data, mode_t mode) {
    ASSERT_TRUE(fs::write_atomic(tmp_ / file, data));
    ASSERT_EQ(::chmod((tmp_ / file).c_str(), mode), 0);
  }
  std::string read(const std::string& file) {
    auto text = fs::read_file(tmp_ / file);
    return text ? *text : "<missing>";
  }
  mode_t mode(const std::string& file) {
    struct stat st {};
    EXPECT_EQ(::stat((tmp_ / file).c_str(), &st), 0) << file;
    return st.st_mode & 07777;
  }
  std::string read_error(const std::string& archive) {
    auto entries = read_agent_archive(archive);
    return entries ? "<accepted>" : entries.error().message();
  }
  BuildRequest agent_request(const std::string& payload) {
    BuildRequest req;
    req.name = "agent";
    req.version = "2.0";
    req.target = "agent";
    req.payload_path = payload;
    req.out_dir = tmp_ / "bundle";
    return req;
  }
  // A ustar archive made by GNU tar of `args` (names in the agent folder).
  std::string gnu_tar(const std::vector<std::string>& args) {
    std::vector<std::string> argv = {"/bin/tar", "--format=ustar", "-cf", tmp_ / "gnu.tar",
                                     "-C",       tmp_ / "agent"};
    argv.insert(argv.end(), args.begin(), args.end());
    auto r = flotilla::testing::run_command(argv);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return read("gnu.tar");
  }

  flotilla::testing::TempDir tmp_;
};

TEST_F(AgentArchiveTest, AFolderIsPackedDeterministicallyAndExtractedWithItsModes) {
  ASSERT_TRUE(write_agent_archive(tmp_ / "agent", tmp_ / "a.tar"));
  ASSERT_TRUE(write_agent_archive(tmp_ / "agent", tmp_ / "b.tar"));
  EXPECT_EQ(read("a.tar"), read("b.tar"));
  EXPECT_TRUE(looks_like_tar(read("a.tar")));

  ASSERT_TRUE(fs::make_dirs(tmp_ / "slot"));
  auto names = extract_agent_archive(tmp_ / "a.tar", tmp_ / "slot");
  ASSERT_TRUE(names) << names.error().message();
  EXPECT_EQ(*names,
            (std::vector<std::string>{"flotilla-agent", "flotilla-oci-monitor", "flotilla-shim"}));
  EXPECT_EQ(read("slot/flotilla-agent"), "agent v2");
  EXPECT_EQ(read("slot/flotilla-shim"), std::string(1000, 's'));
  EXPECT_EQ(read("slot/flotilla-oci-monitor"), "monitor v2");
  EXPECT_EQ(mode("slot/flotilla-shim"), 0750u);
  EXPECT_EQ(mode("slot/flotilla-agent"), 0755u);
}

TEST_F(AgentArchiveTest, GnuTarReadsOurArchiveAndWeReadGnuTarsUstar) {
  ASSERT_TRUE(write_agent_archive(tmp_ / "agent", tmp_ / "a.tar"));
  ASSERT_TRUE(fs::make_dirs(tmp_ / "out"));
  auto r = flotilla::testing::run_command({"/bin/tar", "-xf", tmp_ / "a.tar", "-C", tmp_ / "out"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(read("out/flotilla-shim"), std::string(1000, 's'));
  EXPECT_EQ(read("out/flotilla-oci-monitor"), "monitor v2");

  // `tar -C dir .` adds a "./" folder entry and "./" prefixes: both are accepted.
  auto entries = read_agent_archive(gnu_tar({"."}));
  ASSERT_TRUE(entries) << entries.error().message();
  EXPECT_EQ(entries->size(), 3u);
  for (const ArchiveEntry& e : *entries) {
    if (e.name == "flotilla-shim") {
      EXPECT_EQ(e.mode, 0750u);
    }
  }
}

TEST_F(AgentArchiveTest, WhatCouldNotRunOrLandsElsewhereIsRefused) {
  EXPECT_NE(read_error(gnu_tar({"flotilla-shim"})).find("holds no flotilla-agent"),
            std::string::npos);
  write("agent/notes.txt", "x", 0644);
  EXPECT_NE(
      read_error(gnu_tar({"flotilla-agent", "notes.txt"})).find("entry 'notes.txt' is not one of"),
      std::string::npos);
  ASSERT_EQ(::symlink("flotilla-agent", (tmp_ / "agent/link").c_str()), 0);
  EXPECT_NE(read_error(gnu_tar({"flotilla-agent", "link"})).find("not a regular file"),
            std::string::npos);
  ASSERT_TRUE(fs::make_dirs(tmp_ / "agent/bin"));
  write("agent/bin/flotilla-agent", "x", 0755);
  EXPECT_NE(read_error(gnu_tar({"bin/flotilla-agent"})).find("entry 'bin/flotilla-agent'"),
            std::string::npos);
  const std::string good = gnu_tar({"flotilla-shim", "flotilla-agent"});  // 1000 + 8 bytes
  ASSERT_EQ(read_error(good), "<accepted>");
  EXPECT_NE(read_error(good.substr(0, 700)).find("cut short"), std::string::npos);
  EXPECT_NE(read_error(good.substr(0, 2560)).find("end-of-archive"), std::string::npos);
  std::string bad_sum = good;
  bad_sum[0] = 'g';  // the name changes, the checksum does not
  EXPECT_NE(read_error(bad_sum).find("checksum"), std::string::npos);
  EXPECT_NE(read_error(std::string(600, 'x')).find("no ustar header"), std::string::npos);
}

TEST_F(AgentArchiveTest, PackingNamesTheMissingHelper) {
  ASSERT_EQ(::unlink((tmp_ / "agent/flotilla-oci-monitor").c_str()), 0);
  auto st = write_agent_archive(tmp_ / "agent", tmp_ / "a.tar");
  ASSERT_FALSE(st);
  EXPECT_NE(st.error().message().find("flotilla-oci-monitor"), std::string::npos);
  EXPECT_FALSE(fs::exists(tmp_ / "a.tar"));
}

TEST_F(AgentArchiveTest, AnAgentFolderBuildsATarBundleAndOnlyTheAgentTargetTakesOne) {
  BuildRequest req = agent_request(tmp_ / "agent");
  auto m = build_bundle(req);
  ASSERT_TRUE(m) << m.error().message();
  EXPECT_EQ(m->format, "tar");
  EXPECT_NE(read("bundle/manifest.json").find(R"("format":"tar")"), std::string::npos);
  ASSERT_TRUE(write_agent_archive(tmp_ / "agent", tmp_ / "a.tar"));
  EXPECT_EQ(read("bundle/payload"), read("a.tar"));
  EXPECT_FALSE(fs::exists(tmp_ / "bundle/.payload.tar"));
  auto loaded = load_bundle(tmp_ / "bundle");
  ASSERT_TRUE(loaded) << loaded.error().message();
  EXPECT_EQ(loaded->manifest.format, "tar");

  // A bare binary stays a bare binary; an image cannot be a folder.
  req.payload_path = tmp_ / "agent/flotilla-agent";
  m = build_bundle(req);
  ASSERT_TRUE(m) << m.error().message();
  EXPECT_EQ(m->format, "");
  req.target = "image";
  req.payload_path = tmp_ / "agent";
  m = build_bundle(req);
  ASSERT_FALSE(m);
  EXPECT_NE(m.error().message().find("only an agent payload"), std::string::npos);
}

TEST_F(AgentArchiveTest, ATarPayloadFileMustBeAValidAgentArchive) {
  write("agent/notes.txt", "x", 0644);
  gnu_tar({"notes.txt"});
  BuildRequest req = agent_request(tmp_ / "gnu.tar");
  auto m = build_bundle(req);
  ASSERT_FALSE(m);
  EXPECT_NE(m.error().message().find("entry 'notes.txt'"), std::string::npos);
  gnu_tar({"flotilla-agent", "flotilla-shim"});
  m = build_bundle(req);
  ASSERT_TRUE(m) << m.error().message();
  EXPECT_EQ(m->format, "tar");
}

}  // namespace
}  // namespace flotilla::ota
