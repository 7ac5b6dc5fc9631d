// OTA artifacts and rollouts over real HTTP: an Api with set_ota() on a cpp-httplib server on a
// free loopback port, over an OtaHarness.
#include <gtest/gtest.h>
#include <httplib.h>

#include <chrono>
#include <fstream>
#include <sstream>
#include <thread>

#include <filesystem>
#include "cloud-hub/flotctl/client.hpp"
#include "cloud-hub/flotctl/commands.hpp"

#include "cloud-hub/api.hpp"
#include "cloud-hub/api_ota.hpp"
#include "cloud-hub/watch_feeder.hpp"
#include "common/fs.hpp"
#include "test/hub/ota_harness.hpp"

namespace flotilla::hub::testing {
namespace {

using json = nlohmann::json;

struct OtaApiServer {
  explicit OtaApiServer(std::string public_key = "")
      : ota(std::move(public_key)),
        feeder(watch, *ota.hub.controller, ota.hub.metrics),
        api(*ota.hub.controller, ota.hub.metrics, watch) {
    ota.hub.controller->set_change_listener(feeder.listener());
    api.set_ota(ota.artifacts.get(), ota.rollouts.get());
    api.install(server);
    port = server.bind_to_any_port("127.0.0.1");
    thread = std::thread([this] { server.listen_after_bind(); });
    while (!server.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ~OtaApiServer() {
    server.stop();
    watch.close();
    thread.join();
  }
  httplib::Client client() const {
    httplib::Client c("127.0.0.1", port);
    c.set_read_timeout(std::chrono::seconds(20));
    return c;
  }
  httplib::Result put_manifest(const TestArtifact& a, const std::string& path = "fw/2.0") {
    json body = {{"manifest", a.manifest}, {"signature", a.signature}};
    return client().Put("/api/v1/artifacts/" + path, body.dump(), "application/json");
  }
  httplib::Result put_payload(const std::string& data, const std::string& path = "fw/2.0") {
    return client().Put("/api/v1/artifacts/" + path + "/payload", data, "application/octet-stream");
  }
  httplib::Result get(const std::string& path, const std::string& range = "") {
    httplib::Headers h;
    if (!range.empty()) h.insert({"Range", range});
    return client().Get(path, h);
  }

  OtaHarness ota;
  WatchLog watch;
  WatchFeeder feeder;
  Api api;
  httplib::Server server;
  int port = 0;
  std::thread thread;
};

std::string bytes(size_t n) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>((i * 131 + i / 251) & 0xff);
  return s;
}

TEST(ArtifactsApiTest, UploadServesWholeFileAndRanges) {
  OtaApiServer s;
  const std::string payload = bytes(5000);
  TestArtifact a = make_artifact(s.ota.key, "fw", "2.0", payload);
  auto res = s.put_manifest(a);
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 201) << res->body;
  res = s.put_manifest(a);
  EXPECT_EQ(res->status, 200) << res->body;
  EXPECT_EQ(json::parse(res->body)["action"], "unchanged");
  res = s.get("/api/v1/artifacts/fw/2.0");
  EXPECT_EQ(json::parse(res->body)["ready"], false);
  res = s.put_payload(payload);
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 201) << res->body;
  res = s.get("/api/v1/artifacts/fw/2.0");
  json view = json::parse(res->body);
  EXPECT_EQ(view["ready"], true);
  EXPECT_EQ(view["sha256"], sha256_hex(payload));
  EXPECT_EQ(view["size"], 5000);
  EXPECT_EQ(view["target"], "image");
  EXPECT_EQ(json::parse(s.get("/api/v1/artifacts")->body)["items"].size(), 1u);

  res = s.get("/api/v1/artifacts/fw/2.0/payload");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(res->body, payload);
  EXPECT_EQ(res->get_header_value("Accept-Ranges"), "bytes");

  res = s.get("/api/v1/artifacts/fw/2.0/payload", "bytes=1000-");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 206);
  EXPECT_EQ(res->get_header_value("Content-Range"), "bytes 1000-4999/5000");
  EXPECT_EQ(res->body, payload.substr(1000));

  res = s.get("/api/v1/artifacts/fw/2.0/payload", "bytes=10-19");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 206);
  EXPECT_EQ(res->get_header_value("Content-Range"), "bytes 10-19/5000");
  EXPECT_EQ(res->body, payload.substr(10, 10));

  // An end past the file is cut to the file; a start past it is unsatisfiable.
  res = s.get("/api/v1/artifacts/fw/2.0/payload", "bytes=4990-9999");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 206);
  EXPECT_EQ(res->body, payload.substr(4990));
  res = s.get("/api/v1/artifacts/fw/2.0/payload", "bytes=5000-");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 416);
  EXPECT_EQ(res->get_header_value("Content-Range"), "bytes */5000");
  res = s.get("/api/v1/artifacts/fw/2.0/payload", "bytes=-100");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 206);
  EXPECT_EQ(res->body, payload.substr(4900));
  // Several ranges: the whole file.
  res = s.get("/api/v1/artifacts/fw/2.0/payload", "bytes=0-1,5-6");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(res->body, payload);
  res = s.get("/api/v1/artifacts/fw/2.0/delta");
  EXPECT_EQ(res->status, 404);
  res = s.get("/api/v1/artifacts/fw/9.9/payload");
  EXPECT_EQ(res->status, 404);
}

TEST(ArtifactsApiTest, MismatchedPayloadIsRejectedAndNothingKept) {
  OtaApiServer s;
  const std::string payload = bytes(3000);
  TestArtifact a = make_artifact(s.ota.key, "fw", "2.0", payload);
  ASSERT_EQ(s.put_manifest(a)->status, 201);
  std::string tampered = payload;
  tampered[1500] ^= 1;
  auto res = s.put_payload(tampered);
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 400);
  const std::string error = json::parse(res->body)["error"];
  EXPECT_NE(error.find("digest mismatch (want sha256:" + sha256_hex(payload) +
                       ", got sha256:" + sha256_hex(tampered) + ")"),
            std::string::npos)
      << error;
  res = s.put_payload(payload.substr(0, 100));
  EXPECT_EQ(res->status, 400);
  EXPECT_NE(res->body.find("size mismatch (want 3000 bytes, got 100)"), std::string::npos)
      << res->body;
  res = s.put_payload(payload + "x");
  EXPECT_EQ(res->status, 400);
  EXPECT_EQ(json::parse(s.get("/api/v1/artifacts/fw/2.0")->body)["ready"], false);
  EXPECT_EQ(s.get("/api/v1/artifacts/fw/2.0/payload")->status, 404);
  // No temp files left behind either.
  size_t files = 0;
  for (const auto& e : std::filesystem::directory_iterator(s.ota.dir / "artifacts/fw/2.0")) {
    (void)e;
    ++files;
  }
  EXPECT_EQ(files, 2u);  // manifest.json, manifest.sig
  // A delta for a bundle without one, and a payload without a manifest.
  EXPECT_EQ(
      s.client().Put("/api/v1/artifacts/fw/2.0/delta", "d", "application/octet-stream")->status,
      400);
  EXPECT_EQ(s.put_payload(payload, "fw/7.0")->status, 404);
}

TEST(ArtifactsApiTest, ManifestsAreCheckedAndImmutable) {
  OtaApiServer s;
  TestArtifact a = make_artifact(s.ota.key, "fw", "2.0", "one");
  TestArtifact other = make_artifact(s.ota.key, "fw", "2.0", "two");
  auto res = s.put_manifest(a, "fw/2.1");
  EXPECT_EQ(res->status, 400);
  EXPECT_NE(res->body.find("the manifest is for artifact 'fw' version '2.0'"), std::string::npos)
      << res->body;
  TestArtifact bad_sig = a;
  bad_sig.signature = "not base64!";
  EXPECT_EQ(s.put_manifest(bad_sig)->status, 400);
  TestArtifact bad_manifest = a;
  bad_manifest.manifest = "{\"name\": 1}";
  EXPECT_EQ(s.put_manifest(bad_manifest)->status, 400);
  EXPECT_EQ(s.client().Put("/api/v1/artifacts/fw/2.0", "[]", "application/json")->status, 400);
  ASSERT_EQ(s.put_manifest(a)->status, 201);
  res = s.put_manifest(other);
  EXPECT_EQ(res->status, 409);
  EXPECT_NE(res->body.find("immutable"), std::string::npos);
  EXPECT_EQ(s.client().Delete("/api/v1/artifacts/fw/2.0")->status, 200);
  EXPECT_EQ(s.client().Delete("/api/v1/artifacts/fw/2.0")->status, 404);
  EXPECT_EQ(s.put_manifest(other)->status, 201);  // gone: the version is free again
}

TEST(ArtifactsApiTest, PinnedKeyRejectsForeignSignatures) {
  auto pinned = ota::generate_key();
  ASSERT_TRUE(pinned);
  OtaApiServer s(pinned->public_pem);
  TestArtifact foreign = make_artifact(s.ota.key, "fw", "2.0", "x");
  auto res = s.put_manifest(foreign);
  EXPECT_EQ(res->status, 400) << res->body;
  TestArtifact good = make_artifact(*pinned, "fw", "2.0", "x");
  EXPECT_EQ(s.put_manifest(good)->status, 201);
}

TEST(ArtifactsApiTest, LargeUploadsStreamWhileOtherBodiesKeepTheirLimit) {
  OtaApiServer s;
  const std::string payload = bytes(size_t{6} << 20);  // past the 1 MiB manifest limit
  TestArtifact a = make_artifact(s.ota.key, "fw", "2.0", payload);
  ASSERT_EQ(s.put_manifest(a)->status, 201);
  auto res = s.put_payload(payload);
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 201) << res->body;
  res = s.get("/api/v1/artifacts/fw/2.0/payload", "bytes=6000000-");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 206);
  EXPECT_EQ(res->body, payload.substr(6000000));
  // Other paths keep the manifest limit: curl (flotctl) asks with Expect: 100-continue and is
  // refused before it sends the body.
  flotctl::Client client("http://127.0.0.1:" + std::to_string(s.port));
  auto big =
      client.request("PUT", "/api/v1/workloads", std::string(2 << 20, ' '), "application/yaml");
  ASSERT_TRUE(big) << big.error().message();
  EXPECT_EQ(big->status, 413);
  EXPECT_EQ(s.get("/healthz")->status, 200);
}

TEST(ArtifactsApiTest, RolloutsOverRest) {
  OtaApiServer s;
  s.ota.upload("fw", "2.0");
  FakeAgent n1(s.ota.hub.broker, "n1");
  n1.hello(0);
  const std::string doc =
      "apiVersion: flotilla/v1\nkind: Rollout\nmetadata: {name: fw-2}\nspec:\n"
      "  artifact: {name: fw, version: '2.0'}\n";
  auto res = s.client().Put("/api/v1/rollouts/fw-2", doc, "application/yaml");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 201) << res->body;
  ASSERT_EQ(n1.assignments.size(), 1u);
  res = s.client().Put("/api/v1/workloads", doc, "application/yaml");  // flotctl apply's path
  EXPECT_EQ(res->status, 200) << res->body;
  EXPECT_EQ(json::parse(res->body)["items"][0],
            (json{{"kind", "Rollout"}, {"name", "fw-2"}, {"action", "unchanged"}}));
  EXPECT_EQ(s.client().Put("/api/v1/rollouts/other", doc, "application/yaml")->status, 400);
  res = s.client().Post("/api/v1/rollouts/fw-2/pause", "", "application/json");
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(json::parse(res->body)["status"]["phase"], "Paused");
  res = s.client().Post("/api/v1/rollouts/fw-2/pause", "", "application/json");
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(json::parse(res->body)["action"], "unchanged");
  EXPECT_EQ(s.client().Delete("/api/v1/artifacts/fw/2.0")->status, 409);
  res = s.get("/api/v1/rollouts");
  EXPECT_EQ(json::parse(res->body)["items"][0]["status"]["counts"]["inProgress"], 1);
  EXPECT_EQ(s.client().Post("/api/v1/rollouts/fw-2/abort", "", "application/json")->status, 200);
  res = s.client().Post("/api/v1/rollouts/fw-2/resume", "", "application/json");
  EXPECT_EQ(res->status, 409);
  EXPECT_NE(res->body.find("it is Aborted"), std::string::npos);
  EXPECT_EQ(s.client().Delete("/api/v1/artifacts/fw/2.0")->status, 200);
  EXPECT_EQ(s.client().Delete("/api/v1/rollouts/fw-2")->status, 200);
  EXPECT_EQ(s.get("/api/v1/rollouts/fw-2")->status, 404);
}

struct Cli {
  int code;
  std::string out;
  std::string err;
};

Cli flotctl(const OtaApiServer& s, std::vector<std::string> args) {
  std::ostringstream out, err;
  flotctl::Context ctx;
  ctx.default_hub = "http://127.0.0.1:" + std::to_string(s.port);
  ctx.now_ms = s.ota.hub.clock.wall_ms();
  int code = flotctl::run(args, ctx, out, err);
  return {code, out.str(), err.str()};
}

TEST(ArtifactsApiTest, FlotctlRolloutVerbs) {
  OtaApiServer s;
  s.ota.upload("fw", "2.0");
  FakeAgent n1(s.ota.hub.broker, "n1");
  n1.hello(0);
  FakeAgent n2(s.ota.hub.broker, "n2");
  n2.hello(0);
  const std::string file = s.ota.dir / "rollout.yaml";
  std::ofstream(file) << "apiVersion: flotilla/v1\nkind: Rollout\nmetadata: {name: fw-2}\n"
                         "spec:\n  artifact: {name: fw, version: '2.0'}\n"
                         "  waves: [{count: 1}, {percent: 100}]\n";
  Cli r = flotctl(s, {"apply", "-f", file});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "rollout/fw-2 created\n");
  n1.update_report(pb::UPDATE_HEALTH_CHECK);
  r = flotctl(s, {"rollout", "status", "fw-2"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("Phase:         Progressing"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("HealthCheck"), std::string::npos) << r.out;
  r = flotctl(s, {"rollout", "pause", "fw-2"});
  EXPECT_EQ(r.out, "rollout/fw-2 paused (phase Paused)\n");
  r = flotctl(s, {"rollout", "pause", "fw-2"});
  EXPECT_EQ(r.code, 0);
  EXPECT_EQ(r.out, "rollout/fw-2 unchanged (phase Paused)\n");
  r = flotctl(s, {"get", "rollouts"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("fw-2"), std::string::npos);
  EXPECT_NE(r.out.find("Paused"), std::string::npos);
  r = flotctl(s, {"rollout", "resume", "fw-2"});
  EXPECT_EQ(r.out, "rollout/fw-2 resumed (phase Progressing)\n");
  r = flotctl(s, {"rollout", "abort", "fw-2"});
  EXPECT_EQ(r.out, "rollout/fw-2 aborted (phase Aborted)\n");
  s.ota.rollouts->tick();  // writes the events
  r = flotctl(s, {"describe", "rollout", "fw-2"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("RolloutAborted"), std::string::npos) << r.out;
  r = flotctl(s, {"rollout", "resume", "fw-2"});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.err, "error: Failed to resume rollout 'fw-2': it is Aborted\n");
  r = flotctl(s, {"rollout", "status", "nope"});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.err, "error: rollout 'nope' not found\n");
  EXPECT_EQ(flotctl(s, {"delete", "rollout", "fw-2"}).out, "rollout/fw-2 deleted\n");
}

TEST(ArtifactsApiTest, FlotctlArtifactPushWithDeltaThenRollout) {
  OtaApiServer s;
  const std::string base = bytes(200000);
  std::string next = base;
  for (size_t i = 0; i < 2000; ++i) next[i * 97] ^= 0x5a;
  std::ofstream(s.ota.dir / "base.img", std::ios::binary) << base;
  std::ofstream(s.ota.dir / "next.img", std::ios::binary) << next;
  const std::string bundle = s.ota.dir / "bundle";
  ASSERT_EQ(flotctl(s, {"artifact", "keygen", "--out", s.ota.dir / "k"}).code, 0);
  Cli r = flotctl(s, {"artifact", "build", "--name", "fw", "--version", "2.0", "--target", "image",
                      "--payload", s.ota.dir / "next.img", "--base", s.ota.dir / "base.img",
                      "--base-version", "1.0", "--level", "3", "--out", bundle});
  ASSERT_EQ(r.code, 0) << r.err;
  ASSERT_EQ(flotctl(s, {"artifact", "sign", "--key", s.ota.dir / "k.key", bundle}).code, 0);
  r = flotctl(s, {"artifact", "push", bundle});
  ASSERT_EQ(r.code, 0) << r.err;
  json view = json::parse(s.get("/api/v1/artifacts/fw/2.0")->body);
  EXPECT_EQ(view["ready"], true);
  EXPECT_EQ(view["deltaReady"], true);
  EXPECT_EQ(view["delta"]["baseVersion"], "1.0");
  EXPECT_EQ(s.get("/api/v1/artifacts/fw/2.0/payload")->body, next);
  auto delta = s.get("/api/v1/artifacts/fw/2.0/delta", "bytes=0-");
  EXPECT_EQ(delta->status, 206);
  EXPECT_EQ(delta->body.size(), view["delta"]["size"].get<size_t>());
  // Pushing the same bundle again is harmless.
  EXPECT_EQ(flotctl(s, {"artifact", "push", bundle}).code, 0);

  FakeAgent n1(s.ota.hub.broker, "n1");
  n1.hello(0);
  ASSERT_EQ(s.ota.rollouts
                ->apply([] {
                  RolloutManifest m;
                  m.name = "fw-2";
                  m.artifact = "fw";
                  m.artifact_version = "2.0";
                  return m;
                }())
                .code,
            RolloutOutcome::Code::kCreated);
  ASSERT_EQ(n1.assignments.size(), 1u);
  EXPECT_EQ(n1.assignments[0].delta_url(), "http://hub.test:8080/api/v1/artifacts/fw/2.0/delta");
  auto pub = fs::read_file(s.ota.dir / "k.pub");
  ASSERT_TRUE(pub);
  EXPECT_TRUE(ota::verify(*pub, n1.assignments[0].manifest(), n1.assignments[0].signature()));
}

}  // namespace
}  // namespace flotilla::hub::testing
