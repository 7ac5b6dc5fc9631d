// Test doubles for OTA rollouts and artifacts: an ArtifactStore in a temporary folder, an
// UpdateRollouts over a database file there (reopen() is a hub restart), wired to a HubHarness's
// controller and sync server, and helpers that make signed artifacts.
#pragma once

#include <memory>
#include <string>

#include "cloud-hub/artifact_store.hpp"
#include "cloud-hub/update_rollouts.hpp"
#include "common/base64.hpp"
#include "common/sha256.hpp"
#include "ota/manifest.hpp"
#include "ota/signing.hpp"
#include "test/hub/fake_agent.hpp"
#include "test/support/temp_dir.hpp"

namespace flotilla::hub::testing {

// A signed artifact: its manifest text, base64 signature and payload.
struct TestArtifact {
  std::string manifest;
  std::string signature;  // base64
  std::string payload;
};

inline TestArtifact make_artifact(const ota::KeyPair& key, const std::string& name,
                                  const std::string& version, std::string payload) {
  ota::Manifest m;
  m.name = name;
  m.version = version;
  m.target = "image";
  m.sha256 = sha256_hex(payload);
  m.size = payload.size();
  TestArtifact a;
  a.manifest = ota::manifest_json(m);
  auto sig = ota::sign(key.private_pem, a.manifest);
  if (!sig) ADD_FAILURE() << sig.error().message();
  a.signature = base64_encode(sig ? *sig : std::string(64, '\0'));
  a.payload = std::move(payload);
  return a;
}

// One chunk at a time, as an HTTP body would come.
inline ArtifactStore::Body body_of(const std::string& data, size_t chunk = 1000) {
  return [data, chunk](const ArtifactStore::Sink& sink) {
    for (size_t at = 0; at < data.size(); at += chunk) {
      if (!sink(data.data() + at, std::min(chunk, data.size() - at))) return false;
    }
    return true;
  };
}

struct OtaHarness {
  // `ingest_thread`: the sync server hands messages to per-shard ingest threads, as in the hub.
  explicit OtaHarness(std::string public_key = "", bool ingest_thread = false)
      : hub(":memory:", ControllerOptions{}, ingest_thread) {
    auto k = ota::generate_key();
    if (!k) ADD_FAILURE() << k.error().message();
    if (k) key = *k;
    auto a = ArtifactStore::open(dir / "artifacts", std::move(public_key));
    if (!a) ADD_FAILURE() << a.error().message();
    artifacts = std::move(*a);
    reopen();
  }
  // A new UpdateRollouts over the same database: what a hub restart sees. With `open_db`, over
  // the connection it makes (PostgreSQL) instead of the file.
  void reopen() {
    hub.sync_server->set_rollouts(nullptr);
    rollouts.reset();
    UpdateRolloutsOptions o;
    o.db_path = dir / "rollouts.db";
    o.public_url = "http://hub.test:8080";
    rollouts = std::make_unique<UpdateRollouts>(hub.clock, *hub.hub_transport, *artifacts,
                                                *hub.controller, o);
    auto st = open_db ? rollouts->open(open_db()) : rollouts->open();
    if (!st) ADD_FAILURE() << st.error().message();
    hub.sync_server->set_rollouts(rollouts.get());
  }
  // Stores a ready artifact (manifest and payload).
  TestArtifact upload(const std::string& name, const std::string& version,
                      const std::string& payload = std::string(5000, 'p')) {
    TestArtifact a = make_artifact(key, name, version, payload);
    auto m = artifacts->put_manifest(name, version, a.manifest, a.signature);
    EXPECT_EQ(m.code, ArtifactOutcome::Code::kCreated) << m.message;
    auto f = artifacts->put_file(name, version, false, body_of(a.payload));
    EXPECT_EQ(f.code, ArtifactOutcome::Code::kCreated) << f.message;
    return a;
  }

  std::function<std::unique_ptr<db::Conn>()> open_db;
  flotilla::testing::TempDir dir;
  HubHarness hub;
  ota::KeyPair key;
  std::unique_ptr<ArtifactStore> artifacts;
  std::unique_ptr<UpdateRollouts> rollouts;
};

}  // namespace flotilla::hub::testing
