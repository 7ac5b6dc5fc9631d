// Standard base64 (RFC 4648, with padding), over OpenSSL libcrypto: binary in JSON documents
// (artifact signatures) and HTTP Basic credentials.
//
// Thread-safety: pure functions.
#pragma once

#include <string>
#include <string_view>

#include "common/expected.hpp"

namespace flotilla {

std::string base64_encode(std::string_view data);
// Strict: only the standard alphabet with correct padding, no whitespace.
Expected<std::string> base64_decode(std::string_view text);

}  // namespace flotilla
