#include "common/flags.hpp"

#include <cctype>
#include <sstream>

namespace flotilla {

Flags::Flags(std::string program, std::string summary, bool allow_positional)
    : program_(std::move(program)),
      summary_(std::move(summary)),
      allow_positional_(allow_positional) {}

void Flags::add(const std::string& name, const std::string& help, const std::string& def,
                bool required) {
  order_.push_back(name);
  specs_[name] = Spec{help, def, required, false};
}

void Flags::add_switch(const std::string& name, const std::string& help) {
  order_.push_back(name);
  specs_[name] = Spec{help, "", false, true};
}

Status Flags::parse(int argc, const char* const* argv) {
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      help_ = true;
      return Ok();
    }
    if (arg == "--") {
      for (++i; i < argc; ++i) positional_.emplace_back(argv[i]);
      break;
    }
    if (arg.rfind("--", 0) != 0 || arg.size() == 2) {
      if (!allow_positional_) return Error("unexpected argument '" + arg + "'");
      positional_.push_back(arg);
      continue;
    }
    std::string name = arg.substr(2);
    std::string value;
    bool has_value = false;
    if (auto eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
      has_value = true;
    }
    auto it = specs_.find(name);
    if (it == specs_.end()) return Error("unknown flag '--" + name + "'");
    if (it->second.is_switch) {
      if (has_value) return Error("flag '--" + name + "' takes no value");
      values_[name] = "true";
      continue;
    }
    if (!has_value) {
      if (i + 1 >= argc) return Error("flag '--" + name + "' needs a value");
      value = argv[++i];
    }
    values_[name] = value;
  }
  for (const auto& [name, spec] : specs_) {
    if (spec.required && values_.count(name) == 0) {
      return Error("missing required flag '--" + name + "'");
    }
  }
  return Ok();
}

std::string Flags::usage() const {
  std::ostringstream out;
  out << "Usage: " << program_ << " [flags]" << (allow_positional_ ? " ARGS..." : "") << "\n"
      << summary_ << "\n\nFlags:\n";
  for (const auto& name : order_) {
    const Spec& s = specs_.at(name);
    std::string left = "  --" + name + (s.is_switch ? "" : " VALUE");
    out << left;
    if (left.size() < 28)
      out << std::string(28 - left.size(), ' ');
    else
      out << "\n" << std::string(28, ' ');
    out << s.help;
    if (s.required)
      out << " (required)";
    else if (!s.def.empty())
      out << " (default: " << s.def << ")";
    out << "\n";
  }
  out << "  --help                    show this help\n";
  return out.str();
}

const std::string& Flags::get(const std::string& name) const {
  if (auto it = values_.find(name); it != values_.end()) return it->second;
  return specs_.at(name).def;
}

bool Flags::is_set(const std::string& name) const { return values_.count(name) > 0; }

Expected<int64_t> Flags::get_int(const std::string& name, int64_t min, int64_t max) const {
  const std::string& text = get(name);
  try {
    size_t used = 0;
    long long v = std::stoll(text, &used);
    if (used != text.size()) throw std::invalid_argument(text);
    if (v < min || v > max) {
      return Error("flag '--" + name + "' must be between " + std::to_string(min) + " and " +
                   std::to_string(max) + ", got " + text);
    }
    return static_cast<int64_t>(v);
  } catch (const std::exception&) {
    return Error("flag '--" + name + "' wants a whole number, got '" + text + "'");
  }
}

Expected<std::map<std::string, std::string>> parse_labels(const std::string& text) {
  std::map<std::string, std::string> out;
  if (text.empty()) return out;
  auto valid = [](const std::string& s) {
    if (s.empty() || s.size() > 63) return false;
    for (char c : s) {
      if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_' && c != '.' &&
          c != '/')
        return false;
    }
    return true;
  };
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ',')) {
    auto eq = item.find('=');
    if (eq == std::string::npos) return Error("label '" + item + "' is not of the form key=value");
    std::string k = item.substr(0, eq), v = item.substr(eq + 1);
    if (!valid(k)) return Error("label key '" + k + "' is invalid");
    if (!valid(v)) return Error("label value '" + v + "' for key '" + k + "' is invalid");
    out[k] = v;
  }
  return out;
}

}  // namespace flotilla
