// OpenSSL's libcrypto, loaded with dlopen when first needed (common/dynlib.hpp), for what this
// code does not do itself: Ed25519 keys and signatures (signed desired state, OTA manifests) and
// reading X.509 certificates (MQTT over TLS). Linked, libcrypto cost every agent about 1.8 MiB
// resident (its relocations and symbol tables) even when it used neither (docs/footprint.md).
//
// Thread-safety: libcrypto() may be called from any thread; the table it returns never changes.
#pragma once

#include <openssl/asn1.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/opensslv.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "common/expected.hpp"

static_assert(OPENSSL_VERSION_MAJOR == 3, "libcrypto.cpp loads libcrypto.so.3");

namespace flotilla {

// Every libcrypto function this code calls (macros such as BIO_get_mem_data and OPENSSL_free
// name the functions behind them).
#define FLOTILLA_LIBCRYPTO_FUNCTIONS(X) \
  X(ASN1_INTEGER_to_BN)                 \
  X(ASN1_STRING_to_UTF8)                \
  X(ASN1_TIME_to_tm)                    \
  X(BIO_ctrl)                           \
  X(BIO_free)                           \
  X(BIO_new)                            \
  X(BIO_new_mem_buf)                    \
  X(BIO_s_mem)                          \
  X(BN_bn2hex)                          \
  X(BN_free)                            \
  X(CRYPTO_free)                        \
  X(ERR_clear_error)                    \
  X(ERR_error_string_n)                 \
  X(ERR_get_error)                      \
  X(EVP_DigestSign)                     \
  X(EVP_DigestSignInit)                 \
  X(EVP_DigestVerify)                   \
  X(EVP_DigestVerifyInit)               \
  X(EVP_MD_CTX_free)                    \
  X(EVP_MD_CTX_new)                     \
  X(EVP_PKEY_CTX_free)                  \
  X(EVP_PKEY_CTX_new_id)                \
  X(EVP_PKEY_free)                      \
  X(EVP_PKEY_get_id)                    \
  X(EVP_PKEY_get_raw_public_key)        \
  X(EVP_PKEY_keygen)                    \
  X(EVP_PKEY_keygen_init)               \
  X(EVP_PKEY_new_raw_public_key)        \
  X(PEM_read_bio_PUBKEY)                \
  X(PEM_read_bio_PrivateKey)            \
  X(PEM_read_bio_X509)                  \
  X(PEM_write_bio_PUBKEY)               \
  X(PEM_write_bio_PrivateKey)           \
  X(X509_NAME_ENTRY_get_data)           \
  X(X509_NAME_get_entry)                \
  X(X509_NAME_get_index_by_NID)         \
  X(X509_check_private_key)             \
  X(X509_free)                          \
  X(X509_get0_notAfter)                 \
  X(X509_get0_notBefore)                \
  X(X509_get0_serialNumber)             \
  X(X509_get_issuer_name)               \
  X(X509_get_subject_name)

// One pointer per function, named and typed as in OpenSSL's headers.
struct LibCrypto {
#define FLOTILLA_LIBCRYPTO_POINTER(name) decltype(&::name) name = nullptr;
  FLOTILLA_LIBCRYPTO_FUNCTIONS(FLOTILLA_LIBCRYPTO_POINTER)
#undef FLOTILLA_LIBCRYPTO_POINTER
};

// libcrypto.so.3, loaded at the first call ("Failed to load 'libcrypto.so.3': ...").
const Expected<const LibCrypto*>& libcrypto();

}  // namespace flotilla
