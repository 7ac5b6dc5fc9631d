#include "common/x509.hpp"

#include <openssl/asn1.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <ctime>
#include <memory>

#include "common/fs.hpp"

namespace flotilla::x509 {
namespace {

Expected<int64_t> to_unix(const ASN1_TIME* t) {
  std::tm tm{};
  if (t == nullptr || ASN1_TIME_to_tm(t, &tm) != 1) return Error("bad validity time");
  return static_cast<int64_t>(::timegm(&tm));
}

std::string cn_of(const X509_NAME* name) {
  if (name == nullptr) return "";
  int idx = X509_NAME_get_index_by_NID(name, NID_commonName, -1);
  if (idx < 0) return "";
  const ASN1_STRING* data = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, idx));
  unsigned char* utf8 = nullptr;
  int len = ASN1_STRING_to_UTF8(&utf8, data);
  if (len < 0) return "";
  std::string out(reinterpret_cast<char*>(utf8), static_cast<size_t>(len));
  OPENSSL_free(utf8);
  return out;
}

}  // namespace

std::string openssl_error() {
  unsigned long code = ERR_get_error();
  ERR_clear_error();
  if (code == 0) return "unknown OpenSSL error";
  char buf[256];
  ERR_error_string_n(code, buf, sizeof(buf));
  return buf;
}

Expected<CertificateInfo> parse_certificate(const std::string& pem) {
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(
      BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())), BIO_free);
  if (!bio) return Error("out of memory");
  std::unique_ptr<X509, decltype(&X509_free)> cert(
      PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr), X509_free);
  if (!cert) return Error("not a PEM certificate (" + openssl_error() + ")");
  CertificateInfo info;
  info.subject_cn = cn_of(X509_get_subject_name(cert.get()));
  info.issuer_cn = cn_of(X509_get_issuer_name(cert.get()));
  auto before = to_unix(X509_get0_notBefore(cert.get()));
  auto after = to_unix(X509_get0_notAfter(cert.get()));
  if (!before || !after) return Error("certificate has a bad validity period");
  info.not_before = *before;
  info.not_after = *after;
  std::unique_ptr<BIGNUM, decltype(&BN_free)> serial(
      ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert.get()), nullptr), BN_free);
  if (serial) {
    char* hex = BN_bn2hex(serial.get());
    info.serial_hex = hex;
    OPENSSL_free(hex);
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
  std::unique_ptr<BIO, decltype(&BIO_free)> cert_bio(
      BIO_new_mem_buf(cert_pem->data(), static_cast<int>(cert_pem->size())), BIO_free);
  std::unique_ptr<X509, decltype(&X509_free)> cert(
      PEM_read_bio_X509(cert_bio.get(), nullptr, nullptr, nullptr), X509_free);
  if (!cert) return Error("Failed to read certificate '" + cert_path + "': " + openssl_error());
  std::unique_ptr<BIO, decltype(&BIO_free)> key_bio(
      BIO_new_mem_buf(key_pem->data(), static_cast<int>(key_pem->size())), BIO_free);
  std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> key(
      PEM_read_bio_PrivateKey(key_bio.get(), nullptr, nullptr, nullptr), EVP_PKEY_free);
  if (!key) {
    return Error("Failed to read key '" + key_path + "': not a PEM private key (" +
                 openssl_error() + ")");
  }
  if (X509_check_private_key(cert.get(), key.get()) != 1) {
    ERR_clear_error();
    return Error("key '" + key_path + "' does not belong to certificate '" + cert_path + "'");
  }
  return Ok();
}

}  // namespace flotilla::x509
