#include "runtime/image/manifest.hpp"

#include <gtest/gtest.h>

#include <random>

#include "runtime/image/reference.hpp"

namespace flotilla::runtime::image {
namespace {

std::string digest(char c) { return "sha256:" + std::string(64, c); }

std::string index_json() {
  return R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json",
    "manifests":[
     {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":")" +
         digest('a') +
         R"(","size":10,"platform":{"os":"linux","architecture":"arm64","variant":"v8"}},
     {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":")" +
         digest('b') +
         R"(","size":11,"platform":{"os":"linux","architecture":"amd64"}},
     {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":")" +
         digest('c') +
         R"(","size":12,"platform":{"os":"linux","architecture":"arm","variant":"v6"}},
     {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":")" +
         digest('d') +
         R"(","size":13,"platform":{"os":"linux","architecture":"arm","variant":"v7"}}
    ]})";
}

TEST(ManifestTest, ParsesAnOciManifest) {
  std::string body =
      R"({"schemaVersion":2,"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":")" +
      digest('1') +
      R"(","size":5},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":")" +
      digest('2') +
      R"(","size":7},{"mediaType":"application/vnd.oci.image.layer.v1.tar+zstd","digest":")" +
      digest('3') + R"(","size":9}]})";
  auto doc = parse_manifest_document(body, "application/vnd.oci.image.manifest.v1+json");
  ASSERT_TRUE(doc) << doc.error().message();
  ASSERT_FALSE(doc->is_index);
  EXPECT_EQ(doc->manifest.config.digest, digest('1'));
  ASSERT_EQ(doc->manifest.layers.size(), 2u);
  EXPECT_EQ(doc->manifest.layers[1].size, 9u);
}

TEST(ManifestTest, ParsesADockerManifestListAndPicksEachPlatform) {
  auto doc = parse_manifest_document(index_json(), "");
  ASSERT_TRUE(doc) << doc.error().message();
  ASSERT_TRUE(doc->is_index);
  EXPECT_EQ(select_platform(doc->index, {"linux", "amd64", ""})->digest, digest('b'));
  EXPECT_EQ(select_platform(doc->index, {"linux", "arm64", "v8"})->digest, digest('a'));
  EXPECT_EQ(select_platform(doc->index, {"linux", "arm64", ""})->digest, digest('a'));
  EXPECT_EQ(select_platform(doc->index, {"linux", "arm", "v7"})->digest, digest('d'));
  EXPECT_EQ(select_platform(doc->index, {"linux", "arm", "v6"})->digest, digest('c'));
  auto none = select_platform(doc->index, {"linux", "riscv64", ""});
  ASSERT_FALSE(none);
  EXPECT_NE(none.error().message().find("no linux/riscv64 entry (it has linux/arm64/v8, "
                                        "linux/amd64, linux/arm/v6, linux/arm/v7)"),
            std::string::npos)
      << none.error().message();
}

TEST(ManifestTest, RejectsMalformedDocuments) {
  struct Case {
    std::string body;
    std::string says;
  };
  for (const auto& c : std::vector<Case>{
           {"", "not valid JSON"},
           {"[1]", "not a JSON object"},
           {R"({"schemaVersion":1})", "schemaVersion is not 2"},
           {R"({"schemaVersion":2,"mediaType":"text/plain"})", "unsupported media type"},
           {R"({"schemaVersion":2,"layers":[]})", "no 'config'"},
           {R"({"schemaVersion":2,"config":{"digest":"sha256:x","size":1},"layers":[]})",
            "is not sha256:<64 hex>"},
           {R"({"schemaVersion":2,"config":{"digest":")" + digest('1') +
                R"(","size":-1},"layers":[]})",
            "no valid 'size'"},
           {R"({"schemaVersion":2,"config":{"digest":")" + digest('1') +
                R"(","size":1},"layers":{}})",
            "no 'layers' list"},
           {R"({"schemaVersion":2,"config":{"digest":")" + digest('1') +
                R"(","size":1},"layers":[{"mediaType":"application/x-foo","digest":")" +
                digest('2') + R"(","size":1}]})",
            "unsupported layer media type"},
           {R"({"schemaVersion":2,"manifests":[{"digest":")" + digest('1') +
                R"(","size":1,"platform":"linux"}]})",
            "'platform' is not an object"},
       }) {
    auto doc = parse_manifest_document(c.body, "");
    ASSERT_FALSE(doc) << c.body;
    EXPECT_NE(doc.error().message().find(c.says), std::string::npos) << doc.error().message();
  }
}

TEST(ManifestTest, ImageConfigFields) {
  auto cfg = parse_image_config(
      R"({"architecture":"amd64","config":{"Entrypoint":["/bin/sh","-c"],"Cmd":["echo hi"],
          "Env":["PATH=/bin","A=1"],"WorkingDir":"/srv","User":"1000:1000"}})");
  ASSERT_TRUE(cfg) << cfg.error().message();
  EXPECT_EQ(cfg->entrypoint, (std::vector<std::string>{"/bin/sh", "-c"}));
  EXPECT_EQ(cfg->cmd, (std::vector<std::string>{"echo hi"}));
  EXPECT_EQ(cfg->env, (std::vector<std::string>{"PATH=/bin", "A=1"}));
  EXPECT_EQ(cfg->workdir, "/srv");
  EXPECT_EQ(cfg->user, "1000:1000");
  EXPECT_TRUE(parse_image_config(R"({"config":null})"));
  auto bad = parse_image_config(R"({"config":{"Cmd":"echo"}})");
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message().find("'Cmd' is not a list"), std::string::npos);
  EXPECT_FALSE(parse_image_config(R"({"config":{"Env":[1]}})"));
  EXPECT_FALSE(parse_image_config("{"));
}

}  // namespace
}  // namespace flotilla::runtime::image

namespace flotilla::runtime::image {
namespace {

// Seeded mutations of valid documents: every outcome is a value or an Error, never a crash.
TEST(ManifestTest, MutatedDocumentsNeverCrash) {
  std::string manifest =
      R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":")" +
      digest('1') +
      R"(","size":5},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":")" +
      digest('2') + R"(","size":7}]})";
  std::string config = R"({"config":{"Entrypoint":["/bin/sh"],"Env":["A=1"],"User":"1"}})";
  std::mt19937 rng(1234);
  const std::string alphabet = "{}[]\":,0123456789-.eE \\ntrufalsnul";
  int parsed = 0;
  for (int i = 0; i < 3000; ++i) {
    for (std::string doc : {manifest, index_json(), config}) {
      int edits = 1 + static_cast<int>(rng() % 4);
      for (int e = 0; e < edits; ++e) {
        size_t pos = rng() % doc.size();
        switch (rng() % 3) {
          case 0:
            doc[pos] = alphabet[rng() % alphabet.size()];
            break;
          case 1:
            doc.erase(pos, 1 + rng() % 8);
            break;
          default:
            doc.insert(pos, 1, alphabet[rng() % alphabet.size()]);
        }
        if (doc.empty()) doc = "{";
      }
      auto m = parse_manifest_document(doc, "");
      if (m) {
        ++parsed;
        if (m->is_index) (void)select_platform(m->index, {"linux", "amd64", ""});
      } else {
        EXPECT_EQ(m.error().message().rfind("Failed to parse", 0), 0u);
      }
      auto c = parse_image_config(doc);
      if (!c) {
        EXPECT_EQ(c.error().message().rfind("Failed to parse", 0), 0u);
      }
      (void)parse_reference(doc.substr(0, 80));
    }
  }
  EXPECT_GT(parsed, 0);  // some mutations stay valid, so both paths ran
}

}  // namespace
}  // namespace flotilla::runtime::image
