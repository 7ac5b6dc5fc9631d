// Command-line flags shared by the three binaries: --name VALUE, --name=VALUE, boolean switches,
// defaults, required flags and a generated --help text. Unknown or malformed flags are errors
// the binary prints as one line followed by its usage.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "common/expected.hpp"

namespace flotilla {

class Flags {
 public:
  Flags(std::string program, std::string summary, bool allow_positional = false);

  // A flag taking a value. An empty default with required=true makes it mandatory.
  void add(const std::string& name, const std::string& help, const std::string& def = "",
           bool required = false);
  // A boolean switch (present = true).
  void add_switch(const std::string& name, const std::string& help);

  Status parse(int argc, const char* const* argv);

  bool help_requested() const { return help_; }
  std::string usage() const;
  const std::string& get(const std::string& name) const;
  bool is_set(const std::string& name) const;
  bool on(const std::string& name) const { return is_set(name); }
  Expected<int64_t> get_int(const std::string& name, int64_t min, int64_t max) const;
  const std::vector<std::string>& positional() const { return positional_; }

 private:
  struct Spec {
    std::string help;
    std::string def;
    bool required = false;
    bool is_switch = false;
  };
  std::string program_;
  std::string summary_;
  bool allow_positional_;
  std::vector<std::string> order_;
  std::map<std::string, Spec> specs_;
  std::map<std::string, std::string> values_;
  std::vector<std::string> positional_;
  bool help_ = false;
};

// Parses "k=v,k2=v2" (labels). Keys and values must be non-empty label-safe strings.
Expected<std::map<std::string, std::string>> parse_labels(const std::string& text);

}  // namespace flotilla
