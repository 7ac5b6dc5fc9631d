// Signed hub messages (docs/security.md, "Signed desired state"): a hub started with a signing
// key seals every message it sends to agents (down/* topics and its HubOnline announcement),
// and an agent that pins the hub's public key opens and verifies each before anything acts on
// it, so a broker, or anyone who can publish on it, cannot make a node run anything.
//
// Wire form: "FSG1" + SignedMessage (sync/flotilla.proto). The signature covers the topic as
// well as the payload; replays on the same topic change nothing, because desired revisions,
// twin versions and OTA assignments only move forward at the agent.
//
// Key rotation: a hub given its new key and the key it replaces (--previous-signing-key) adds
// to every message an endorsement of the new key signed by the old one. An agent that trusts
// only the old key verifies the endorsement, trusts the new key from then on and retires the old
// one (the agent's store remembers both across restarts).
//
// Thread-safety: Signer is immutable after make() (seal() from any thread); a Verifier is used
// by one thread (the agent's loop).
#pragma once

#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "common/ed25519.hpp"
#include "common/expected.hpp"
#include "sync/transport.hpp"

namespace flotilla::v1 {
class KeyEndorsement;
}

namespace flotilla::sync {

inline constexpr std::string_view kSignedMagic = "FSG1";

// True for the topics a signing hub signs: every down/* topic and hub/online announcements.
bool is_hub_topic(std::string_view topic);
// True when `payload` is in the signed wire form (it may still be malformed or forged).
bool looks_signed(std::string_view payload);

class Signer {
 public:
  // `previous` (may be null) is the key `current` replaces: every message then carries the
  // endorsement of `current` by `previous`.
  static Expected<Signer> make(const ed25519::PrivateKey& current,
                               const ed25519::PrivateKey* previous);
  // From PEM files (--signing-key, --previous-signing-key; the second may be "").
  static Expected<Signer> from_files(const std::string& current_path,
                                     const std::string& previous_path);

  Expected<std::string> seal(std::string_view topic, std::string_view payload) const;
  const std::string& key_id() const { return key_.public_key().id(); }

 private:
  ed25519::PrivateKey key_;
  std::shared_ptr<const v1::KeyEndorsement> endorsement_;  // null when none
};

// What an agent remembers about hub keys across restarts.
struct HubKeyState {
  std::vector<std::string> trusted;  // raw public keys taken from endorsements
  std::set<std::string> retired;     // ids of keys a newer key replaced
  bool operator==(const HubKeyState&) const = default;
};

class Verifier {
 public:
  // The keys of --hub-public-key, less the retired ones, plus the ones taken since.
  Verifier(const std::vector<ed25519::PublicKey>& configured, HubKeyState state);

  struct Opened {
    std::string payload;
    bool rotated = false;  // a new key was taken: persist state()
  };
  // The message inside a valid signed payload for `topic`; an error saying why it is refused:
  // unsigned, malformed, signed by an unknown key, or forged.
  Expected<Opened> open(std::string_view topic, std::string_view payload);

  const HubKeyState& state() const { return state_; }
  // Ids of the keys trusted now, sorted.
  std::vector<std::string> trusted_ids() const;
  // The same as "id1,id2" ("none" when empty), for messages and logs.
  std::string trusted_text() const;

 private:
  const ed25519::PublicKey* find(std::string_view id) const;
  Status take_endorsed(const std::string& signer_id, const std::string& raw_key,
                       std::string_view endorsement_signature);

  std::vector<ed25519::PublicKey> keys_;
  HubKeyState state_;
};

// The payload inside a signed message without checking its signature: what an agent without
// --hub-public-key does with a signing hub's messages. Plain payloads come back unchanged.
Expected<std::string> unseal_unverified(std::string_view payload);

// A Transport that seals, with `signer`, what is published on hub topics (is_hub_topic) before
// handing it to `inner`; everything else passes through. Empty payloads (clearing a retained
// message) pass as they are.
std::unique_ptr<Transport> make_signing_transport(std::unique_ptr<Transport> inner,
                                                  std::shared_ptr<const Signer> signer);

}  // namespace flotilla::sync
