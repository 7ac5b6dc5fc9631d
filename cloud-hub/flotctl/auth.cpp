#include "cloud-hub/flotctl/auth.hpp"

#include <cstdlib>
#include <iostream>

#include <nlohmann/json.hpp>

#include "cloud-hub/api_auth.hpp"
#include "cloud-hub/flotctl/printers.hpp"

namespace flotilla::flotctl {
namespace {

constexpr int kOk = 0;
constexpr int kFailed = 1;
constexpr int kUsage = 2;

std::string usage() {
  return "Usage: flotctl token create NAME --role viewer|operator|admin\n"
         "       flotctl audit [--limit N] [--since ID] [-o json]\n";
}

int usage_error(std::ostream& err, const std::string& message) {
  err << "flotctl: " << message << "\n\n" << usage();
  return kUsage;
}

// "--name V" / "--name=V" at args[i]; advances i past a separate value.
bool flag_value(const std::vector<std::string>& args, size_t& i, const std::string& name,
                std::string* value, std::string* error) {
  const std::string& arg = args[i];
  if (arg == name) {
    if (i + 1 >= args.size()) {
      *error = name + " needs a value";
      return true;
    }
    *value = args[++i];
    return true;
  }
  if (arg.rfind(name + "=", 0) == 0) {
    *value = arg.substr(name.size() + 1);
    return true;
  }
  return false;
}

}  // namespace

Status take_auth_flags(std::vector<std::string>& args, ClientAuth& auth) {
  std::vector<std::string> rest;
  for (size_t i = 0; i < args.size(); ++i) {
    std::string error;
    if (flag_value(args, i, "--token", &auth.token, &error) ||
        flag_value(args, i, "--ca", &auth.ca_file, &error)) {
      if (!error.empty()) return Error(error);
      continue;
    }
    rest.push_back(args[i]);
  }
  args = std::move(rest);
  return Ok();
}

int token_command(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  std::string role_text;
  std::vector<std::string> words;
  for (size_t i = 0; i < args.size(); ++i) {
    std::string error;
    if (flag_value(args, i, "--role", &role_text, &error)) {
      if (!error.empty()) return usage_error(err, error);
    } else if (args[i].size() > 1 && args[i][0] == '-') {
      return usage_error(err, "unknown flag '" + args[i] + "'");
    } else {
      words.push_back(args[i]);
    }
  }
  if (words.size() != 2 || words[0] != "create") {
    return usage_error(err, "usage: flotctl token create NAME --role ROLE");
  }
  if (role_text.empty()) return usage_error(err, "token create needs --role ROLE");
  auto role = hub::parse_role(role_text);
  if (!role) return usage_error(err, role.error().message());
  if (auto st = hub::check_token_name(words[1]); !st) return usage_error(err, st.error().message());
  auto token = hub::new_token();
  if (!token) {
    err << "error: " << token.error().message() << "\n";
    return kFailed;
  }
  out << "token: " << *token << "\n"
      << "Give the token to its user (flotctl --token or $FLOTILLA_TOKEN); it is shown only now.\n"
      << "Add this line to the hub's --api-tokens file and restart the hub:\n"
      << hub::token_line(words[1], *role, *token) << "\n";
  return kOk;
}

int audit_command(Client& client, const std::vector<std::string>& args, std::ostream& out,
                  std::ostream& err) {
  std::string limit = "50";
  std::string since;
  std::string output;
  for (size_t i = 0; i < args.size(); ++i) {
    std::string error;
    if (flag_value(args, i, "--limit", &limit, &error) ||
        flag_value(args, i, "--since", &since, &error) ||
        flag_value(args, i, "--output", &output, &error) ||
        flag_value(args, i, "-o", &output, &error)) {
      if (!error.empty()) return usage_error(err, error);
    } else {
      return usage_error(err,
                         "audit takes --limit N, --since ID and -o json, not '" + args[i] + "'");
    }
  }
  if (!output.empty() && output != "json") return usage_error(err, "-o wants json");
  std::string path = "/api/v1/audit?limit=" + url_escape(limit);
  if (!since.empty()) path += "&since=" + url_escape(since);
  auto got = client.request_json("GET", path);
  if (!got) {
    err << "error: " << got.error().message() << "\n";
    return kFailed;
  }
  const nlohmann::json& j = *got;
  if (!j.contains("items") || !j["items"].is_array()) {
    err << "error: hub sent an unexpected answer\n";
    return kFailed;
  }
  if (output == "json") {
    out << j.dump(2) << "\n";
    return kOk;
  }
  std::vector<std::vector<std::string>> rows = {
      {"ID", "TIME", "WHO", "ROLE", "METHOD", "OBJECT", "STATUS", "CHANGE"}};
  for (const auto& r : j["items"]) {
    const std::string kind = r.value("kind", "");
    const std::string object =
        kind.empty() ? r.value("target", "") : kind + "/" + r.value("name", "");
    const bool had = r.contains("before") && !r["before"].is_null();
    const bool has = r.contains("after") && !r["after"].is_null();
    const std::string change = !had && has                 ? "created"
                               : had && !has               ? "deleted"
                               : !had && !has              ? "-"
                               : r["before"] == r["after"] ? "unchanged"
                                                           : "modified";
    rows.push_back({std::to_string(r.value("id", 0)), r.value("time", ""), r.value("who", ""),
                    r.value("role", ""), r.value("method", ""), object,
                    std::to_string(r.value("status", 0)), change});
  }
  out << render_table(rows);
  return kOk;
}

}  // namespace flotilla::flotctl
