// The fleet's PKI: a CA that issues the certificates of nodes, hubs and the broker, and a CRL
// of the revoked ones. X.509 over OpenSSL libcrypto; keys are ECDSA P-256 (every TLS peer of the
// fleet speaks it: mosquitto, Paho, OpenSSL 3, small devices' TLS stacks).
//
// A PKI folder holds:
//   ca.key, ca.crt       the CA (key mode 0600)
//   NAME.key, NAME.crt   one per issued certificate (key mode 0600)
//   revoked              serials (hex) of revoked certificates, one a line
//   ca.crl               the CRL the broker checks (crlfile), rewritten on every revoke
// Every file is written atomically. Node certificates carry CN=<node name>, which the broker
// takes as the MQTT username (use_identity_as_username) for its topic ACLs; hub certificates
// carry CN=hub (or the name given); server certificates carry subjectAltNames for the broker.
//
// Thread-safety: functions on one folder must not run concurrently.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/expected.hpp"

namespace flotilla::pki {

enum class Kind { kNode, kHub, kServer };

Expected<Kind> parse_kind(const std::string& text);  // node | hub | server

struct IssueRequest {
  std::string name;  // the CN; node names follow the node name rules
  Kind kind = Kind::kNode;
  int days = 365;                // validity from now; 0 makes a certificate that is already expired
  std::vector<std::string> ips;  // server: subjectAltName IP entries
  std::vector<std::string> dns;  // server: subjectAltName DNS entries (default: the name)
};

// Creates DIR (if needed), ca.key, ca.crt (self-signed, valid `days`) and an empty ca.crl.
// Refuses when DIR already holds a CA.
Status init_ca(const std::string& dir, int days, int64_t now_unix);

// Issues DIR/NAME.key and DIR/NAME.crt signed by DIR's CA; overwrites an earlier pair of the same
// name (renewal: a new key and certificate). Returns the certificate's path.
Expected<std::string> issue(const std::string& dir, const IssueRequest& request, int64_t now_unix);

// Adds DIR/NAME.crt's serial to DIR/revoked and rewrites DIR/ca.crl (valid `crl_days`).
Status revoke(const std::string& dir, const std::string& name, int crl_days, int64_t now_unix);

// Rewrites DIR/ca.crl from DIR/revoked (valid `crl_days`), e.g. before the old one expires.
Status write_crl(const std::string& dir, int crl_days, int64_t now_unix);

// A new Ed25519 key pair: PREFIX.key (PKCS#8 PEM, mode 0600) and PREFIX.pub (PEM). Refuses to
// overwrite either file: a lost signing key strands everything that pins its public half. Used
// for OTA artifact keys and the hub's signing key.
Status write_ed25519_key_pair(const std::string& prefix);

}  // namespace flotilla::pki
