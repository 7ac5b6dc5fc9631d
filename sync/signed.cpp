#include "sync/signed.hpp"

#include <algorithm>

#include "common/fs.hpp"
#include "sync/codec.hpp"
#include "sync/flotilla.pb.h"

namespace flotilla::sync {
namespace {

constexpr std::string_view kMessageContext = "flotilla-signed-v1\n";
constexpr std::string_view kEndorsementContext = "flotilla-key-endorsement-v1\n";

std::string message_to_sign(std::string_view topic, std::string_view payload) {
  std::string out;
  out.reserve(kMessageContext.size() + topic.size() + 1 + payload.size());
  out.append(kMessageContext).append(topic).append("\n").append(payload);
  return out;
}

std::string endorsement_to_sign(std::string_view raw_key) {
  return std::string(kEndorsementContext) + std::string(raw_key);
}

Expected<v1::SignedMessage> parse_signed(std::string_view payload) {
  if (!looks_signed(payload)) return Error("unsigned message");
  auto msg =
      decode<v1::SignedMessage>(payload.substr(kSignedMagic.size()), kMaxMessageBytes + 1024);
  if (!msg) return Error("malformed signed message: " + msg.error().message());
  return msg;
}

Expected<ed25519::PrivateKey> read_private_key(const std::string& path, const char* flag) {
  auto pem = fs::read_file(path);
  if (!pem) return Error(std::string(flag) + ": " + pem.error().message());
  auto key = ed25519::PrivateKey::from_pem(*pem);
  if (!key) return Error(std::string(flag) + " '" + path + "': " + key.error().message());
  return key;
}

}  // namespace

bool is_hub_topic(std::string_view topic) {
  // flotilla/v1/s/{shard}/n/{node}/down/{kind} or flotilla/v1/s/{shard}/hub/online. Node names
  // hold no '/', so a prefix and the segment names decide without parsing the whole topic.
  static constexpr std::string_view kPrefix = "flotilla/v1/s/";
  static constexpr std::string_view kOnline = "/hub/online";
  static constexpr std::string_view kDown = "/down/";
  if (!topic.starts_with(kPrefix)) return false;
  const std::string_view rest = topic.substr(kPrefix.size());
  if (rest.ends_with(kOnline)) return rest.size() > kOnline.size();
  const size_t down = rest.rfind(kDown);
  const size_t node = rest.find("/n/");
  return down != std::string_view::npos && down + kDown.size() < rest.size() && node > 0 &&
         node != std::string_view::npos && node + 3 < down;
}

bool looks_signed(std::string_view payload) { return payload.starts_with(kSignedMagic); }

Expected<Signer> Signer::make(const ed25519::PrivateKey& current,
                              const ed25519::PrivateKey* previous) {
  Signer s;
  s.key_ = current;
  if (previous != nullptr && previous->public_key().id() != current.public_key().id()) {
    auto sig = previous->sign(endorsement_to_sign(current.public_key().raw()));
    if (!sig) return sig.error();
    auto e = std::make_shared<v1::KeyEndorsement>();
    e->set_public_key(current.public_key().raw());
    e->set_signer_key_id(previous->public_key().id());
    e->set_signature(*sig);
    s.endorsement_ = std::move(e);
  }
  return s;
}

Expected<Signer> Signer::from_files(const std::string& current_path,
                                    const std::string& previous_path) {
  auto current = read_private_key(current_path, "--signing-key");
  if (!current) return current.error();
  if (previous_path.empty()) return make(*current, nullptr);
  auto previous = read_private_key(previous_path, "--previous-signing-key");
  if (!previous) return previous.error();
  return make(*current, &*previous);
}

Expected<std::string> Signer::seal(std::string_view topic, std::string_view payload) const {
  auto sig = key_.sign(message_to_sign(topic, payload));
  if (!sig) return sig.error();
  v1::SignedMessage msg;
  msg.set_key_id(key_id());
  msg.set_signature(std::move(*sig));
  msg.set_payload(std::string(payload));
  if (endorsement_) *msg.mutable_endorsement() = *endorsement_;
  return std::string(kSignedMagic) + encode(msg);
}

Verifier::Verifier(const std::vector<ed25519::PublicKey>& configured, HubKeyState state)
    : state_(std::move(state)) {
  for (const auto& key : configured) {
    if (!state_.retired.contains(key.id()) && find(key.id()) == nullptr) keys_.push_back(key);
  }
  for (const auto& raw : state_.trusted) {
    auto key = ed25519::PublicKey::from_raw(raw);
    if (key && !state_.retired.contains(key->id()) && find(key->id()) == nullptr) {
      keys_.push_back(std::move(*key));
    }
  }
}

const ed25519::PublicKey* Verifier::find(std::string_view id) const {
  for (const auto& key : keys_) {
    if (key.id() == id) return &key;
  }
  return nullptr;
}

std::vector<std::string> Verifier::trusted_ids() const {
  std::vector<std::string> ids;
  for (const auto& key : keys_) ids.push_back(key.id());
  std::sort(ids.begin(), ids.end());
  return ids;
}

std::string Verifier::trusted_text() const {
  std::string ids;
  for (const auto& id : trusted_ids()) ids += (ids.empty() ? "" : ",") + id;
  return ids.empty() ? "none" : ids;
}

Status Verifier::take_endorsed(const std::string& signer_id, const std::string& raw_key,
                               std::string_view endorsement_signature) {
  const ed25519::PublicKey* signer = find(signer_id);
  if (signer == nullptr) {
    return Error("signed by unknown key " + ed25519::key_id(raw_key) + ", endorsed by key " +
                 signer_id + " which this agent does not trust");
  }
  if (auto st = signer->verify(endorsement_to_sign(raw_key), endorsement_signature); !st) {
    return Error("forged key endorsement: " + st.error().message());
  }
  auto key = ed25519::PublicKey::from_raw(raw_key);
  if (!key) return key.error();
  // The endorsing key is replaced: it is no longer trusted, here or after a restart.
  const std::string retired = signer->id();
  std::erase_if(keys_, [&](const ed25519::PublicKey& k) { return k.id() == retired; });
  std::erase_if(state_.trusted,
                [&](const std::string& raw) { return ed25519::key_id(raw) == retired; });
  state_.retired.insert(retired);
  state_.retired.erase(key->id());
  state_.trusted.push_back(key->raw());
  keys_.push_back(std::move(*key));
  return Ok();
}

Expected<Verifier::Opened> Verifier::open(std::string_view topic, std::string_view payload) {
  auto msg = parse_signed(payload);
  if (!msg) return msg.error();
  const std::string signed_text = message_to_sign(topic, msg->payload());
  Opened out;
  if (const ed25519::PublicKey* key = find(msg->key_id()); key != nullptr) {
    if (auto st = key->verify(signed_text, msg->signature()); !st) {
      return Error("forged message: " + st.error().message());
    }
  } else {
    const v1::KeyEndorsement& e = msg->endorsement();
    if (!msg->has_endorsement() || ed25519::key_id(e.public_key()) != msg->key_id()) {
      return Error("signed by unknown key " + msg->key_id() + " (trusted: " + trusted_text() + ")");
    }
    // Check the message with the endorsed key before taking the key: a forged message must not
    // rotate anything.
    auto candidate = ed25519::PublicKey::from_raw(e.public_key());
    if (!candidate) return Error("malformed key endorsement: " + candidate.error().message());
    if (auto st = candidate->verify(signed_text, msg->signature()); !st) {
      return Error("forged message: " + st.error().message());
    }
    if (auto st = take_endorsed(e.signer_key_id(), e.public_key(), e.signature()); !st) {
      return st.error();
    }
    out.rotated = true;
  }
  out.payload = std::move(*msg->mutable_payload());
  return out;
}

Expected<std::string> unseal_unverified(std::string_view payload) {
  if (!looks_signed(payload)) return std::string(payload);
  auto msg = parse_signed(payload);
  if (!msg) return msg.error();
  return std::move(*msg->mutable_payload());
}

namespace {

class SigningTransport final : public Transport {
 public:
  SigningTransport(std::unique_ptr<Transport> inner, std::shared_ptr<const Signer> signer)
      : inner_(std::move(inner)), signer_(std::move(signer)) {}

  void set_handlers(MessageHandler on_message, ConnectionHandler on_connection) override {
    inner_->set_handlers(std::move(on_message), std::move(on_connection));
  }
  Status start() override { return inner_->start(); }
  void stop() override { inner_->stop(); }
  bool connected() const override { return inner_->connected(); }
  Status subscribe(const std::string& filter, int qos) override {
    return inner_->subscribe(filter, qos);
  }
  Status unsubscribe(const std::string& filter) override { return inner_->unsubscribe(filter); }
  Status publish(const std::string& topic, std::string payload, int qos,
                 DoneHandler done) override {
    if (auto st = seal(topic, payload); !st) return st;
    return inner_->publish(topic, std::move(payload), qos, std::move(done));
  }
  Status publish_retained(const std::string& topic, std::string payload) override {
    if (auto st = seal(topic, payload); !st) return st;
    return inner_->publish_retained(topic, std::move(payload));
  }
  size_t backlog() const override { return inner_->backlog(); }
  std::string last_error() const override { return inner_->last_error(); }

 private:
  Status seal(const std::string& topic, std::string& payload) const {
    if (payload.empty() || !is_hub_topic(topic)) return Ok();
    auto sealed = signer_->seal(topic, payload);
    if (!sealed)
      return Error("Failed to sign the message to '" + topic + "': " + sealed.error().message());
    payload = std::move(*sealed);
    return Ok();
  }

  std::unique_ptr<Transport> inner_;
  std::shared_ptr<const Signer> signer_;
};

}  // namespace

std::unique_ptr<Transport> make_signing_transport(std::unique_ptr<Transport> inner,
                                                  std::shared_ptr<const Signer> signer) {
  return std::make_unique<SigningTransport>(std::move(inner), std::move(signer));
}

}  // namespace flotilla::sync
