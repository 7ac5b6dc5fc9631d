#include "cloud-hub/flotctl/pki.hpp"

#include <map>
#include <ostream>
#include <set>

#include "cloud-hub/flotctl/artifact.hpp"
#include "cloud-hub/pki.hpp"
#include "common/x509.hpp"

namespace flotilla::flotctl {
namespace {

constexpr int kOk = 0;
constexpr int kFailed = 1;
constexpr int kUsage = 2;

const std::set<std::string> kValueFlags = {"--hub",  "--dir", "--name", "--kind",
                                           "--days", "--ip",  "--dns",  "--crl-days"};

struct PkiArgs {
  std::string verb;
  std::map<std::string, std::vector<std::string>> flags;
  std::vector<std::string> extra;
  bool help = false;
};

Expected<PkiArgs> parse(const std::vector<std::string>& args) {
  PkiArgs a;
  bool seen_pki = false;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (arg == "-h" || arg == "--help") {
      a.help = true;
    } else if (arg.rfind("--", 0) == 0) {
      const size_t eq = arg.find('=');
      const std::string name = arg.substr(0, eq);
      if (!kValueFlags.count(name)) return Error("unknown flag '" + arg + "'");
      if (eq != std::string::npos) {
        a.flags[name].push_back(arg.substr(eq + 1));
      } else if (i + 1 < args.size()) {
        a.flags[name].push_back(args[++i]);
      } else {
        return Error(name + " needs a value");
      }
    } else if (!seen_pki) {
      seen_pki = true;
    } else if (a.verb.empty()) {
      a.verb = arg;
    } else {
      a.extra.push_back(arg);
    }
  }
  return a;
}

Expected<int> parse_days(const std::string& flag, const std::string& text) {
  try {
    size_t used = 0;
    int v = std::stoi(text, &used);
    if (used == text.size()) return v;
  } catch (const std::exception&) {
  }
  return Error(flag + " wants a whole number of days, got '" + text + "'");
}

class PkiRunner {
 public:
  PkiRunner(PkiArgs args, int64_t now, std::ostream& out, std::ostream& err)
      : args_(std::move(args)), now_(now), out_(out), err_(err) {}

  int run() {
    if (args_.help) {
      out_ << pki_usage();
      return kOk;
    }
    if (!args_.extra.empty()) return usage_error("unexpected argument '" + args_.extra[0] + "'");
    const std::string& verb = args_.verb;
    if (verb.empty()) return usage_error("pki needs a verb");
    if (verb != "init" && verb != "issue" && verb != "revoke" && verb != "crl" &&
        verb != "signing-key") {
      return usage_error("unknown pki verb '" + verb + "'");
    }
    if (flag("--dir").empty()) return usage_error("pki " + verb + " needs --dir");
    if (verb == "init") return init();
    if (verb == "issue") return issue();
    if (verb == "revoke") return revoke();
    if (verb == "signing-key") return signing_key();
    return crl();
  }

 private:
  int fail(const std::string& message) {
    err_ << "error: " << message << "\n";
    return kFailed;
  }
  int usage_error(const std::string& message) {
    err_ << "flotctl: " << message << "\n\n" << pki_usage();
    return kUsage;
  }
  std::string flag(const std::string& name) const {
    auto it = args_.flags.find(name);
    return it == args_.flags.end() ? "" : it->second.back();
  }
  std::vector<std::string> all(const std::string& name) const {
    auto it = args_.flags.find(name);
    return it == args_.flags.end() ? std::vector<std::string>{} : it->second;
  }
  Expected<int> days(const std::string& name, int fallback) const {
    return flag(name).empty() ? Expected<int>(fallback) : parse_days(name, flag(name));
  }

  int init() {
    auto d = days("--days", 3650);
    if (!d) return usage_error(d.error().message());
    if (auto st = pki::init_ca(flag("--dir"), *d, now_); !st) return fail(st.error().message());
    out_ << "wrote " << flag("--dir") << "/ca.key (private: keep it offline), " << flag("--dir")
         << "/ca.crt (give it to the broker, hubs and agents) and " << flag("--dir") << "/ca.crl\n";
    return kOk;
  }

  int issue() {
    if (flag("--name").empty()) return usage_error("pki issue needs --name");
    if (flag("--kind").empty()) return usage_error("pki issue needs --kind node|hub|server");
    auto kind = pki::parse_kind(flag("--kind"));
    if (!kind) return usage_error(kind.error().message());
    auto d = days("--days", 365);
    if (!d) return usage_error(d.error().message());
    pki::IssueRequest req{flag("--name"), *kind, *d, all("--ip"), all("--dns")};
    auto path = pki::issue(flag("--dir"), req, now_);
    if (!path) return fail(path.error().message());
    auto info = x509::read_certificate(*path);
    if (!info) return fail(info.error().message());
    out_ << "wrote " << flag("--dir") << "/" << req.name << ".key (private, mode 0600) and "
         << *path << " (CN=" << info->subject_cn << ", serial " << info->serial_hex << ", expires "
         << x509::format_utc(info->not_after) << ")\n";
    return kOk;
  }

  int revoke() {
    if (flag("--name").empty()) return usage_error("pki revoke needs --name");
    auto d = days("--crl-days", 365);
    if (!d) return usage_error(d.error().message());
    if (auto st = pki::revoke(flag("--dir"), flag("--name"), *d, now_); !st) {
      return fail(st.error().message());
    }
    out_ << "revoked " << flag("--name") << "; wrote " << flag("--dir")
         << "/ca.crl (copy it to the broker's crlfile and restart or reload the broker)\n";
    return kOk;
  }

  int signing_key() {
    const std::string name = flag("--name").empty() ? "hub-signing" : flag("--name");
    const std::string prefix = flag("--dir") + "/" + name;
    if (auto st = pki::write_ed25519_key_pair(prefix); !st) return fail(st.error().message());
    out_ << "wrote " << prefix << ".key (private, mode 0600: the hub's --signing-key) and "
         << prefix << ".pub (give it to agents: --hub-public-key)\n";
    return kOk;
  }

  int crl() {
    auto d = days("--crl-days", 365);
    if (!d) return usage_error(d.error().message());
    if (auto st = pki::write_crl(flag("--dir"), *d, now_); !st) return fail(st.error().message());
    out_ << "wrote " << flag("--dir") << "/ca.crl\n";
    return kOk;
  }

  PkiArgs args_;
  int64_t now_;
  std::ostream& out_;
  std::ostream& err_;
};

}  // namespace

bool is_pki_command(const std::vector<std::string>& args) { return first_word_is(args, "pki"); }

int pki_command(const std::vector<std::string>& args, int64_t now_unix, std::ostream& out,
                std::ostream& err) {
  auto parsed = parse(args);
  if (!parsed) {
    err << "flotctl: " << parsed.error().message() << "\n\n" << pki_usage();
    return kUsage;
  }
  return PkiRunner(std::move(*parsed), now_unix, out, err).run();
}

std::string pki_usage() {
  return "Usage: flotctl pki VERB --dir DIR ...\n"
         "The fleet's CA and the TLS certificates of nodes, hubs and the broker (ECDSA P-256).\n"
         "Works on local files only (docs/security.md).\n\n"
         "  init --dir DIR [--days N]   create the CA: DIR/ca.key (0600), DIR/ca.crt and an empty\n"
         "                              DIR/ca.crl (default 3650 days)\n"
         "  issue --dir DIR --name NAME --kind node|hub|server [--days N]\n"
         "        [--ip ADDR]... [--dns NAME]...\n"
         "                              DIR/NAME.key (0600) and DIR/NAME.crt with CN=NAME\n"
         "                              (default 365 days; 0: already expired). node: a node's\n"
         "                              client certificate, NAME is the node name; hub: the\n"
         "                              hub's (NAME hub or hub-*); server: the broker's, with\n"
         "                              --ip/--dns as subjectAltNames. Issuing again renews.\n"
         "  revoke --dir DIR --name NAME [--crl-days N]\n"
         "                              add DIR/NAME.crt to the CRL and rewrite DIR/ca.crl\n"
         "  crl --dir DIR [--crl-days N]\n"
         "                              rewrite DIR/ca.crl (default valid 365 days)\n"
         "  signing-key --dir DIR [--name NAME]\n"
         "                              an Ed25519 key for signed desired state: DIR/NAME.key\n"
         "                              (0600, the hub's --signing-key) and DIR/NAME.pub (the\n"
         "                              agents' --hub-public-key); NAME defaults to hub-signing\n";
}

}  // namespace flotilla::flotctl
