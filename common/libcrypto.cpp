#include "common/libcrypto.hpp"

#include "common/dynlib.hpp"

namespace flotilla {

const Expected<const LibCrypto*>& libcrypto() {
  static const Expected<const LibCrypto*> loaded = []() -> Expected<const LibCrypto*> {
    auto lib = DynLib::open("libcrypto.so.3");
    if (!lib) return lib.error();
    static LibCrypto api;
#define FLOTILLA_LIBCRYPTO_BIND(name) lib->bind(#name, api.name);
    FLOTILLA_LIBCRYPTO_FUNCTIONS(FLOTILLA_LIBCRYPTO_BIND)
#undef FLOTILLA_LIBCRYPTO_BIND
    if (auto st = lib->status(); !st) return st.error();
    return &api;
  }();
  return loaded;
}

}  // namespace flotilla
