// Reading X.509 certificates (PEM) over OpenSSL libcrypto: who they name and when they expire.
//
// The MQTT transport checks its client certificate with these before every connect, so an
// expired certificate gives an error naming the file and the date instead of a failed TLS
// handshake. flotctl pki (cloud-hub/pki.hpp) makes the certificates.
//
// Thread-safety: pure functions.
#pragma once

#include <cstdint>
#include <string>

#include "common/expected.hpp"

namespace flotilla::x509 {

struct CertificateInfo {
  std::string subject_cn;  // the subject's commonName ("" when it has none)
  std::string issuer_cn;
  std::string serial_hex;  // upper-case hex, as openssl prints it
  int64_t not_before = 0;  // Unix seconds
  int64_t not_after = 0;   // Unix seconds
};

// The first certificate of a PEM file.
Expected<CertificateInfo> read_certificate(const std::string& path);
Expected<CertificateInfo> parse_certificate(const std::string& pem);

// The text of OpenSSL's oldest queued error (and clears the queue), for error messages.
std::string openssl_error();

// "2026-11-30 12:00 UTC"
std::string format_utc(int64_t unix_seconds);

// Ok while `now` lies within the certificate's validity; otherwise an error naming the file and
// the date: "certificate '/p/node.crt' expired on 2026-11-30 12:00 UTC" (or "is not valid
// before ..."). Also fails when the file cannot be read or parsed.
Status check_certificate_valid(const std::string& path, int64_t now_unix);

// Ok when the private key in `key_path` belongs to the certificate in `cert_path`; otherwise an
// error naming both files.
Status check_key_matches(const std::string& cert_path, const std::string& key_path);

}  // namespace flotilla::x509
