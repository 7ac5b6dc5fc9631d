#include "runtime/image/reference.hpp"

#include <gtest/gtest.h>

namespace flotilla::runtime::image {
namespace {

const std::string kDigest =
    "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

TEST(ReferenceTest, RegistryWithPortRepositoryAndTag) {
  auto r = parse_reference("127.0.0.1:5000/team/app:1.2-rc_1");
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(r->registry, "127.0.0.1:5000");
  EXPECT_EQ(r->repository, "team/app");
  EXPECT_EQ(r->tag, "1.2-rc_1");
  EXPECT_EQ(r->digest, "");
  EXPECT_EQ(r->manifest_ref(), "1.2-rc_1");
  EXPECT_EQ(r->str(), "127.0.0.1:5000/team/app:1.2-rc_1");
}

TEST(ReferenceTest, DigestWinsOverTagForTheManifestRequest) {
  auto r = parse_reference("127.0.0.1:5000/app:1@" + kDigest);
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(r->tag, "1");
  EXPECT_EQ(r->digest, kDigest);
  EXPECT_EQ(r->manifest_ref(), kDigest);
  auto only = parse_reference("127.0.0.1:5000/app@" + kDigest);
  ASSERT_TRUE(only);
  EXPECT_EQ(only->tag, "");
}

TEST(ReferenceTest, DockerHubDefaults) {
  auto r = parse_reference("busybox");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->registry, "docker.io");
  EXPECT_EQ(r->repository, "library/busybox");
  EXPECT_EQ(r->tag, "latest");
  auto user = parse_reference("someone/tool:2");
  ASSERT_TRUE(user);
  EXPECT_EQ(user->registry, "docker.io");
  EXPECT_EQ(user->repository, "someone/tool");
  auto local = parse_reference("localhost/app");
  ASSERT_TRUE(local);
  EXPECT_EQ(local->registry, "localhost");
  EXPECT_EQ(local->repository, "app");
}

TEST(ReferenceTest, RejectsMalformedWithAClearError) {
  struct Case {
    std::string text;
    std::string says;
  };
  for (const auto& c : std::vector<Case>{
           {"", "empty"},
           {"127.0.0.1:5000/App:1", "invalid repository component 'App'"},
           {"127.0.0.1:5000/app:", "invalid tag ''"},
           {"127.0.0.1:5000/app:-x", "invalid tag"},
           {"127.0.0.1:5000/app@sha256:abc", "not sha256:<64 lowercase hex digits>"},
           {"127.0.0.1:5000/app@md5:" + std::string(64, 'a'), "digest"},
           {"127.0.0.1:99999/app", "invalid registry"},
           {"127.0.0.1:5000/", "no repository"},
           {"127.0.0.1:5000//app", "invalid repository component ''"},
           {"127.0.0.1:5000/a..b", "invalid repository component"},
           {"127.0.0.1:5000/app:1 ", "whitespace"},
           {"127.0.0.1:5000/-app", "invalid repository component"},
           {"127.0.0.1:5000/app:" + std::string(129, 'a'), "invalid tag"},
       }) {
    auto r = parse_reference(c.text);
    ASSERT_FALSE(r) << c.text;
    EXPECT_NE(r.error().message().find("Failed to parse image reference"), std::string::npos);
    EXPECT_NE(r.error().message().find(c.says), std::string::npos)
        << c.text << " -> " << r.error().message();
  }
}

TEST(ReferenceTest, ValidDigest) {
  EXPECT_TRUE(valid_digest(kDigest));
  EXPECT_FALSE(valid_digest("sha256:" + std::string(64, 'A')));
  EXPECT_FALSE(valid_digest("sha256:" + std::string(63, 'a')));
  EXPECT_FALSE(valid_digest("sha512:" + std::string(64, 'a')));
}

}  // namespace
}  // namespace flotilla::runtime::image
