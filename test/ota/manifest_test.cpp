#include "ota/manifest.hpp"

#include <gtest/gtest.h>

#include <string>

namespace flotilla::ota {
namespace {

const std::string kHexA(64, 'a');
const std::string kHexB(64, 'b');
const std::string kHexC(64, 'c');

Manifest full_manifest() {
  Manifest m;
  m.name = "fw";
  m.version = "2.0";
  m.target = "image";
  m.sha256 = kHexA;
  m.size = 67108864;
  return m;
}

Manifest delta_manifest() {
  Manifest m = full_manifest();
  m.delta = DeltaInfo{"zstd-patch-from", "1.0", kHexB, kHexC, 712345};
  return m;
}

std::string error_of(const std::string& text) {
  auto m = parse_manifest(text);
  EXPECT_FALSE(m.ok()) << "accepted: " << text;
  return m ? "" : m.error().message();
}

TEST(Manifest, CanonicalTextHasSortedKeysAndNoSpaces) {
  EXPECT_EQ(manifest_json(full_manifest()),
            R"({"name":"fw","payload":{"sha256":")" + kHexA +
                R"(","size":67108864},"target":"image","version":"2.0"})");
  EXPECT_EQ(manifest_json(delta_manifest()),
            R"({"delta":{"algorithm":"zstd-patch-from","baseSha256":")" + kHexB +
                R"(","baseVersion":"1.0","sha256":")" + kHexC +
                R"(","size":712345},"name":"fw","payload":{"sha256":")" + kHexA +
                R"(","size":67108864},"target":"image","version":"2.0"})");
}

TEST(Manifest, RoundTripsThroughCanonicalText) {
  for (const Manifest& m : {full_manifest(), delta_manifest()}) {
    auto parsed = parse_manifest(manifest_json(m));
    ASSERT_TRUE(parsed.ok()) << parsed.error().message();
    EXPECT_EQ(*parsed, m);
  }
}

// An agent update carrying the agent and its helpers says so, signed; an agent that does not know
// the key refuses the update instead of installing an archive as its binary.
TEST(Manifest, AnAgentPayloadMayBeATarArchiveAndNothingElse) {
  Manifest m = full_manifest();
  m.target = "agent";
  m.format = "tar";
  const std::string text = manifest_json(m);
  EXPECT_EQ(text, R"({"name":"fw","payload":{"format":"tar","sha256":")" + kHexA +
                      R"(","size":67108864},"target":"agent","version":"2.0"})");
  auto parsed = parse_manifest(text);
  ASSERT_TRUE(parsed.ok()) << parsed.error().message();
  EXPECT_EQ(*parsed, m);
  const std::string payload = R"("sha256":")" + kHexA + R"(","size":1}})";
  EXPECT_NE(error_of(R"({"name":"fw","version":"2","target":"agent","payload":{"format":"zip",)" +
                     payload)
                .find("'payload.format' is 'zip', want 'tar'"),
            std::string::npos);
  EXPECT_NE(error_of(R"({"name":"fw","version":"2","target":"image","payload":{"format":"tar",)" +
                     payload)
                .find("only for target 'agent'"),
            std::string::npos);
}

TEST(Manifest, AcceptsSpacedTextWithKeysInAnyOrder) {
  auto m = parse_manifest(R"( { "version": "1.2.3-rc1+b7", "target": "agent",
      "payload": { "size": 0, "sha256": ")" +
                          kHexA + R"(" }, "name": "flotilla-agent_x86.64" } )");
  ASSERT_TRUE(m.ok()) << m.error().message();
  EXPECT_EQ(m->name, "flotilla-agent_x86.64");
  EXPECT_EQ(m->version, "1.2.3-rc1+b7");
  EXPECT_EQ(m->target, "agent");
  EXPECT_FALSE(m->delta.has_value());
}

// A valid manifest's text with one field replaced.
std::string with(const std::string& from, const std::string& to) {
  std::string text = manifest_json(delta_manifest());
  const size_t at = text.find(from);
  EXPECT_NE(at, std::string::npos) << from;
  return text.replace(at, from.size(), to);
}

TEST(Manifest, RejectsNonJsonAndNonObjects) {
  EXPECT_NE(error_of("").find("not valid JSON"), std::string::npos);
  EXPECT_NE(error_of("{\"name\":").find("not valid JSON"), std::string::npos);
  EXPECT_NE(error_of("[1,2]").find("'manifest' must be an object"), std::string::npos);
  EXPECT_NE(error_of(manifest_json(full_manifest()) + "x").find("not valid JSON"),
            std::string::npos);
}

TEST(Manifest, RejectsOversizedText) {
  std::string text = manifest_json(full_manifest());
  text.append(kMaxManifestBytes, ' ');
  EXPECT_NE(error_of(text).find("more than the limit of 16384"), std::string::npos);
}

TEST(Manifest, RejectsUnknownMissingAndDuplicateKeys) {
  EXPECT_EQ(error_of(with(R"("name":"fw")", R"("name":"fw","extra":1)")),
            "Failed to parse manifest: unknown key 'extra'");
  EXPECT_EQ(error_of(with(R"("size":67108864)", R"("size":67108864,"url":"x")")),
            "Failed to parse manifest: unknown key 'payload.url'");
  EXPECT_EQ(error_of(with(R"("size":712345)", R"("size":712345,"x":1)")),
            "Failed to parse manifest: unknown key 'delta.x'");
  EXPECT_EQ(error_of(with(R"("name":"fw",)", "")), "Failed to parse manifest: missing 'name'");
  EXPECT_EQ(error_of(with(R"(,"size":67108864)", "")),
            "Failed to parse manifest: missing 'payload.size'");
  EXPECT_EQ(error_of(with(R"("baseVersion":"1.0",)", "")),
            "Failed to parse manifest: missing 'delta.baseVersion'");
  EXPECT_EQ(error_of(with(R"("name":"fw")", R"("name":"fw","name":"evil")")),
            "Failed to parse manifest: duplicate key 'name'");
}

TEST(Manifest, RejectsBadNames) {
  for (const char* name : {"", "FW", "fw/x", ".hidden", "-x", "a b", "fw\u00e9"}) {
    EXPECT_NE(error_of(with(R"("name":"fw")", std::string(R"("name":")") + name + "\""))
                  .find("'name' must be"),
              std::string::npos)
        << name;
  }
  EXPECT_NE(error_of(with(R"("name":"fw")", R"("name":")" + std::string(64, 'a') + "\""))
                .find("'name' must be"),
            std::string::npos);
  EXPECT_TRUE(
      parse_manifest(with(R"("name":"fw")", R"("name":")" + std::string(63, 'a') + "\"")).ok());
  EXPECT_EQ(error_of(with(R"("name":"fw")", R"("name":7)")),
            "Failed to parse manifest: 'name' must be a string");
}

TEST(Manifest, RejectsBadVersions) {
  for (const char* version : {"", "1 0", "1/0", "..", ".", "1\\t"}) {
    EXPECT_NE(error_of(with(R"("version":"2.0")", std::string(R"("version":")") + version + "\""))
                  .find("'version' must be"),
              std::string::npos)
        << version;
  }
  EXPECT_NE(error_of(with(R"("baseVersion":"1.0")", R"("baseVersion":"a b")"))
                .find("'delta.baseVersion' must be"),
            std::string::npos);
  EXPECT_NE(error_of(with(R"("version":"2.0")", R"("version":")" + std::string(64, '1') + "\""))
                .find("'version' must be"),
            std::string::npos);
}

TEST(Manifest, RejectsUnknownTargetAndAlgorithm) {
  EXPECT_EQ(error_of(with(R"("target":"image")", R"("target":"rootfs")")),
            "Failed to parse manifest: 'target' is 'rootfs', want 'agent' or 'image'");
  EXPECT_EQ(error_of(with(R"("algorithm":"zstd-patch-from")", R"("algorithm":"bsdiff")")),
            "Failed to parse manifest: 'delta.algorithm' is 'bsdiff', want 'zstd-patch-from'");
}

TEST(Manifest, RejectsBadHex) {
  std::string upper(64, 'A');
  EXPECT_EQ(error_of(with(kHexA, upper)),
            "Failed to parse manifest: 'payload.sha256' must be 64 lowercase hex digits");
  EXPECT_EQ(error_of(with(kHexA, std::string(63, 'a'))),
            "Failed to parse manifest: 'payload.sha256' must be 64 lowercase hex digits");
  EXPECT_EQ(error_of(with(kHexB, std::string(63, 'b') + "g")),
            "Failed to parse manifest: 'delta.baseSha256' must be 64 lowercase hex digits");
  EXPECT_EQ(error_of(with(kHexC, "")),
            "Failed to parse manifest: 'delta.sha256' must be 64 lowercase hex digits");
}

TEST(Manifest, RejectsBadSizes) {
  for (const char* size : {"-1", "1.5", "\"12\"", "null", "1e3", "18446744073709551616"}) {
    auto text = with(R"("size":67108864)", std::string(R"("size":)") + size);
    EXPECT_NE(error_of(text).find("'payload.size' must be a whole number of bytes"),
              std::string::npos)
        << size << ": " << error_of(text);
  }
  EXPECT_EQ(error_of(with(R"("size":712345)", R"("size":true)")),
            "Failed to parse manifest: 'delta.size' must be a whole number of bytes");
  EXPECT_EQ(error_of(with(R"("payload":{)", R"("payload":[],"p":{)")),
            "Failed to parse manifest: unknown key 'p'");
  EXPECT_EQ(error_of(R"({"name":"fw","version":"1","target":"agent","payload":"x"})"),
            "Failed to parse manifest: 'payload' must be an object");
}

}  // namespace
}  // namespace flotilla::ota
