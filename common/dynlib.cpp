#include "common/dynlib.hpp"

#include <dlfcn.h>

namespace flotilla {

Expected<DynLib> DynLib::open(const std::string& soname) {
  void* handle = ::dlopen(soname.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr) {
    const char* why = ::dlerror();
    return Error("Failed to load '" + soname + "': " + (why != nullptr ? why : "dlopen failed") +
                 " (is its package installed?)");
  }
  return DynLib(handle, soname);
}

void* DynLib::address(const char* symbol) {
  void* p = ::dlsym(handle_, symbol);
  if (p == nullptr) missing_.emplace_back(symbol);
  return p;
}

Status DynLib::status() const {
  if (missing_.empty()) return Ok();
  std::string names;
  for (const auto& m : missing_) names += (names.empty() ? "" : ", ") + m;
  return Error("Failed to load '" + soname_ + "': it lacks " + names + " (too old a version?)");
}

}  // namespace flotilla
