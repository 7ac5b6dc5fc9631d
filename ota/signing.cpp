#include "ota/signing.hpp"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include <memory>

#include "common/x509.hpp"

namespace flotilla::ota {
namespace {

struct PkeyFree {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
struct CtxFree {
  void operator()(EVP_PKEY_CTX* c) const { EVP_PKEY_CTX_free(c); }
};
struct MdCtxFree {
  void operator()(EVP_MD_CTX* c) const { EVP_MD_CTX_free(c); }
};
struct BioFree {
  void operator()(BIO* b) const { BIO_free(b); }
};
using Pkey = std::unique_ptr<EVP_PKEY, PkeyFree>;
using Bio = std::unique_ptr<BIO, BioFree>;
using MdCtx = std::unique_ptr<EVP_MD_CTX, MdCtxFree>;

using x509::openssl_error;

std::string bio_text(BIO* bio) {
  char* data = nullptr;
  long len = BIO_get_mem_data(bio, &data);
  return std::string(data, static_cast<size_t>(len));
}

Bio read_bio(std::string_view pem) {
  return Bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
}

}  // namespace

Expected<KeyPair> generate_key() {
  std::unique_ptr<EVP_PKEY_CTX, CtxFree> ctx(EVP_PKEY_CTX_new_id(EVP_PKEY_ED25519, nullptr));
  EVP_PKEY* raw = nullptr;
  if (!ctx || EVP_PKEY_keygen_init(ctx.get()) <= 0 || EVP_PKEY_keygen(ctx.get(), &raw) <= 0) {
    return Error("Failed to generate an Ed25519 key: " + openssl_error());
  }
  Pkey key(raw);
  Bio priv(BIO_new(BIO_s_mem()));
  Bio pub(BIO_new(BIO_s_mem()));
  if (!priv || !pub ||
      PEM_write_bio_PrivateKey(priv.get(), key.get(), nullptr, nullptr, 0, nullptr, nullptr) != 1 ||
      PEM_write_bio_PUBKEY(pub.get(), key.get()) != 1) {
    return Error("Failed to write the Ed25519 key as PEM: " + openssl_error());
  }
  return KeyPair{bio_text(priv.get()), bio_text(pub.get())};
}

Expected<std::string> sign(std::string_view private_pem, std::string_view message) {
  Bio bio = read_bio(private_pem);
  Pkey key(bio ? PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr) : nullptr);
  if (!key) return Error("Failed to sign: not a PEM private key (" + openssl_error() + ")");
  if (EVP_PKEY_id(key.get()) != EVP_PKEY_ED25519) {
    return Error("Failed to sign: not an Ed25519 private key");
  }
  MdCtx ctx(EVP_MD_CTX_new());
  std::string sig(kSignatureBytes, '\0');
  size_t len = sig.size();
  if (!ctx || EVP_DigestSignInit(ctx.get(), nullptr, nullptr, nullptr, key.get()) != 1 ||
      EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(sig.data()), &len,
                     reinterpret_cast<const unsigned char*>(message.data()), message.size()) != 1) {
    return Error("Failed to sign: " + openssl_error());
  }
  sig.resize(len);
  return sig;
}

Status verify(std::string_view public_pem, std::string_view message, std::string_view signature) {
  Bio bio = read_bio(public_pem);
  Pkey key(bio ? PEM_read_bio_PUBKEY(bio.get(), nullptr, nullptr, nullptr) : nullptr);
  if (!key) {
    return Error("Failed to verify signature: not a PEM public key (" + openssl_error() + ")");
  }
  if (EVP_PKEY_id(key.get()) != EVP_PKEY_ED25519) {
    return Error("Failed to verify signature: not an Ed25519 public key");
  }
  if (signature.size() != kSignatureBytes) {
    return Error("Failed to verify signature: it is " + std::to_string(signature.size()) +
                 " bytes, want " + std::to_string(kSignatureBytes));
  }
  MdCtx ctx(EVP_MD_CTX_new());
  if (!ctx || EVP_DigestVerifyInit(ctx.get(), nullptr, nullptr, nullptr, key.get()) != 1) {
    return Error("Failed to verify signature: " + openssl_error());
  }
  const int rc = EVP_DigestVerify(
      ctx.get(), reinterpret_cast<const unsigned char*>(signature.data()), signature.size(),
      reinterpret_cast<const unsigned char*>(message.data()), message.size());
  ERR_clear_error();
  if (rc != 1) return Error("Failed to verify signature: signature does not match the pinned key");
  return Ok();
}

}  // namespace flotilla::ota
