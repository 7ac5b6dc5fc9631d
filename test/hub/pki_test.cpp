// flotctl pki: the fleet CA, issued certificates and the CRL, checked with OpenSSL itself.
#include <gtest/gtest.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>

#include <cstdio>
#include <sstream>

#include "cloud-hub/flotctl/commands.hpp"
#include "common/fs.hpp"
#include "common/x509.hpp"
#include "test/support/temp_dir.hpp"

namespace flotilla::flotctl {
namespace {

constexpr int64_t kNow = 1'796'000'000;  // 2026-11-30 00:53:20 UTC

struct Outcome {
  int code;
  std::string out;
  std::string err;
};

class PkiTest : public ::testing::Test {
 protected:
  Outcome flotctl(std::vector<std::string> args) {
    std::ostringstream out, err;
    Context ctx;
    ctx.now_ms = kNow * 1000;
    int code = flotctl::run(args, ctx, out, err);
    return {code, out.str(), err.str()};
  }
  std::string file(const std::string& name) const { return dir_ / ("pki/" + name); }
  // OpenSSL's own verdict on `name`.crt against the CA (and the CRL when `crl`) at kNow.
  int verify(const std::string& name, bool crl = false) {
    X509_STORE* store = X509_STORE_new();
    X509_STORE_load_file(store, file("ca.crt").c_str());
    if (crl) {
      X509_STORE_load_file(store, file("ca.crl").c_str());
      X509_STORE_set_flags(store, X509_V_FLAG_CRL_CHECK);
    }
    FILE* f = std::fopen(file(name + ".crt").c_str(), "r");
    X509* cert = PEM_read_X509(f, nullptr, nullptr, nullptr);
    std::fclose(f);
    X509_STORE_CTX* ctx = X509_STORE_CTX_new();
    X509_STORE_CTX_init(ctx, store, cert, nullptr);
    X509_STORE_CTX_set_time(ctx, 0, static_cast<time_t>(kNow + 60));
    int ok = X509_verify_cert(ctx);
    int err = ok == 1 ? X509_V_OK : X509_STORE_CTX_get_error(ctx);
    X509_STORE_CTX_free(ctx);
    X509_free(cert);
    X509_STORE_free(store);
    return err;
  }
  flotilla::testing::TempDir dir_;
};

int mode_of(const std::string& path) {
  struct stat st {};
  ::stat(path.c_str(), &st);
  return static_cast<int>(st.st_mode & 0777);
}

TEST_F(PkiTest, InitAndIssueMakeCertificatesOpenSslAccepts) {
  ASSERT_EQ(flotctl({"pki", "init", "--dir", dir_ / "pki"}).code, 0);
  Outcome node = flotctl({"pki", "issue", "--dir", dir_ / "pki", "--name", "edge-1", "--kind",
                          "node", "--days", "30"});
  ASSERT_EQ(node.code, 0) << node.err;
  EXPECT_NE(node.out.find("CN=edge-1"), std::string::npos) << node.out;
  EXPECT_EQ(mode_of(file("ca.key")), 0600);
  EXPECT_EQ(mode_of(file("edge-1.key")), 0600);
  EXPECT_EQ(verify("edge-1"), X509_V_OK);
  auto info = x509::read_certificate(file("edge-1.crt"));
  ASSERT_TRUE(info) << info.error().message();
  EXPECT_EQ(info->subject_cn, "edge-1");
  EXPECT_EQ(info->issuer_cn, "flotilla fleet CA");
  EXPECT_EQ(info->not_after, kNow + 30 * 86'400);
  EXPECT_TRUE(x509::check_key_matches(file("edge-1.crt"), file("edge-1.key")));

  Outcome server = flotctl({"pki", "issue", "--dir", dir_ / "pki", "--name", "broker", "--kind",
                            "server", "--ip", "127.0.0.1", "--dns", "localhost"});
  ASSERT_EQ(server.code, 0) << server.err;
  FILE* f = std::fopen(file("broker.crt").c_str(), "r");
  X509* cert = PEM_read_X509(f, nullptr, nullptr, nullptr);
  std::fclose(f);
  EXPECT_EQ(X509_check_ip_asc(cert, "127.0.0.1", 0), 1);
  EXPECT_EQ(X509_check_host(cert, "localhost", 0, 0, nullptr), 1);
  EXPECT_EQ(X509_check_host(cert, "evil.example", 0, 0, nullptr), 0);
  X509_free(cert);
  EXPECT_EQ(verify("broker"), X509_V_OK);
  // Another node's key does not fit this certificate.
  EXPECT_FALSE(x509::check_key_matches(file("broker.crt"), file("edge-1.key")));
}

TEST_F(PkiTest, ExpiredCertificateIsNamedWithItsDate) {
  ASSERT_EQ(flotctl({"pki", "init", "--dir", dir_ / "pki"}).code, 0);
  ASSERT_EQ(flotctl({"pki", "issue", "--dir", dir_ / "pki", "--name", "old", "--kind", "node",
                     "--days", "0"})
                .code,
            0);
  EXPECT_EQ(verify("old"), X509_V_ERR_CERT_HAS_EXPIRED);
  Status st = x509::check_certificate_valid(file("old.crt"), kNow + 60);
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().message(),
            "certificate '" + file("old.crt") + "' expired on " + x509::format_utc(kNow));
  EXPECT_EQ(x509::format_utc(kNow), "2026-11-30 00:53 UTC");
}

TEST_F(PkiTest, RevokedCertificateFailsAgainstTheCrl) {
  ASSERT_EQ(flotctl({"pki", "init", "--dir", dir_ / "pki"}).code, 0);
  for (const char* n : {"edge-1", "edge-2"}) {
    ASSERT_EQ(flotctl({"pki", "issue", "--dir", dir_ / "pki", "--name", n, "--kind", "node"}).code,
              0);
  }
  EXPECT_EQ(verify("edge-1", true), X509_V_OK);
  ASSERT_EQ(flotctl({"pki", "revoke", "--dir", dir_ / "pki", "--name", "edge-1"}).code, 0);
  EXPECT_EQ(verify("edge-1", true), X509_V_ERR_CERT_REVOKED);
  EXPECT_EQ(verify("edge-2", true), X509_V_OK);
}

TEST_F(PkiTest, BadRequestsAreRefusedWithAClearError) {
  EXPECT_EQ(flotctl({"pki", "issue", "--dir", dir_ / "pki", "--name", "n", "--kind", "node"}).code,
            1);  // no CA yet
  ASSERT_EQ(flotctl({"pki", "init", "--dir", dir_ / "pki"}).code, 0);
  Outcome again = flotctl({"pki", "init", "--dir", dir_ / "pki"});
  EXPECT_EQ(again.code, 1);
  EXPECT_NE(again.err.find("already holds one"), std::string::npos) << again.err;
  Outcome hub_as_node =
      flotctl({"pki", "issue", "--dir", dir_ / "pki", "--name", "hub", "--kind", "node"});
  EXPECT_EQ(hub_as_node.code, 1);
  EXPECT_NE(hub_as_node.err.find("kept for hub certificates"), std::string::npos);
  Outcome bad_name =
      flotctl({"pki", "issue", "--dir", dir_ / "pki", "--name", "A/B", "--kind", "node"});
  EXPECT_EQ(bad_name.code, 1);
  EXPECT_NE(bad_name.err.find("invalid --name"), std::string::npos) << bad_name.err;
  Outcome bad_kind =
      flotctl({"pki", "issue", "--dir", dir_ / "pki", "--name", "n", "--kind", "root"});
  EXPECT_EQ(bad_kind.code, 2);
  EXPECT_NE(bad_kind.err.find("--kind wants node, hub or server"), std::string::npos);
  EXPECT_FALSE(fs::exists(file("A/B.crt")));
  EXPECT_FALSE(fs::exists(file("hub.crt")));
}

}  // namespace
}  // namespace flotilla::flotctl
