// A shared library loaded with dlopen when first needed, instead of linked. A process then pays
// for a library and everything it depends on only once it uses it: libcurl alone brings about
// twenty (gnutls, nettle, krb5, ldap, ssh2, rtmp, ...), libarchive brings libxml2 and ICU, and an
// agent that only runs processes never needs either (docs/footprint.md).
//
// Handles are never closed: a library, once loaded, stays for the life of the process (the
// function pointers taken from it must stay valid).
//
// Thread-safety: open() and bind() may run on any thread; one DynLib is used by one thread.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "common/expected.hpp"

namespace flotilla {

class DynLib {
 public:
  // dlopen(soname, RTLD_NOW | RTLD_LOCAL). Error: "Failed to load 'libcurl.so.4': <dlerror>".
  static Expected<DynLib> open(const std::string& soname);

  // Sets `fn` to the address of `symbol`, or to nullptr and remembers the name for status().
  // `Fn` is the function's own type (use decltype(&::the_function)), so calls through `fn` are
  // checked by the compiler against the library's header.
  template <typename Fn>
  void bind(const char* symbol, Fn*& fn) {
    fn = reinterpret_cast<Fn*>(address(symbol));
  }

  // Ok once every bind() found its symbol; else "Failed to load 'libx.so.1': missing a, b".
  Status status() const;

  const std::string& soname() const { return soname_; }

 private:
  DynLib(void* handle, std::string soname) : handle_(handle), soname_(std::move(soname)) {}
  void* address(const char* symbol);

  void* handle_;
  std::string soname_;
  std::vector<std::string> missing_;
};

}  // namespace flotilla
