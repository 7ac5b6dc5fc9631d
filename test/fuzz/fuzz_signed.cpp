// fuzz_signed: sync::Verifier::open (the agent's check of every hub message) on arbitrary bytes.
//
// Invariants: the verifier never crashes; it accepts nothing the trusted key did not sign for
// exactly this topic and payload (so a fuzzed input is only ever accepted when it equals a
// genuine seal, e.g. the seeds); a refusal has a reason and changes neither the trusted keys
// nor the stored key state; a genuine seal of the fuzzed bytes as payload always opens to them.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/ed25519.hpp"
#include "sync/codec.hpp"
#include "sync/signed.hpp"
#include "sync/topics.hpp"
#include "test/fuzz/fuzz_check.hpp"

namespace flotilla::fuzz {
namespace {

// A fixed key, so seeds made with it stay valid across runs.
constexpr std::string_view kKeyPem =
    "-----BEGIN PRIVATE KEY-----\n"
    "MC4CAQAwBQYDK2VwBCIEIGuoQ+UK57i02XU4SUgQYZqb3ROqdh2QHwZ6Ua52Anxe\n"
    "-----END PRIVATE KEY-----\n";

struct Rig {
  ed25519::PrivateKey key = *ed25519::PrivateKey::from_pem(kKeyPem);
  sync::Signer signer = *sync::Signer::make(key, nullptr);
  std::string topic = sync::down_topic("node-a", 16, "desired");
};

}  // namespace
}  // namespace flotilla::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace flotilla;
  using namespace flotilla::fuzz;
  static Rig rig;
  const std::string_view input(reinterpret_cast<const char*>(data), size);

  sync::Verifier verifier({rig.key.public_key()}, {});
  const auto before = verifier.trusted_ids();
  auto opened = verifier.open(rig.topic, input);
  if (!opened) {
    FUZZ_CHECK(!opened.error().message().empty(), "refused without a reason");
    FUZZ_CHECK(verifier.trusted_ids() == before, "a refused message changed the trusted keys");
    FUZZ_CHECK(verifier.state() == sync::HubKeyState{}, "a refused message changed the state");
  } else {
    // Ed25519 signatures are deterministic: what opened must carry the signature the key makes
    // for this topic and payload.
    auto genuine = rig.signer.seal(rig.topic, opened->payload);
    FUZZ_CHECK(genuine.ok(), "sealing failed");
    auto want = sync::decode<v1::SignedMessage>(genuine->substr(sync::kSignedMagic.size()));
    auto got = sync::decode<v1::SignedMessage>(input.substr(sync::kSignedMagic.size()),
                                               sync::kMaxMessageBytes + 1024);
    FUZZ_CHECK(want.ok() && got.ok() && got->signature() == want->signature(),
               "accepted a message the key did not sign");
    FUZZ_CHECK(!opened->rotated, "rotated without an endorsement by a trusted key");
  }
  auto sealed = rig.signer.seal(rig.topic, input);
  FUZZ_CHECK(sealed.ok(), "sealing failed");
  auto back = verifier.open(rig.topic, *sealed);
  FUZZ_CHECK(back.ok() && back->payload == input, "a genuine seal did not open to its payload");
  auto elsewhere = verifier.open(sync::down_topic("node-b", 16, "desired"), *sealed);
  FUZZ_CHECK(!elsewhere.ok(), "a seal for node-a opened on node-b's topic");
  auto unverified = sync::unseal_unverified(*sealed);
  FUZZ_CHECK(unverified.ok() && *unverified == input, "unseal_unverified lost the payload");
  return 0;
}
