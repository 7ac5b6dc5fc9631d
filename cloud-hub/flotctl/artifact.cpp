#include "cloud-hub/flotctl/artifact.hpp"

#include <cstdlib>
#include <iomanip>
#include <map>
#include <ostream>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#include "cloud-hub/flotctl/client.hpp"
#include "cloud-hub/pki.hpp"
#include "common/base64.hpp"
#include "common/fs.hpp"
#include "ota/bundle.hpp"
#include "ota/file_io.hpp"

namespace flotilla::flotctl {
namespace {

constexpr int kOk = 0;
constexpr int kFailed = 1;
constexpr int kUsage = 2;

// A bundle upload may take a while on a slow link: 64 MiB at 1 MiB/s is a minute.
constexpr long kPushTimeoutMs = 30L * 60 * 1000;

const std::set<std::string> kValueFlags = {"--hub",    "--out",     "--name", "--version",
                                           "--target", "--payload", "--base", "--base-version",
                                           "--key",    "--pub",     "--level"};

struct ArtifactArgs {
  std::string verb;
  std::map<std::string, std::string> flags;
  std::vector<std::string> positional;
  bool help = false;
};

Expected<ArtifactArgs> parse(const std::vector<std::string>& args) {
  ArtifactArgs a;
  bool seen_artifact = false;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (arg == "-h" || arg == "--help") {
      a.help = true;
      continue;
    }
    if (arg.rfind("--", 0) == 0) {
      const size_t eq = arg.find('=');
      const std::string name = arg.substr(0, eq);
      if (!kValueFlags.count(name)) return Error("unknown flag '" + arg + "'");
      if (eq != std::string::npos) {
        a.flags[name] = arg.substr(eq + 1);
      } else if (i + 1 < args.size()) {
        a.flags[name] = args[++i];
      } else {
        return Error(name + " needs a value");
      }
      continue;
    }
    if (!seen_artifact) {
      seen_artifact = true;  // the word "artifact" itself
    } else if (a.verb.empty()) {
      a.verb = arg;
    } else {
      a.positional.push_back(arg);
    }
  }
  return a;
}

class ArtifactRunner {
 public:
  ArtifactRunner(ArtifactArgs args, const std::string& default_hub, const ClientAuth& auth,
                 std::ostream& out, std::ostream& err)
      : args_(std::move(args)), default_hub_(default_hub), auth_(auth), out_(out), err_(err) {}

  int run() {
    const std::string& verb = args_.verb;
    if (verb == "keygen") return keygen();
    if (verb == "build") return build();
    if (verb == "sign") return sign();
    if (verb == "verify") return verify();
    if (verb == "push") return push();
    if (verb.empty()) return usage_error("artifact needs a verb");
    return usage_error("unknown artifact verb '" + verb + "'");
  }

 private:
  int fail(const std::string& message) {
    err_ << "error: " << message << "\n";
    return kFailed;
  }
  int usage_error(const std::string& message) {
    err_ << "flotctl: " << message << "\n\n" << artifact_usage();
    return kUsage;
  }
  std::string flag(const std::string& name) const {
    auto it = args_.flags.find(name);
    return it == args_.flags.end() ? "" : it->second;
  }
  // The usage error for the first of `required` that is missing, or "" when all are there.
  std::string missing(std::initializer_list<const char*> required) const {
    for (const char* name : required) {
      if (flag(name).empty()) return "artifact " + args_.verb + " needs " + name;
    }
    return "";
  }
  // The one DIR argument of sign, verify and push.
  Expected<std::string> bundle_dir() const {
    if (args_.positional.size() != 1) {
      return Error("artifact " + args_.verb + " needs one bundle directory");
    }
    return args_.positional[0];
  }

  int keygen() {
    if (auto m = missing({"--out"}); !m.empty()) return usage_error(m);
    const std::string key_path = flag("--out") + ".key";
    const std::string pub_path = flag("--out") + ".pub";
    if (auto st = pki::write_ed25519_key_pair(flag("--out")); !st) {
      return fail(st.error().message());
    }
    out_ << "wrote " << key_path << " (private: keep it secret) and " << pub_path
         << " (give it to agents: --ota-public-key)\n";
    return kOk;
  }

  int build() {
    if (auto m = missing({"--name", "--version", "--target", "--payload", "--out"}); !m.empty()) {
      return usage_error(m);
    }
    if (!args_.positional.empty()) return usage_error("unexpected '" + args_.positional[0] + "'");
    ota::BuildRequest req;
    req.name = flag("--name");
    req.version = flag("--version");
    req.target = flag("--target");
    req.payload_path = flag("--payload");
    req.base_path = flag("--base");
    req.base_version = flag("--base-version");
    req.out_dir = flag("--out");
    if (!flag("--level").empty()) {
      const std::string& text = flag("--level");
      char* end = nullptr;
      const long level = std::strtol(text.c_str(), &end, 10);
      if (*end != '\0' || level < 1 || level > 19) {
        return usage_error("--level wants a zstd level from 1 to 19, got '" + text + "'");
      }
      req.delta_options.level = static_cast<int>(level);
    }
    auto m = ota::build_bundle(req);
    if (!m) return fail(m.error().message());
    out_ << "built " << m->name << " " << m->version << " (" << m->target << ") in " << req.out_dir
         << ": payload " << m->size << " bytes"
         << (m->format.empty() ? "" : " (" + m->format + ")");
    if (m->delta) {
      const double percent =
          m->size == 0 ? 0.0
                       : 100.0 * static_cast<double>(m->delta->size) / static_cast<double>(m->size);
      std::ostringstream pct;
      pct << std::fixed << std::setprecision(1) << percent;
      out_ << ", delta from " << m->delta->base_version << " " << m->delta->size << " bytes ("
           << pct.str() << "% of the payload)";
    }
    out_ << "\nnext: flotctl artifact sign --key KEY " << req.out_dir << "\n";
    return kOk;
  }

  int sign() {
    if (auto m = missing({"--key"}); !m.empty()) return usage_error(m);
    auto dir = bundle_dir();
    if (!dir) return usage_error(dir.error().message());
    auto key = fs::read_file(flag("--key"));
    if (!key) return fail(key.error().message());
    auto st = ota::sign_bundle(*dir, *key);
    if (!st) return fail(st.error().message());
    out_ << "signed " << *dir << "/" << ota::kManifestFile << "\n";
    return kOk;
  }

  int verify() {
    if (auto m = missing({"--pub"}); !m.empty()) return usage_error(m);
    auto dir = bundle_dir();
    if (!dir) return usage_error(dir.error().message());
    auto pub = fs::read_file(flag("--pub"));
    if (!pub) return fail(pub.error().message());
    auto b = ota::load_bundle(*dir, *pub);
    if (!b) return fail(b.error().message());
    out_ << *dir << ": " << b->manifest.name << " " << b->manifest.version << " ("
         << b->manifest.target << "): signature ok, payload ok";
    if (b->manifest.delta) out_ << ", delta from " << b->manifest.delta->base_version << " ok";
    out_ << "\n";
    return kOk;
  }

  int push() {
    auto dir = bundle_dir();
    if (!dir) return usage_error(dir.error().message());
    auto b = ota::load_bundle(*dir);
    if (!b) return fail(b.error().message());
    if (b->signature.empty()) {
      return fail("Failed to push '" + *dir + "': it is not signed (flotctl artifact sign)");
    }
    const std::string hub = flag("--hub").empty() ? default_hub_ : flag("--hub");
    Client client(hub, kPushTimeoutMs, auth_);
    const std::string path =
        "/api/v1/artifacts/" + url_escape(b->manifest.name) + "/" + url_escape(b->manifest.version);
    const nlohmann::json doc = {{"manifest", b->manifest_text},
                                {"signature", base64_encode(b->signature)}};
    if (int rc = put(client, path, doc.dump(), "application/json", "manifest"); rc != kOk) {
      return rc;
    }
    std::vector<std::pair<std::string, std::string>> files = {{"payload", b->payload_path}};
    if (!b->delta_path.empty()) files.emplace_back("delta", b->delta_path);
    for (const auto& [what, file] : files) {
      auto data = fs::read_file(file);
      if (!data) return fail(data.error().message());
      if (int rc = put(client, path + "/" + what, *data, "application/octet-stream", what);
          rc != kOk) {
        return rc;
      }
    }
    out_ << "pushed " << b->manifest.name << " " << b->manifest.version << " to " << hub
         << ": manifest, payload (" << b->manifest.size << " bytes)";
    if (b->manifest.delta) out_ << ", delta (" << b->manifest.delta->size << " bytes)";
    out_ << "\n";
    return kOk;
  }

  int put(Client& client, const std::string& path, const std::string& body,
          const std::string& content_type, const std::string& what) {
    auto res = client.request("PUT", path, body, content_type);
    if (!res) return fail(res.error().message());
    if (res->status != 200 && res->status != 201) {
      return fail("Failed to push the " + what + ": " + hub_error(*res));
    }
    return kOk;
  }

  ArtifactArgs args_;
  std::string default_hub_;
  ClientAuth auth_;
  std::ostream& out_;
  std::ostream& err_;
};

}  // namespace

bool first_word_is(const std::vector<std::string>& args, const std::string& word) {
  for (size_t i = 0; i < args.size(); ++i) {
    if (args[i] == "--hub") {
      ++i;
    } else if (args[i].rfind("--hub=", 0) != 0) {
      return args[i] == word;
    }
  }
  return false;
}

bool is_artifact_command(const std::vector<std::string>& args) {
  return first_word_is(args, "artifact");
}

std::string artifact_usage() {
  return "Usage: flotctl artifact VERB\n"
         "Signed OTA bundles: a directory with manifest.json, manifest.sig, payload and an\n"
         "optional delta (zstd --patch-from against a base version).\n\n"
         "  keygen --out PREFIX         write PREFIX.key (Ed25519, private, mode 0600) and\n"
         "                              PREFIX.pub (for the agents)\n"
         "  build --name N --version V --target image|agent --payload FILE|DIR\n"
         "        [--base FILE|DIR --base-version V [--level L]] --out DIR\n"
         "                              make a bundle; with a base, also a delta against it\n"
         "                              (zstd level L, default 19: smallest; 9 is ~20x faster\n"
         "                              and ~3% bigger). Agent target: a DIR holding\n"
         "                              flotilla-agent, flotilla-shim and flotilla-oci-monitor\n"
         "                              ships all three (a tar payload); a FILE only the agent\n"
         "                              (the node keeps its running helpers)\n"
         "  sign --key PREFIX.key DIR   sign the bundle's manifest\n"
         "  verify --pub PREFIX.pub DIR check signature, payload and delta\n"
         "  push DIR [--hub URL]        upload a signed bundle to the hub\n";
}

int artifact_command(const std::vector<std::string>& args, const std::string& default_hub,
                     std::ostream& out, std::ostream& err, const ClientAuth& auth) {
  auto parsed = parse(args);
  if (!parsed) {
    err << "flotctl: " << parsed.error().message() << "\n\n" << artifact_usage();
    return kUsage;
  }
  if (parsed->help) {
    out << artifact_usage();
    return kOk;
  }
  return ArtifactRunner(std::move(*parsed), default_hub, auth, out, err).run();
}

}  // namespace flotilla::flotctl
