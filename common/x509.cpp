#include "common/x509.hpp"

#include <ctime>
#include <memory>

#include "common/fs.hpp"
#include "common/libcrypto.hpp"

namespace flotilla::x509 {
namespace {

// libcrypto's functions: reached only once libcrypto() has loaded (the entry points check).
const LibCrypto& crypto() { return **libcrypto(); }

// Frees what libcrypto made, for std::unique_ptr.
struct Free {
  void operator()(BIO* b) const { crypto().BIO_free(b); }
  void operator()(X509* x) const { crypto().X509_free(x); }
  void operator()(BIGNUM* n) const { crypto().BN_free(n); }
  void operator()(EVP_PKEY* k) const { crypto().EVP_PKEY_free(k); }
};
template <typename T>
using Owned = std::unique_ptr<T, Free>;

Expected<int64_t> to_unix(const ASN1_TIME* t) {
  std::tm tm{};
  if (t == nullptr || crypto().ASN1_TIME_to_tm(t, &tm) != 1) return Error("bad validity time");
  return static_cast<int64_t>(::timegm(&tm));
}

std::string cn_of(const X509_NAME* name) {
  if (name == nullptr) return "";
  int idx = crypto().X509_NAME_get_index_by_NID(name, NID_commonName, -1);
  if (idx < 0) return "";
  const ASN1_STRING* data =
      crypto().X509_NAME_ENTRY_get_data(crypto().X509_NAME_get_entry(name, idx));
  unsigned char* utf8 = nullptr;
  int len = crypto().ASN1_STRING_to_UTF8(&utf8, data);
  if (len < 0) return "";
  std::string out(reinterpret_cast<char*>(utf8), static_cast<size_t>(len));
  crypto().CRYPTO_free(utf8, OPENSSL_FILE, OPENSSL_LINE);
  return out;
}

}  // namespace

std::string openssl_error() {
  if (!libcrypto()) return libcrypto().error().message();
  unsigned long code = crypto().ERR_get_error();
  crypto().ERR_clear_error();
  if (code == 0) return "unknown OpenSSL error";
  char buf[256];
  crypto().ERR_error_string_n(code, buf, sizeof(buf));
  return buf;
}

Expected<CertificateInfo> parse_certificate(const std::string& pem) {
  if (!libcrypto()) return libcrypto().error();
  Owned<BIO> bio(crypto().BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  if (!bio) return Error("out of memory");
  Owned<X509> cert(crypto().PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
  if (!cert) return Error("not a PEM certificate (" + openssl_error() + ")");
  CertificateInfo info;
  info.subject_cn = cn_of(crypto().X509_get_subject_name(cert.get()));
  info.issuer_cn = cn_of(crypto().X509_get_issuer_name(cert.get()));
  auto before = to_unix(crypto().X509_get0_notBefore(cert.get()));
  auto after = to_unix(crypto().X509_get0_notAfter(cert.get()));
  if (!before || !after) return Error("certificate has a bad validity period");
  info.not_before = *before;
  info.not_after = *after;
  Owned<BIGNUM> serial(
      crypto().ASN1_INTEGER_to_BN(crypto().X509_get0_serialNumber(cert.get()), nullptr));
  if (serial) {
    char* hex = crypto().BN_bn2hex(serial.get());
    info.serial_hex = hex;
    crypto().CRYPTO_free(hex, OPENSSL_FILE, OPENSSL_LINE);
  }
  return info;
}

Expected<CertificateInfo> read_certificate(const std::string& path) {
  auto pem = fs::read_file(path);
  if (!pem) return Error("Failed to read certificate '" + path + "': " + pem.error().message());
  auto info = parse_certificate(*pem);
  if (!info) return Error("Failed to read certificate '" + path + "': " + info.error().message());
  return info;
}

std::string format_utc(int64_t unix_seconds) {
  std::time_t t = static_cast<std::time_t>(unix_seconds);
  std::tm tm{};
  ::gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%d %H:%M UTC", &tm);
  return buf;
}

Status check_certificate_valid(const std::string& path, int64_t now_unix) {
  auto info = read_certificate(path);
  if (!info) return info.error();
  if (now_unix >= info->not_after) {
    return Error("certificate '" + path + "' expired on " + format_utc(info->not_after));
  }
  if (now_unix < info->not_before) {
    return Error("certificate '" + path + "' is not valid before " + format_utc(info->not_before));
  }
  return Ok();
}

Status check_key_matches(const std::string& cert_path, const std::string& key_path) {
  auto cert_pem = fs::read_file(cert_path);
  if (!cert_pem) {
    return Error("Failed to read certificate '" + cert_path + "': " + cert_pem.error().message());
  }
  auto key_pem = fs::read_file(key_path);
  if (!key_pem) return Error("Failed to read key '" + key_path + "': " + key_pem.error().message());
  if (!libcrypto()) return libcrypto().error();
  Owned<BIO> cert_bio(
      crypto().BIO_new_mem_buf(cert_pem->data(), static_cast<int>(cert_pem->size())));
  Owned<X509> cert(crypto().PEM_read_bio_X509(cert_bio.get(), nullptr, nullptr, nullptr));
  if (!cert) return Error("Failed to read certificate '" + cert_path + "': " + openssl_error());
  Owned<BIO> key_bio(crypto().BIO_new_mem_buf(key_pem->data(), static_cast<int>(key_pem->size())));
  Owned<EVP_PKEY> key(crypto().PEM_read_bio_PrivateKey(key_bio.get(), nullptr, nullptr, nullptr));
  if (!key) {
    return Error("Failed to read key '" + key_path + "': not a PEM private key (" +
                 openssl_error() + ")");
  }
  if (crypto().X509_check_private_key(cert.get(), key.get()) != 1) {
    crypto().ERR_clear_error();
    return Error("key '" + key_path + "' does not belong to certificate '" + cert_path + "'");
  }
  return Ok();
}

}  // namespace flotilla::x509
