// API authentication, roles, HTTPS and the audit log (docs/hub.md "API authentication and
// audit"): an Api with tokens and an AuditLog on a real cpp-httplib server over an OtaHarness, the
// Hub itself for its flags' failures and HTTPS, and flotctl's client against both.
#include <gtest/gtest.h>
#include <httplib.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <thread>

#include "cloud-hub/api.hpp"
#include "cloud-hub/api_auth.hpp"
#include "cloud-hub/audit_log.hpp"
#include "cloud-hub/flotctl/client.hpp"
#include "cloud-hub/flotctl/commands.hpp"
#include "cloud-hub/hub.hpp"
#include "cloud-hub/watch_feeder.hpp"
#include "common/sqlite.hpp"
#include "test/hub/ota_harness.hpp"
#include "test/support/temp_dir.hpp"

namespace flotilla::hub::testing {
namespace {

using json = nlohmann::json;

// A token of each role, made as flotctl token create makes them.
struct Tokens {
  Tokens() {
    for (auto* t : {&viewer, &op, &admin}) {
      auto made = new_token();
      EXPECT_TRUE(made.ok());
      *t = made ? *made : "";
    }
    std::string file = "# test tokens\n\n" + token_line("vera", Role::kViewer, viewer) + "\n" +
                       token_line("otto", Role::kOperator, op) + "\n" +
                       token_line("ada", Role::kAdmin, admin) + "\n";
    auto parsed = TokenTable::parse(file, "tokens");
    EXPECT_TRUE(parsed.ok()) << parsed.error().message();
    if (parsed) table = std::move(*parsed);
  }
  std::string viewer, op, admin;
  TokenTable table;
};

struct AuthApiServer {
  explicit AuthApiServer(bool auth = true)
      : feeder(watch, *ota.hub.controller, ota.hub.metrics),
        api(*ota.hub.controller, ota.hub.metrics, watch) {
    ota.hub.controller->set_change_listener(feeder.listener());
    auto log = AuditLog::open(ota.dir / "audit.db");
    EXPECT_TRUE(log.ok()) << log.error().message();
    audit = std::move(*log);
    api.set_ota(ota.artifacts.get(), ota.rollouts.get());
    api.set_auth(auth ? &tokens.table : nullptr, audit.get());
    api.install(server);
    port = server.bind_to_any_port("127.0.0.1");
    thread = std::thread([this] { server.listen_after_bind(); });
    while (!server.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ~AuthApiServer() {
    server.stop();
    watch.close();
    thread.join();
  }
  httplib::Client client(const std::string& token = "") const {
    httplib::Client c("127.0.0.1", port);
    if (!token.empty()) c.set_bearer_token_auth(token.c_str());
    return c;
  }
  std::vector<AuditRecord> records() {
    auto r = audit->list(0, 1000);
    EXPECT_TRUE(r.ok());
    return r ? *r : std::vector<AuditRecord>{};
  }

  Tokens tokens;
  OtaHarness ota;
  WatchLog watch;
  WatchFeeder feeder;
  std::unique_ptr<AuditLog> audit;
  Api api;
  httplib::Server server;
  int port = 0;
  std::thread thread;
};

const char* kWorkload =
    "apiVersion: flotilla/v1\nkind: Workload\nmetadata: {name: web}\nspec:\n  type: process\n"
    "  replicas: 1\n  process: {command: [/bin/sleep, '100']}\n";

std::string error_of(const httplib::Result& r) {
  auto j = json::parse(r->body, nullptr, false);
  return j.is_object() ? j.value("error", "") : "";
}

TEST(ApiAuthTest, NoTokenIs401WithBearerChallenge) {
  AuthApiServer s;
  for (const std::string path : {"/api/v1/nodes", "/api/v1/workloads", "/metrics", "/api/v1/events",
                                 "/api/v1/rollouts", "/api/v1/devices"}) {
    auto r = s.client().Get(path);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 401) << path;
    EXPECT_EQ(r->get_header_value("WWW-Authenticate"), "Bearer realm=\"flotilla\"");
    EXPECT_NE(error_of(r).find("bearer token"), std::string::npos) << r->body;
  }
  auto r = s.client().Put("/api/v1/workloads", kWorkload, "application/yaml");
  EXPECT_EQ(r->status, 401);
  EXPECT_FALSE(*s.ota.hub.controller->workload_view("web"));
  // Probes stay open.
  EXPECT_EQ(s.client().Get("/healthz")->status, 200);
  EXPECT_EQ(s.client().Get("/readyz")->status, 200);
  // So are the web console's files: they hold no fleet data (its API calls need a token).
  EXPECT_EQ(s.client().Get("/")->status, 200);
  EXPECT_EQ(s.client().Get("/console/app.js")->status, 200);
}

TEST(ApiAuthTest, UnknownOrMalformedTokenIs401) {
  AuthApiServer s;
  auto r = s.client(s.tokens.admin + "x").Get("/api/v1/nodes");
  EXPECT_EQ(r->status, 401);
  EXPECT_NE(r->get_header_value("WWW-Authenticate").find("invalid_token"), std::string::npos);
  // The hash of a token is not the token.
  r = s.client(sha256_hex(s.tokens.admin)).Get("/api/v1/nodes");
  EXPECT_EQ(r->status, 401);
  r = s.client().Get("/api/v1/nodes", {{"Authorization", "Basic " + s.tokens.admin}});
  EXPECT_EQ(r->status, 401);
  // The scheme is case-insensitive.
  r = s.client().Get("/api/v1/nodes", {{"Authorization", "bearer " + s.tokens.viewer}});
  EXPECT_EQ(r->status, 200);
}

TEST(ApiAuthTest, ViewerReadsButCannotApplyAndNothingIsApplied) {
  AuthApiServer s;
  EXPECT_EQ(s.client(s.tokens.viewer).Get("/api/v1/nodes")->status, 200);
  EXPECT_EQ(s.client(s.tokens.viewer).Get("/api/v1/events")->status, 200);
  EXPECT_EQ(s.client(s.tokens.viewer).Get("/metrics")->status, 200);
  auto r = s.client(s.tokens.viewer).Put("/api/v1/workloads", kWorkload, "application/yaml");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 403);
  EXPECT_EQ(error_of(r), "token 'vera' has role viewer; PUT /api/v1/workloads needs role operator");
  EXPECT_FALSE(*s.ota.hub.controller->workload_view("web"));
  EXPECT_EQ(s.client(s.tokens.viewer).Get("/api/v1/workloads/web")->status, 404);
  r = s.client(s.tokens.viewer).Put("/api/v1/devices/d1", R"({"node": "n1"})", "application/json");
  EXPECT_EQ(r->status, 403);
  EXPECT_FALSE(*s.ota.hub.controller->device_view("d1"));
  // The refusals are in the audit log, with who tried.
  auto records = s.records();
  ASSERT_EQ(records.size(), 2u);
  EXPECT_EQ(records[0].who, "vera");
  EXPECT_EQ(records[0].status, 403);
  EXPECT_EQ(records[0].method, "PUT");
  EXPECT_TRUE(records[0].after.is_null());
}

TEST(ApiAuthTest, OperatorChangesButAdminRoutesNeedAdmin) {
  AuthApiServer s;
  auto r = s.client(s.tokens.op).Put("/api/v1/workloads", kWorkload, "application/yaml");
  EXPECT_EQ(r->status, 200) << r->body;
  EXPECT_TRUE(*s.ota.hub.controller->workload_view("web"));
  FakeAgent n1(s.ota.hub.broker, "n1");
  n1.hello(0);
  r = s.client(s.tokens.op).Delete("/api/v1/nodes/n1");
  EXPECT_EQ(r->status, 403);
  EXPECT_EQ(error_of(r),
            "token 'otto' has role operator; DELETE /api/v1/nodes/n1 needs role admin");
  EXPECT_TRUE(*s.ota.hub.controller->node_view("n1"));
  r = s.client(s.tokens.op).Get("/api/v1/audit");
  EXPECT_EQ(r->status, 403);
  EXPECT_EQ(s.client(s.tokens.admin).Get("/api/v1/audit")->status, 200);
  EXPECT_EQ(s.client(s.tokens.admin).Delete("/api/v1/nodes/n1")->status, 200);
  EXPECT_FALSE(*s.ota.hub.controller->node_view("n1"));
  EXPECT_EQ(s.client(s.tokens.op).Delete("/api/v1/workloads/web")->status, 200);
  // A method the table does not know is the admin's: an operator cannot reach past it.
  EXPECT_EQ(s.client(s.tokens.op).Patch("/api/v1/workloads/web", "{}", "application/json")->status,
            403);
}

TEST(ApiAuthTest, AuthOffServesEveryoneAsAnonymousAndStillAudits) {
  AuthApiServer s(/*auth=*/false);
  EXPECT_EQ(s.client().Get("/api/v1/nodes")->status, 200);
  auto r = s.client().Put("/api/v1/workloads", kWorkload, "application/yaml");
  EXPECT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(s.client().Get("/api/v1/audit")->status, 200);
  auto records = s.records();
  ASSERT_EQ(records.size(), 1u);
  EXPECT_EQ(records[0].who, "anonymous");
  EXPECT_EQ(records[0].role, "none");
  EXPECT_EQ(records[0].kind, "Workload");
}

TEST(ApiAuthTest, EveryChangeKindIsAuditedWithBeforeAndAfter) {
  AuthApiServer s;
  FakeAgent n1(s.ota.hub.broker, "n1");
  n1.hello(0);
  auto op = s.client(s.tokens.op);
  // Apply of two documents: one record each.
  const std::string two = std::string(kWorkload) +
                          "---\napiVersion: flotilla/v1\nkind: Device\nmetadata: {name: d1}\n"
                          "spec: {node: n1, desired: {rate: 1}}\n";
  EXPECT_EQ(op.Put("/api/v1/workloads", two, "application/yaml")->status, 200);
  EXPECT_EQ(
      op.Patch("/api/v1/devices/d1/desired", R"({"desired": {"rate": 2}})", "application/json")
          ->status,
      200);
  EXPECT_EQ(op.Delete("/api/v1/workloads/web")->status, 200);
  TestArtifact a = make_artifact(s.ota.key, "fw", "2.0", std::string(3000, 'p'));
  EXPECT_EQ(op.Put("/api/v1/artifacts/fw/2.0",
                   json({{"manifest", a.manifest}, {"signature", a.signature}}).dump(),
                   "application/json")
                ->status,
            201);
  EXPECT_EQ(
      op.Put("/api/v1/artifacts/fw/2.0/payload", a.payload, "application/octet-stream")->status,
      201);
  const std::string rollout =
      "apiVersion: flotilla/v1\nkind: Rollout\nmetadata: {name: fw-2}\nspec:\n"
      "  artifact: {name: fw, version: '2.0'}\n";
  EXPECT_EQ(op.Put("/api/v1/rollouts/fw-2", rollout, "application/yaml")->status, 201);
  EXPECT_EQ(op.Post("/api/v1/rollouts/fw-2/pause", "", "application/json")->status, 200);
  EXPECT_EQ(s.client(s.tokens.admin).Delete("/api/v1/nodes/n1")->status, 200);

  auto r = s.client(s.tokens.admin).Get("/api/v1/audit?limit=100");
  ASSERT_EQ(r->status, 200);
  const json items = json::parse(r->body)["items"];
  ASSERT_EQ(items.size(), 9u) << items.dump(2);
  auto expect = [&](size_t i, const std::string& who, const std::string& method,
                    const std::string& kind, const std::string& name, int status) {
    SCOPED_TRACE(items[i].dump());
    EXPECT_EQ(items[i]["who"], who);
    EXPECT_EQ(items[i]["method"], method);
    EXPECT_EQ(items[i]["kind"], kind);
    EXPECT_EQ(items[i]["name"], name);
    EXPECT_EQ(items[i]["status"], status);
    EXPECT_EQ(items[i]["id"], static_cast<int>(i) + 1);
    EXPECT_EQ(items[i]["time"].get<std::string>().back(), 'Z');
  };
  expect(0, "otto", "PUT", "Workload", "web", 200);
  EXPECT_TRUE(items[0]["before"].is_null());
  EXPECT_EQ(items[0]["after"]["spec"]["replicas"], 1);
  expect(1, "otto", "PUT", "Device", "d1", 200);
  EXPECT_TRUE(items[1]["before"].is_null());
  EXPECT_EQ(items[1]["after"]["desired"]["rate"], 1);
  expect(2, "otto", "PATCH", "Device", "d1", 200);
  EXPECT_EQ(items[2]["before"]["desired"]["rate"], 1);
  EXPECT_EQ(items[2]["after"]["desired"]["rate"], 2);
  expect(3, "otto", "DELETE", "Workload", "web", 200);
  EXPECT_EQ(items[3]["before"]["metadata"]["name"], "web");
  EXPECT_TRUE(items[3]["after"].is_null());
  expect(4, "otto", "PUT", "Artifact", "fw/2.0", 201);
  EXPECT_TRUE(items[4]["before"].is_null());
  EXPECT_EQ(items[4]["after"]["ready"], false);
  expect(5, "otto", "PUT", "Artifact", "fw/2.0", 201);
  EXPECT_EQ(items[5]["target"], "/api/v1/artifacts/fw/2.0/payload");
  EXPECT_EQ(items[5]["after"]["ready"], true);
  expect(6, "otto", "PUT", "Rollout", "fw-2", 201);
  expect(7, "otto", "POST", "Rollout", "fw-2", 200);
  EXPECT_EQ(items[7]["after"]["status"]["phase"], "Paused");
  EXPECT_NE(items[7]["before"]["status"]["phase"], "Paused");
  expect(8, "ada", "DELETE", "Node", "n1", 200);
  EXPECT_EQ(items[8]["before"]["name"], "n1");
  EXPECT_TRUE(items[8]["after"].is_null());

  // since=ID pages forward; the log cannot be edited.
  r = s.client(s.tokens.admin).Get("/api/v1/audit?since=7&limit=1");
  EXPECT_EQ(json::parse(r->body)["items"][0]["id"], 8);
  EXPECT_EQ(s.client(s.tokens.admin).Get("/api/v1/audit?limit=0")->status, 400);
}

TEST(ApiAuthTest, AuditLogIsAppendOnly) {
  flotilla::testing::TempDir dir;
  auto log = AuditLog::open(dir / "audit.db");
  ASSERT_TRUE(log.ok());
  std::vector<AuditRecord> records(1);
  records[0].who = "ada";
  records[0].kind = "Node";
  ASSERT_TRUE((*log)->append(records).ok());
  EXPECT_EQ(records[0].id, 1);
  auto db = sql::Db::open(dir / "audit.db");
  ASSERT_TRUE(db.ok());
  auto st = db->exec("UPDATE audit SET who = 'mallory'");
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.error().message().find("append-only"), std::string::npos);
  EXPECT_FALSE(db->exec("DELETE FROM audit").ok());
  auto listed = (*log)->list(0, 10);
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ((*listed)[0].who, "ada");
}

TEST(ApiAuthTest, TokensFileErrorsNameTheLine) {
  const std::string good = token_line("ada", Role::kAdmin, "secret");
  struct Case {
    std::string text;
    std::string want;
  };
  for (const auto& c : std::vector<Case>{
           {good + "\nbob operator\n", "tokens: line 2: want NAME ROLE SHA256 (3 fields), got 2"},
           {good + "\nbob root " + sha256_hex("x") + "\n", "tokens: line 2: unknown role 'root'"},
           {"# c\nbob viewer abc\n", "tokens: line 2: the token's SHA-256 must be 64 hex digits"},
           {good + "\n" + good + "\n", "tokens: line 2: token name 'ada' appears twice"},
           {"b/ob viewer " + sha256_hex("x") + "\n", "tokens: line 1: token name 'b/ob'"},
           {"# only comments\n", "tokens: holds no tokens"},
       }) {
    auto t = TokenTable::parse(c.text, "tokens");
    ASSERT_FALSE(t.ok()) << c.text;
    EXPECT_EQ(t.error().message().rfind(c.want, 0), 0u) << t.error().message();
  }
  auto t = TokenTable::parse(good + "\n", "tokens");
  ASSERT_TRUE(t.ok());
  ASSERT_NE(t->find("secret"), nullptr);
  EXPECT_EQ(t->find("secret")->name, "ada");
  EXPECT_EQ(t->find("secreT"), nullptr);
  EXPECT_EQ(t->find(""), nullptr);
}

TEST(ApiAuthTest, RouteTable) {
  EXPECT_EQ(route_rule("GET", "/healthz").role, Role::kOpen);
  EXPECT_EQ(route_rule("GET", "/api/v1/artifacts/fw/2.0/payload").role, Role::kOpen);
  EXPECT_EQ(route_rule("PUT", "/api/v1/artifacts/fw/2.0/payload").role, Role::kOperator);
  EXPECT_EQ(route_rule("HEAD", "/api/v1/nodes").role, Role::kViewer);
  // The console's static files are open (a browser opening the page sends no token); the data
  // its script reads is not.
  EXPECT_EQ(route_rule("GET", "/").role, Role::kOpen);
  EXPECT_EQ(route_rule("GET", "/console/app.js").role, Role::kOpen);
  EXPECT_EQ(route_rule("GET", "/console/a/b").role, Role::kViewer);
  EXPECT_EQ(route_rule("GET", "/metrics").role, Role::kViewer);
  EXPECT_EQ(route_rule("POST", "/").role, Role::kAdmin);
  EXPECT_EQ(route_rule("GET", "/api/v1/audit").role, Role::kAdmin);
  EXPECT_EQ(route_rule("POST", "/api/v1/rollouts/r/abort").role, Role::kOperator);
  EXPECT_EQ(route_rule("DELETE", "/api/v1/nodes/n1").role, Role::kAdmin);
  EXPECT_EQ(route_rule("DELETE", "/api/v1/nodes/").role, Role::kAdmin);
  EXPECT_EQ(route_rule("PUT", "/api/v1/somethingnew").role, Role::kAdmin);
  auto rule = route_rule("PATCH", "/api/v1/devices/d1/desired");
  EXPECT_EQ(rule.target.kind, "Device");
  EXPECT_EQ(rule.target.name, "d1");
}

// flotctl token create makes a token whose printed line the hub accepts.
TEST(ApiAuthTest, FlotctlTokenCreate) {
  flotctl::Context ctx;
  std::ostringstream out, err;
  ASSERT_EQ(flotctl::run({"token", "create", "ci-bot", "--role", "operator"}, ctx, out, err), 0)
      << err.str();
  std::istringstream lines(out.str());
  std::string first, line, last;
  std::getline(lines, first);
  while (std::getline(lines, line)) last = line;
  ASSERT_EQ(first.rfind("token: ", 0), 0u) << out.str();
  const std::string token = first.substr(7);
  EXPECT_EQ(token.size(), 43u);
  EXPECT_EQ(out.str().find(sha256_hex(token)) != std::string::npos, true);
  auto t = TokenTable::parse(last, "tokens");
  ASSERT_TRUE(t.ok()) << t.error().message();
  ASSERT_NE(t->find(token), nullptr);
  EXPECT_EQ(t->find(token)->role, Role::kOperator);
  std::ostringstream out2, err2;
  EXPECT_EQ(flotctl::run({"token", "create", "x", "--role", "root"}, ctx, out2, err2), 2);
  EXPECT_NE(err2.str().find("unknown role 'root'"), std::string::npos);
}

// flotctl sends --token and reads the audit log.
TEST(ApiAuthTest, FlotctlWithTokenAppliesAndReadsAudit) {
  AuthApiServer s;
  flotilla::testing::TempDir dir;
  std::ofstream(dir / "web.yaml") << kWorkload;
  flotctl::Context ctx;
  ctx.default_hub = "http://127.0.0.1:" + std::to_string(s.port);
  auto run = [&](std::vector<std::string> args, std::string* out_text = nullptr) {
    std::ostringstream out, err;
    int rc = flotctl::run(args, ctx, out, err);
    if (out_text) *out_text = out.str() + err.str();
    return rc;
  };
  std::string text;
  EXPECT_EQ(run({"apply", "-f", dir / "web.yaml"}, &text), 1);
  EXPECT_NE(text.find("bearer token"), std::string::npos) << text;
  EXPECT_EQ(run({"--token", s.tokens.viewer, "apply", "-f", dir / "web.yaml"}, &text), 1);
  EXPECT_NE(text.find("needs role operator"), std::string::npos) << text;
  ctx.default_token = s.tokens.op;  // as $FLOTILLA_TOKEN
  EXPECT_EQ(run({"apply", "-f", dir / "web.yaml"}, &text), 0) << text;
  EXPECT_EQ(run({"audit"}, &text), 1);
  EXPECT_NE(text.find("needs role admin"), std::string::npos) << text;
  EXPECT_EQ(run({"audit", "--token=" + s.tokens.admin, "--limit", "10"}, &text), 0) << text;
  EXPECT_NE(text.find("ID"), std::string::npos);
  EXPECT_NE(text.find("Workload/web"), std::string::npos) << text;
  EXPECT_NE(text.find("otto"), std::string::npos) << text;
  EXPECT_NE(text.find("created"), std::string::npos) << text;
  EXPECT_NE(text.find("vera"), std::string::npos) << text;  // the refused apply
}

// flotctl's watches (get -w) carry the token too.
TEST(ApiAuthTest, WatchStreamsNeedAViewerToken) {
  AuthApiServer s;
  auto watch = [&](const std::string& token) {
    flotctl::Client c("http://127.0.0.1:" + std::to_string(s.port), 5000, {token, ""});
    // Stops after a second: enough to see the answer's status.
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(1);
    return c.stream(
        "/api/v1/nodes?watch=true", [](const std::string&) { return false; },
        [until] { return std::chrono::steady_clock::now() > until; }, 5000);
  };
  auto none = watch("");
  ASSERT_TRUE(none.ok()) << none.error().message();
  EXPECT_EQ(none->status, 401);
  auto viewer = watch(s.tokens.viewer);
  ASSERT_TRUE(viewer.ok()) << viewer.error().message();
  EXPECT_EQ(viewer->status, 200);
}

// A self-signed certificate for 127.0.0.1 made by the openssl command line in `dir`.
bool make_cert(const std::string& dir) {
  const std::string cmd =
      "openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=127.0.0.1 "
      "-addext subjectAltName=IP:127.0.0.1 -keyout " +
      dir + "/key.pem -out " + dir + "/cert.pem 2>" + dir + "/openssl.log";
  return std::system(cmd.c_str()) == 0;
}

TEST(ApiAuthTest, HubRefusesABadTokensFileOrTlsPair) {
  flotilla::testing::TempDir dir;
  std::ofstream(dir / "tokens") << token_line("ada", Role::kAdmin, "s") << "\nbob boss x\n";
  HubOptions o;
  o.mqtt_uri = "tcp://127.0.0.1:1";
  o.data_dir = dir / "data";
  o.api_tokens_file = dir / "tokens";
  auto hub = Hub::create(o);
  ASSERT_FALSE(hub.ok());
  EXPECT_EQ(hub.error().message(),
            "Failed to load API tokens: " + (dir / "tokens") +
                ": line 2: unknown role 'boss' (want viewer, operator or admin)");
  o.api_tokens_file = dir / "missing";
  hub = Hub::create(o);
  ASSERT_FALSE(hub.ok());
  EXPECT_NE(hub.error().message().find("Failed to load API tokens"), std::string::npos);
  o.api_tokens_file = "";
  o.api_tls_cert = dir / "tokens";  // not a certificate
  o.api_tls_key = dir / "tokens";
  hub = Hub::create(o);
  ASSERT_FALSE(hub.ok());
  EXPECT_NE(hub.error().message().find("cannot load certificate"), std::string::npos)
      << hub.error().message();
}

TEST(ApiAuthTest, HttpsWithTheCaAndRefusedWithoutIt) {
  flotilla::testing::TempDir dir;
  ASSERT_TRUE(make_cert(dir.path())) << "openssl failed; see " << dir / "openssl.log";
  Tokens tokens;
  std::ofstream(dir / "tokens") << token_line("ada", Role::kAdmin, tokens.admin) << "\n";
  HubOptions o;
  o.mqtt_uri = "tcp://127.0.0.1:1";  // nothing there: the API serves regardless
  o.data_dir = dir / "data";
  o.listen_port = 0;
  o.api_tokens_file = dir / "tokens";
  o.api_tls_cert = dir / "cert.pem";
  o.api_tls_key = dir / "key.pem";
  auto hub = Hub::create(o);
  ASSERT_TRUE(hub.ok()) << hub.error().message();
  ASSERT_TRUE((*hub)->start().ok());
  const std::string url = "https://127.0.0.1:" + std::to_string((*hub)->port());
  flotctl::Client trusted(url, 5000, {tokens.admin, dir / "cert.pem"});
  auto r = trusted.request("GET", "/api/v1/nodes");
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_EQ(r->status, 200);
  flotctl::Client no_token(url, 5000, {"", dir / "cert.pem"});
  EXPECT_EQ(no_token.request("GET", "/api/v1/nodes")->status, 401);
  flotctl::Client untrusting(url, 5000, {tokens.admin, ""});
  auto refused = untrusting.request("GET", "/api/v1/nodes");
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.error().message().find("certificate"), std::string::npos)
      << refused.error().message();
  flotctl::Client plain("http://127.0.0.1:" + std::to_string((*hub)->port()), 5000,
                        {tokens.admin, ""});
  auto r2 = plain.request("GET", "/api/v1/nodes");
  EXPECT_TRUE(!r2.ok() || r2->status != 200);
  (*hub)->stop();
}

}  // namespace
}  // namespace flotilla::hub::testing
