#include "cloud-hub/pki.hpp"

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <memory>
#include <sstream>

#include "common/ed25519.hpp"
#include "common/fs.hpp"
#include "common/x509.hpp"
#include "ota/file_io.hpp"
#include "sync/topics.hpp"

namespace flotilla::pki {
namespace {

using KeyPtr = std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)>;
using CertPtr = std::unique_ptr<X509, decltype(&X509_free)>;
using CrlPtr = std::unique_ptr<X509_CRL, decltype(&X509_CRL_free)>;
using BioPtr = std::unique_ptr<BIO, decltype(&BIO_free)>;

constexpr int64_t kDay = 86'400;

using x509::openssl_error;

std::string ca_key_path(const std::string& dir) { return dir + "/ca.key"; }
std::string ca_cert_path(const std::string& dir) { return dir + "/ca.crt"; }
std::string crl_path(const std::string& dir) { return dir + "/ca.crl"; }
std::string revoked_path(const std::string& dir) { return dir + "/revoked"; }

Expected<KeyPtr> generate_key() {
  KeyPtr key(EVP_EC_gen("P-256"), EVP_PKEY_free);
  if (!key) return Error("Failed to generate an ECDSA P-256 key: " + openssl_error());
  return key;
}

template <typename Write>
Expected<std::string> to_pem(Write write) {
  BioPtr bio(BIO_new(BIO_s_mem()), BIO_free);
  if (!bio || write(bio.get()) != 1) return Error("Failed to encode PEM: " + openssl_error());
  char* data = nullptr;
  long len = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(len));
}

Expected<KeyPtr> load_key(const std::string& path) {
  auto pem = fs::read_file(path);
  if (!pem) return Error("Failed to read key '" + path + "': " + pem.error().message());
  BioPtr bio(BIO_new_mem_buf(pem->data(), static_cast<int>(pem->size())), BIO_free);
  KeyPtr key(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr), EVP_PKEY_free);
  if (!key) return Error("Failed to read key '" + path + "': " + openssl_error());
  return key;
}

Expected<CertPtr> load_cert(const std::string& path) {
  auto pem = fs::read_file(path);
  if (!pem) return Error("Failed to read certificate '" + path + "': " + pem.error().message());
  BioPtr bio(BIO_new_mem_buf(pem->data(), static_cast<int>(pem->size())), BIO_free);
  CertPtr cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr), X509_free);
  if (!cert) return Error("Failed to read certificate '" + path + "': " + openssl_error());
  return cert;
}

// Adds one v3 extension in OpenSSL's config syntax ("critical,CA:TRUE").
Status add_ext(X509* cert, X509* issuer, int nid, const std::string& value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str());
  if (ext == nullptr) {
    return Error("Failed to add extension '" + value + "': " + openssl_error());
  }
  int ok = X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
  if (ok != 1) return Error("Failed to add extension '" + value + "': " + openssl_error());
  return Ok();
}

// A certificate for `key` named `cn`, valid [now, now + days), with a random 128-bit serial;
// not yet signed.
Expected<CertPtr> new_cert(EVP_PKEY* key, const std::string& cn, int days, int64_t now) {
  CertPtr cert(X509_new(), X509_free);
  if (!cert) return Error("out of memory");
  unsigned char serial_bytes[16];
  if (RAND_bytes(serial_bytes, sizeof(serial_bytes)) != 1) {
    return Error("Failed to make a serial number: " + openssl_error());
  }
  serial_bytes[0] &= 0x7f;  // positive
  serial_bytes[0] |= 0x40;  // and always 16 bytes long
  std::unique_ptr<BIGNUM, decltype(&BN_free)> bn(
      BN_bin2bn(serial_bytes, sizeof(serial_bytes), nullptr), BN_free);
  X509_set_version(cert.get(), 2);  // v3
  BN_to_ASN1_INTEGER(bn.get(), X509_get_serialNumber(cert.get()));
  ASN1_TIME_set(X509_getm_notBefore(cert.get()), static_cast<time_t>(now));
  ASN1_TIME_set(X509_getm_notAfter(cert.get()), static_cast<time_t>(now + days * kDay));
  X509_NAME* name = X509_get_subject_name(cert.get());
  X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8,
                             reinterpret_cast<const unsigned char*>("flotilla"), -1, -1, 0);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                             reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0);
  if (X509_set_pubkey(cert.get(), key) != 1) return Error("Failed to set key: " + openssl_error());
  return cert;
}

Status write_key_and_cert(const std::string& key_path, EVP_PKEY* key, const std::string& cert_path,
                          X509* cert) {
  auto key_pem = to_pem([&](BIO* b) {
    return PEM_write_bio_PrivateKey(b, key, nullptr, nullptr, 0, nullptr, nullptr);
  });
  if (!key_pem) return key_pem.error();
  auto cert_pem = to_pem([&](BIO* b) { return PEM_write_bio_X509(b, cert); });
  if (!cert_pem) return cert_pem.error();
  // The key first: a certificate on disk always has its key beside it.
  auto key_file = ota::AtomicOutput::create(key_path, 0600);
  if (!key_file) return key_file.error();
  if (auto st = key_file->write(*key_pem); !st) return st;
  if (auto st = key_file->commit(); !st) return st;
  return fs::write_atomic(cert_path, *cert_pem);
}

Status check_days(int days) {
  if (days < 0 || days > 100 * 365) {
    return Error("--days must be 0 to 36500, got " + std::to_string(days));
  }
  return Ok();
}

}  // namespace

Expected<Kind> parse_kind(const std::string& text) {
  if (text == "node") return Kind::kNode;
  if (text == "hub") return Kind::kHub;
  if (text == "server") return Kind::kServer;
  return Error("--kind wants node, hub or server, got '" + text + "'");
}

Status init_ca(const std::string& dir, int days, int64_t now) {
  if (auto st = check_days(days); !st) return st;
  if (days == 0) return Error("--days must be at least 1 for a CA");
  if (fs::exists(ca_key_path(dir)) || fs::exists(ca_cert_path(dir))) {
    return Error("Failed to create a CA in '" + dir +
                 "': it already holds one (ca.key/ca.crt); use another folder");
  }
  if (auto st = fs::make_dirs(dir); !st) return st;
  auto key = generate_key();
  if (!key) return key.error();
  auto cert = new_cert(key->get(), "flotilla fleet CA", days, now);
  if (!cert) return cert.error();
  X509_set_issuer_name(cert->get(), X509_get_subject_name(cert->get()));
  for (auto [nid, value] : {std::pair{NID_basic_constraints, "critical,CA:TRUE,pathlen:0"},
                            std::pair{NID_key_usage, "critical,keyCertSign,cRLSign"},
                            std::pair{NID_subject_key_identifier, "hash"}}) {
    if (auto st = add_ext(cert->get(), cert->get(), nid, value); !st) return st;
  }
  if (X509_sign(cert->get(), key->get(), EVP_sha256()) == 0) {
    return Error("Failed to sign the CA certificate: " + openssl_error());
  }
  if (auto st = write_key_and_cert(ca_key_path(dir), key->get(), ca_cert_path(dir), cert->get());
      !st) {
    return st;
  }
  return write_crl(dir, 365, now);
}

Expected<std::string> issue(const std::string& dir, const IssueRequest& req, int64_t now) {
  if (auto st = check_days(req.days); !st) return st.error();
  if (auto st = sync::validate_node_name(req.name); !st) {
    return Error("invalid --name: " + st.error().message());
  }
  if (req.kind == Kind::kNode && (req.name == "hub" || req.name.rfind("hub-", 0) == 0)) {
    return Error("invalid --name '" + req.name +
                 "': 'hub' and 'hub-*' are kept for hub certificates (--kind hub)");
  }
  if (req.kind == Kind::kHub && req.name != "hub" && req.name.rfind("hub-", 0) != 0) {
    return Error("invalid --name '" + req.name + "': hub certificates are named hub or hub-*");
  }
  if (req.kind != Kind::kServer && (!req.ips.empty() || !req.dns.empty())) {
    return Error("--ip and --dns go with --kind server");
  }
  if (req.name == "ca") return Error("invalid --name 'ca': the CA's own files are named ca.*");
  auto ca_key = load_key(ca_key_path(dir));
  if (!ca_key) return ca_key.error();
  auto ca_cert = load_cert(ca_cert_path(dir));
  if (!ca_cert) return ca_cert.error();
  auto key = generate_key();
  if (!key) return key.error();
  auto cert = new_cert(key->get(), req.name, req.days, now);
  if (!cert) return cert.error();
  X509_set_issuer_name(cert->get(), X509_get_subject_name(ca_cert->get()));
  std::vector<std::pair<int, std::string>> exts = {
      {NID_basic_constraints, "critical,CA:FALSE"},
      {NID_key_usage, "critical,digitalSignature,keyAgreement"},
      {NID_ext_key_usage, req.kind == Kind::kServer ? "serverAuth" : "clientAuth"},
      {NID_subject_key_identifier, "hash"},
      {NID_authority_key_identifier, "keyid"}};
  if (req.kind == Kind::kServer) {
    std::string san;
    for (const auto& ip : req.ips) san += (san.empty() ? "IP:" : ",IP:") + ip;
    std::vector<std::string> dns =
        req.dns.empty() && req.ips.empty() ? std::vector<std::string>{req.name} : req.dns;
    for (const auto& d : dns) san += (san.empty() ? "DNS:" : ",DNS:") + d;
    exts.emplace_back(NID_subject_alt_name, san);
  }
  for (const auto& [nid, value] : exts) {
    if (auto st = add_ext(cert->get(), ca_cert->get(), nid, value); !st) return st.error();
  }
  if (X509_sign(cert->get(), ca_key->get(), EVP_sha256()) == 0) {
    return Error("Failed to sign the certificate: " + openssl_error());
  }
  const std::string cert_path = dir + "/" + req.name + ".crt";
  if (auto st =
          write_key_and_cert(dir + "/" + req.name + ".key", key->get(), cert_path, cert->get());
      !st) {
    return st.error();
  }
  return cert_path;
}

Status revoke(const std::string& dir, const std::string& name, int crl_days, int64_t now) {
  if (auto st = sync::validate_node_name(name); !st) {
    return Error("invalid --name: " + st.error().message());
  }
  auto cert = load_cert(dir + "/" + name + ".crt");
  if (!cert) return cert.error();
  std::unique_ptr<BIGNUM, decltype(&BN_free)> bn(
      ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert->get()), nullptr), BN_free);
  char* hex = BN_bn2hex(bn.get());
  std::string serial = hex;
  OPENSSL_free(hex);
  std::string list;
  if (fs::exists(revoked_path(dir))) {
    auto old = fs::read_file(revoked_path(dir));
    if (!old) return old.error();
    list = *old;
  }
  if (("\n" + list).find("\n" + serial + "\n") == std::string::npos) list += serial + "\n";
  if (auto st = fs::write_atomic(revoked_path(dir), list); !st) return st;
  return write_crl(dir, crl_days, now);
}

Status write_crl(const std::string& dir, int crl_days, int64_t now) {
  if (crl_days < 1 || crl_days > 100 * 365) {
    return Error("--crl-days must be 1 to 36500, got " + std::to_string(crl_days));
  }
  auto ca_key = load_key(ca_key_path(dir));
  if (!ca_key) return ca_key.error();
  auto ca_cert = load_cert(ca_cert_path(dir));
  if (!ca_cert) return ca_cert.error();
  std::string list;
  if (fs::exists(revoked_path(dir))) {
    auto text = fs::read_file(revoked_path(dir));
    if (!text) return text.error();
    list = *text;
  }
  CrlPtr crl(X509_CRL_new(), X509_CRL_free);
  X509_CRL_set_version(crl.get(), 1);  // v2
  X509_CRL_set_issuer_name(crl.get(), X509_get_subject_name(ca_cert->get()));
  std::unique_ptr<ASN1_TIME, decltype(&ASN1_TIME_free)> last(
      ASN1_TIME_set(nullptr, static_cast<time_t>(now)), ASN1_TIME_free);
  std::unique_ptr<ASN1_TIME, decltype(&ASN1_TIME_free)> next(
      ASN1_TIME_set(nullptr, static_cast<time_t>(now + crl_days * kDay)), ASN1_TIME_free);
  X509_CRL_set1_lastUpdate(crl.get(), last.get());
  X509_CRL_set1_nextUpdate(crl.get(), next.get());
  std::istringstream lines(list);
  std::string serial;
  while (std::getline(lines, serial)) {
    if (serial.empty()) continue;
    BIGNUM* bn = nullptr;
    if (BN_hex2bn(&bn, serial.c_str()) == 0) {
      return Error("Failed to read '" + revoked_path(dir) + "': bad serial '" + serial + "'");
    }
    X509_REVOKED* rev = X509_REVOKED_new();
    ASN1_INTEGER* asn = BN_to_ASN1_INTEGER(bn, nullptr);
    BN_free(bn);
    X509_REVOKED_set_serialNumber(rev, asn);
    X509_REVOKED_set_revocationDate(rev, last.get());
    ASN1_INTEGER_free(asn);
    X509_CRL_add0_revoked(crl.get(), rev);
  }
  X509_CRL_sort(crl.get());
  if (X509_CRL_sign(crl.get(), ca_key->get(), EVP_sha256()) == 0) {
    return Error("Failed to sign the CRL: " + openssl_error());
  }
  auto pem = to_pem([&](BIO* b) { return PEM_write_bio_X509_CRL(b, crl.get()); });
  if (!pem) return pem.error();
  return fs::write_atomic(crl_path(dir), *pem);
}

Status write_ed25519_key_pair(const std::string& prefix) {
  const std::string key_path = prefix + ".key";
  const std::string pub_path = prefix + ".pub";
  for (const auto& path : {key_path, pub_path}) {
    if (fs::exists(path)) return Error("'" + path + "' exists; refusing to overwrite a key");
  }
  auto keys = ed25519::generate();
  if (!keys) return keys.error();
  auto priv = ota::AtomicOutput::create(key_path, 0600);
  if (!priv) return priv.error();
  auto st = priv->write(keys->private_pem);
  if (st) st = priv->commit();
  if (!st) return st;
  return fs::write_atomic(pub_path, keys->public_pem);
}

}  // namespace flotilla::pki
