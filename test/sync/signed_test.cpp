#include "sync/signed.hpp"

#include <gtest/gtest.h>

#include "sync/codec.hpp"
#include "sync/fake_transport.hpp"
#include "sync/topics.hpp"

namespace flotilla::sync {
namespace {

ed25519::PrivateKey new_key() {
  auto pair = ed25519::generate();
  EXPECT_TRUE(pair.ok());
  auto key = ed25519::PrivateKey::from_pem(pair->private_pem);
  EXPECT_TRUE(key.ok());
  return *key;
}

std::string desired_payload(const std::string& node, uint64_t revision) {
  v1::DesiredState d;
  d.set_node(node);
  d.set_to_revision(revision);
  d.set_snapshot(true);
  d.add_upserts()->set_name("web");
  return encode(d);
}

const std::string kTopic = down_topic("node-a", 16, "desired");

TEST(Signed, AValidMessageOpensToExactlyWhatWasSigned) {
  auto hub = new_key();
  auto signer = Signer::make(hub, nullptr);
  ASSERT_TRUE(signer.ok());
  const std::string payload = desired_payload("node-a", 7);
  auto sealed = signer->seal(kTopic, payload);
  ASSERT_TRUE(sealed.ok());
  EXPECT_TRUE(looks_signed(*sealed));
  EXPECT_FALSE(looks_signed(payload));  // no plain protobuf starts with the magic

  Verifier verifier({hub.public_key()}, {});
  auto opened = verifier.open(kTopic, *sealed);
  ASSERT_TRUE(opened.ok()) << opened.error().message();
  EXPECT_EQ(opened->payload, payload);
  EXPECT_FALSE(opened->rotated);
}

TEST(Signed, UnsignedForgedAndMisdirectedMessagesAreRefusedWithTheReason) {
  auto hub = new_key();
  auto attacker = new_key();
  Verifier verifier({hub.public_key()}, {});
  const std::string payload = desired_payload("node-a", 7);

  auto plain = verifier.open(kTopic, payload);
  ASSERT_FALSE(plain.ok());
  EXPECT_EQ(plain.error().message(), "unsigned message");

  // Signed by a key the agent does not trust.
  auto forged = Signer::make(attacker, nullptr)->seal(kTopic, payload);
  auto by_attacker = verifier.open(kTopic, *forged);
  ASSERT_FALSE(by_attacker.ok());
  EXPECT_EQ(by_attacker.error().message(), "signed by unknown key " + attacker.public_key().id() +
                                               " (trusted: " + hub.public_key().id() + ")");

  // The hub's signature with the payload changed (a broker rewriting a desired state).
  auto sealed = Signer::make(hub, nullptr)->seal(kTopic, payload);
  auto msg = decode<v1::SignedMessage>(sealed->substr(kSignedMagic.size()));
  ASSERT_TRUE(msg.ok());
  msg->set_payload(desired_payload("node-a", 8));
  auto tampered = verifier.open(kTopic, std::string(kSignedMagic) + encode(*msg));
  ASSERT_FALSE(tampered.ok());
  EXPECT_EQ(tampered.error().message().rfind(
                "forged message: the signature does not match key " + hub.public_key().id(), 0),
            0u)
      << tampered.error().message();

  // A genuine message for node-a replayed on node-b's topic.
  auto other = verifier.open(down_topic("node-b", 16, "desired"), *sealed);
  ASSERT_FALSE(other.ok());
  EXPECT_NE(other.error().message().find("forged message"), std::string::npos);

  auto garbage = verifier.open(kTopic, std::string(kSignedMagic) + "\xff\xff\xff");
  ASSERT_FALSE(garbage.ok());
  EXPECT_NE(garbage.error().message().find("malformed signed message"), std::string::npos);

  // Nothing of that changed what the verifier trusts.
  EXPECT_EQ(verifier.trusted_ids(), std::vector<std::string>{hub.public_key().id()});
  EXPECT_EQ(verifier.state(), HubKeyState{});
}

TEST(Signed, ARotationIsTakenThroughTheEndorsementAndRetiresTheOldKey) {
  auto old_key = new_key();
  auto new_key_ = new_key();
  Verifier verifier({old_key.public_key()}, {});
  auto rotating = Signer::make(new_key_, &old_key);
  ASSERT_TRUE(rotating.ok());
  const std::string payload = desired_payload("node-a", 9);
  auto opened = verifier.open(kTopic, *rotating->seal(kTopic, payload));
  ASSERT_TRUE(opened.ok()) << opened.error().message();
  EXPECT_TRUE(opened->rotated);
  EXPECT_EQ(opened->payload, payload);
  EXPECT_EQ(verifier.trusted_ids(), std::vector<std::string>{new_key_.public_key().id()});
  EXPECT_EQ(verifier.state().trusted, std::vector<std::string>{new_key_.public_key().raw()});
  EXPECT_EQ(verifier.state().retired, std::set<std::string>{old_key.public_key().id()});

  // From now on the new key alone is enough, and the old one is refused.
  auto plain_new = Signer::make(new_key_, nullptr)->seal(kTopic, payload);
  auto again = verifier.open(kTopic, *plain_new);
  ASSERT_TRUE(again.ok());
  EXPECT_FALSE(again->rotated);
  auto by_old = verifier.open(kTopic, *Signer::make(old_key, nullptr)->seal(kTopic, payload));
  ASSERT_FALSE(by_old.ok());
  EXPECT_NE(by_old.error().message().find("signed by unknown key " + old_key.public_key().id()),
            std::string::npos);

  // After a restart (the state comes back from the store) the old key stays retired even
  // though the configured file still names it.
  Verifier restarted({old_key.public_key()}, verifier.state());
  EXPECT_EQ(restarted.trusted_ids(), std::vector<std::string>{new_key_.public_key().id()});
  EXPECT_TRUE(restarted.open(kTopic, *plain_new).ok());
}

TEST(Signed, AnEndorsementByAnUntrustedKeyOrAForgedOneRotatesNothing) {
  auto hub = new_key();
  auto attacker = new_key();
  auto attacker2 = new_key();
  Verifier verifier({hub.public_key()}, {});
  const std::string payload = desired_payload("node-a", 9);

  // The attacker endorses its own key with another key of its own.
  auto self_endorsed = Signer::make(attacker, &attacker2)->seal(kTopic, payload);
  auto r1 = verifier.open(kTopic, *self_endorsed);
  ASSERT_FALSE(r1.ok());
  EXPECT_NE(r1.error().message().find("which this agent does not trust"), std::string::npos);

  // An endorsement claiming the hub's key id as signer but not signed by it.
  auto sealed = Signer::make(attacker, &attacker2)->seal(kTopic, payload);
  auto msg = decode<v1::SignedMessage>(sealed->substr(kSignedMagic.size()));
  msg->mutable_endorsement()->set_signer_key_id(hub.public_key().id());
  auto r2 = verifier.open(kTopic, std::string(kSignedMagic) + encode(*msg));
  ASSERT_FALSE(r2.ok());
  EXPECT_NE(r2.error().message().find("forged key endorsement"), std::string::npos);

  // A genuine endorsement (replayed from a real rotation) on a message the new key did not sign.
  auto next = new_key();
  auto genuine = decode<v1::SignedMessage>(
      Signer::make(next, &hub)->seal(kTopic, payload)->substr(kSignedMagic.size()));
  genuine->set_payload(desired_payload("node-a", 10));
  auto r3 = verifier.open(kTopic, std::string(kSignedMagic) + encode(*genuine));
  ASSERT_FALSE(r3.ok());
  EXPECT_NE(r3.error().message().find("forged message"), std::string::npos);

  EXPECT_EQ(verifier.trusted_ids(), std::vector<std::string>{hub.public_key().id()});
  EXPECT_EQ(verifier.state(), HubKeyState{});
}

TEST(Signed, TheSigningTransportSealsHubTopicsOnly) {
  FakeBroker broker;
  auto hub = new_key();
  auto signer = std::make_shared<const Signer>(*Signer::make(hub, nullptr));
  auto transport = make_signing_transport(broker.connect("hub"), signer);
  auto agent = broker.connect("agent");
  std::vector<Message> got;
  agent->set_handlers([&](Message m) { got.push_back(std::move(m)); }, [](bool) {});
  ASSERT_TRUE(agent->subscribe("#", 1).ok());
  ASSERT_TRUE(agent->start().ok());
  transport->set_handlers([](Message) {}, [](bool) {});
  ASSERT_TRUE(transport->start().ok());

  const std::string payload = desired_payload("node-a", 3);
  ASSERT_TRUE(transport->publish(kTopic, payload, 1).ok());
  ASSERT_TRUE(transport->publish_retained(hub_online_topic(3), "epoch").ok());
  ASSERT_TRUE(transport->publish(up_topic("node-a", 16, "hello"), "up", 1).ok());
  ASSERT_TRUE(transport->publish_retained(hub_online_topic(4), "").ok());
  ASSERT_EQ(got.size(), 4u);

  Verifier verifier({hub.public_key()}, {});
  auto desired = verifier.open(got[0].topic, got[0].payload);
  ASSERT_TRUE(desired.ok()) << desired.error().message();
  EXPECT_EQ(desired->payload, payload);
  auto online = verifier.open(got[1].topic, got[1].payload);
  ASSERT_TRUE(online.ok());
  EXPECT_EQ(online->payload, "epoch");
  EXPECT_EQ(got[2].payload, "up");
  EXPECT_EQ(got[3].payload, "");  // clearing a retained message stays an empty publish
}

TEST(Signed, HubTopicsAreTheDownTopicsAndTheOnlineAnnouncementOnly) {
  for (const char* kind : {"desired", "resync", "twin", "ota"}) {
    EXPECT_TRUE(is_hub_topic(down_topic("node-a", 16, kind))) << kind;
  }
  EXPECT_TRUE(is_hub_topic(hub_online_topic(0)));
  EXPECT_TRUE(is_hub_topic(hub_online_topic(15)));
  for (const char* kind : {"hello", "ack", "status", "heartbeat", "twin"}) {
    EXPECT_FALSE(is_hub_topic(up_topic("node-a", 16, kind))) << kind;
  }
  // A node named like a segment is still the node's up topic.
  EXPECT_FALSE(is_hub_topic(up_topic("down", 16, "status")));
  for (const char* topic :
       {"", "flotilla/v1/s/", "flotilla/v1/s/hub/online", "flotilla/v1/s//hub/online",
        "flotilla/v2/s/03/n/node-a/down/desired", "x/flotilla/v1/s/03/n/node-a/down/desired",
        "flotilla/v1/s/03/n/node-a/down/", "flotilla/v1/s/03/n//down/desired",
        "flotilla/v1/s/03/down/desired", "flotilla/v1/s/03/hub/offline"}) {
    EXPECT_FALSE(is_hub_topic(topic)) << topic;
  }
}

TEST(Signed, KeyFilesWithSeveralKeysAndBadOnesGiveClearAnswers) {
  auto a = ed25519::generate();
  auto b = ed25519::generate();
  auto both = ed25519::PublicKey::all_from_pem(a->public_pem + "\n" + b->public_pem);
  ASSERT_TRUE(both.ok());
  EXPECT_EQ(both->size(), 2u);
  auto none = ed25519::PublicKey::all_from_pem("hello");
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.error().message(), "no '-----BEGIN PUBLIC KEY-----' block");
  auto rsa_like = ed25519::PublicKey::all_from_pem(
      "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n");
  ASSERT_FALSE(rsa_like.ok());
  EXPECT_NE(rsa_like.error().message().find("public key 1: not a PEM public key"),
            std::string::npos);
  auto missing = Signer::from_files("/nonexistent/hub.key", "");
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.error().message().find("--signing-key"), std::string::npos);
}

}  // namespace
}  // namespace flotilla::sync
