#include "ota/signing.hpp"

#include "common/ed25519.hpp"

namespace flotilla::ota {

Expected<KeyPair> generate_key() {
  auto keys = ed25519::generate();
  if (!keys) return keys.error();
  return KeyPair{std::move(keys->private_pem), std::move(keys->public_pem)};
}

Expected<std::string> sign(std::string_view private_pem, std::string_view message) {
  auto key = ed25519::PrivateKey::from_pem(private_pem);
  if (!key) return Error("Failed to sign: " + key.error().message());
  return key->sign(message);
}

Status verify(std::string_view public_pem, std::string_view message, std::string_view signature) {
  auto key = ed25519::PublicKey::from_pem(public_pem);
  if (!key) return Error("Failed to verify signature: " + key.error().message());
  if (signature.size() != kSignatureBytes) {
    return Error("Failed to verify signature: it is " + std::to_string(signature.size()) +
                 " bytes, want " + std::to_string(kSignatureBytes));
  }
  if (!key->verify(message, signature)) {
    return Error("Failed to verify signature: signature does not match the pinned key");
  }
  return Ok();
}

}  // namespace flotilla::ota
