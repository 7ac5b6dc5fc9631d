// Standard base64 (RFC 4648, with padding) over OpenSSL libcrypto: how binary values (OTA
// signatures) travel inside JSON.
//
// Thread-safety: pure functions.
#pragma once

#include <string>
#include <string_view>

#include "common/expected.hpp"

namespace flotilla {

std::string base64_encode(std::string_view bytes);
// Strict: only the standard alphabet, padded to a multiple of 4; whitespace is an error.
Expected<std::string> base64_decode(std::string_view text);

}  // namespace flotilla
