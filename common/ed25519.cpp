#include "common/ed25519.hpp"

#include "common/libcrypto.hpp"
#include "common/sha256.hpp"
#include "common/x509.hpp"

namespace flotilla::ed25519 {
namespace {

using x509::openssl_error;

// libcrypto's functions: reached only once libcrypto() has loaded (the entry points check, and a
// key exists only once it has).
const LibCrypto& crypto() { return **libcrypto(); }

struct BioFree {
  void operator()(BIO* b) const { crypto().BIO_free(b); }
};
struct CtxFree {
  void operator()(EVP_PKEY_CTX* c) const { crypto().EVP_PKEY_CTX_free(c); }
};
struct MdCtxFree {
  void operator()(EVP_MD_CTX* c) const { crypto().EVP_MD_CTX_free(c); }
};
using Bio = std::unique_ptr<BIO, BioFree>;
using MdCtx = std::unique_ptr<EVP_MD_CTX, MdCtxFree>;

std::shared_ptr<EVP_PKEY> own(EVP_PKEY* key) {
  return {key, [](EVP_PKEY* k) { crypto().EVP_PKEY_free(k); }};
}

Bio read_bio(std::string_view pem) {
  return Bio(crypto().BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
}

std::string bio_text(BIO* bio) {
  char* data = nullptr;
  long len = crypto().BIO_ctrl(bio, BIO_CTRL_INFO, 0, &data);
  return std::string(data, static_cast<size_t>(len));
}

Expected<std::string> raw_public(EVP_PKEY* key) {
  std::string raw(kPublicKeyBytes, '\0');
  size_t len = raw.size();
  if (crypto().EVP_PKEY_get_raw_public_key(key, reinterpret_cast<unsigned char*>(raw.data()),
                                           &len) != 1 ||
      len != kPublicKeyBytes) {
    return Error("Failed to read the Ed25519 public key: " + openssl_error());
  }
  return raw;
}

}  // namespace

std::string key_id(std::string_view raw_public_key) {
  return sha256_hex(raw_public_key).substr(0, 2 * kKeyIdBytes);
}

Expected<KeyPair> generate() {
  if (!libcrypto()) return libcrypto().error();
  std::unique_ptr<EVP_PKEY_CTX, CtxFree> ctx(
      crypto().EVP_PKEY_CTX_new_id(EVP_PKEY_ED25519, nullptr));
  EVP_PKEY* raw = nullptr;
  if (!ctx || crypto().EVP_PKEY_keygen_init(ctx.get()) <= 0 ||
      crypto().EVP_PKEY_keygen(ctx.get(), &raw) <= 0) {
    return Error("Failed to generate an Ed25519 key: " + openssl_error());
  }
  auto key = own(raw);
  Bio priv(crypto().BIO_new(crypto().BIO_s_mem()));
  Bio pub(crypto().BIO_new(crypto().BIO_s_mem()));
  if (!priv || !pub ||
      crypto().PEM_write_bio_PrivateKey(priv.get(), key.get(), nullptr, nullptr, 0, nullptr,
                                        nullptr) != 1 ||
      crypto().PEM_write_bio_PUBKEY(pub.get(), key.get()) != 1) {
    return Error("Failed to write the Ed25519 key as PEM: " + openssl_error());
  }
  return KeyPair{bio_text(priv.get()), bio_text(pub.get())};
}

Expected<PublicKey> PublicKey::from_raw(std::string_view raw) {
  if (raw.size() != kPublicKeyBytes) {
    return Error("Failed to read an Ed25519 public key: it is " + std::to_string(raw.size()) +
                 " bytes, want " + std::to_string(kPublicKeyBytes));
  }
  if (!libcrypto()) return libcrypto().error();
  auto key = own(crypto().EVP_PKEY_new_raw_public_key(
      EVP_PKEY_ED25519, nullptr, reinterpret_cast<const unsigned char*>(raw.data()), raw.size()));
  if (!key) return Error("Failed to read an Ed25519 public key: " + openssl_error());
  PublicKey out;
  out.key_ = std::move(key);
  out.raw_ = std::string(raw);
  out.id_ = key_id(raw);
  return out;
}

Expected<PublicKey> PublicKey::from_pem(std::string_view pem) {
  if (!libcrypto()) return libcrypto().error();
  Bio bio = read_bio(pem);
  auto key =
      own(bio ? crypto().PEM_read_bio_PUBKEY(bio.get(), nullptr, nullptr, nullptr) : nullptr);
  if (!key) return Error("not a PEM public key (" + openssl_error() + ")");
  if (crypto().EVP_PKEY_get_id(key.get()) != EVP_PKEY_ED25519)
    return Error("not an Ed25519 public key");
  auto raw = raw_public(key.get());
  if (!raw) return raw.error();
  PublicKey out;
  out.key_ = std::move(key);
  out.id_ = key_id(*raw);
  out.raw_ = std::move(*raw);
  return out;
}

Expected<std::vector<PublicKey>> PublicKey::all_from_pem(std::string_view pem) {
  static constexpr std::string_view kBegin = "-----BEGIN PUBLIC KEY-----";
  static constexpr std::string_view kEnd = "-----END PUBLIC KEY-----";
  std::vector<PublicKey> keys;
  size_t at = 0;
  while ((at = pem.find(kBegin, at)) != std::string_view::npos) {
    const size_t end = pem.find(kEnd, at);
    if (end == std::string_view::npos) return Error("a PUBLIC KEY block has no END line");
    auto key = from_pem(pem.substr(at, end + kEnd.size() - at));
    if (!key)
      return Error("public key " + std::to_string(keys.size() + 1) + ": " + key.error().message());
    keys.push_back(std::move(*key));
    at = end + kEnd.size();
  }
  if (keys.empty()) return Error("no '" + std::string(kBegin) + "' block");
  return keys;
}

Status PublicKey::verify(std::string_view message, std::string_view signature) const {
  if (!key_) return Error("no key");
  if (signature.size() != kSignatureBytes) {
    return Error("the signature is " + std::to_string(signature.size()) + " bytes, want " +
                 std::to_string(kSignatureBytes));
  }
  MdCtx ctx(crypto().EVP_MD_CTX_new());
  if (!ctx ||
      crypto().EVP_DigestVerifyInit(ctx.get(), nullptr, nullptr, nullptr, key_.get()) != 1) {
    return Error(openssl_error());
  }
  const int rc = crypto().EVP_DigestVerify(
      ctx.get(), reinterpret_cast<const unsigned char*>(signature.data()), signature.size(),
      reinterpret_cast<const unsigned char*>(message.data()), message.size());
  crypto().ERR_clear_error();
  if (rc != 1) return Error("the signature does not match key " + id_);
  return Ok();
}

Expected<PrivateKey> PrivateKey::from_pem(std::string_view pem) {
  if (!libcrypto()) return libcrypto().error();
  Bio bio = read_bio(pem);
  auto key =
      own(bio ? crypto().PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr) : nullptr);
  if (!key) return Error("not a PEM private key (" + openssl_error() + ")");
  if (crypto().EVP_PKEY_get_id(key.get()) != EVP_PKEY_ED25519)
    return Error("not an Ed25519 private key");
  auto raw = raw_public(key.get());
  if (!raw) return raw.error();
  auto pub = PublicKey::from_raw(*raw);
  if (!pub) return pub.error();
  PrivateKey out;
  out.key_ = std::move(key);
  out.public_ = std::move(*pub);
  return out;
}

Expected<std::string> PrivateKey::sign(std::string_view message) const {
  if (!key_) return Error("Failed to sign: no key");
  MdCtx ctx(crypto().EVP_MD_CTX_new());
  std::string sig(kSignatureBytes, '\0');
  size_t len = sig.size();
  if (!ctx || crypto().EVP_DigestSignInit(ctx.get(), nullptr, nullptr, nullptr, key_.get()) != 1 ||
      crypto().EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(sig.data()), &len,
                              reinterpret_cast<const unsigned char*>(message.data()),
                              message.size()) != 1) {
    return Error("Failed to sign: " + openssl_error());
  }
  sig.resize(len);
  return sig;
}

}  // namespace flotilla::ed25519
