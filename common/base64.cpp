#include "common/base64.hpp"

#include <cstdint>

namespace flotilla {
namespace {

constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

int value_of(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  return c == '+' ? 62 : 63;  // '/': only alphabet characters reach here
}

bool is_alphabet(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
         c == '/';
}

}  // namespace

std::string base64_encode(std::string_view data) {
  std::string out;
  out.reserve(4 * ((data.size() + 2) / 3));
  const auto* p = reinterpret_cast<const unsigned char*>(data.data());
  size_t i = 0;
  for (; i + 3 <= data.size(); i += 3) {
    const uint32_t v = (uint32_t{p[i]} << 16) | (uint32_t{p[i + 1]} << 8) | p[i + 2];
    out += {kAlphabet[v >> 18], kAlphabet[(v >> 12) & 63], kAlphabet[(v >> 6) & 63],
            kAlphabet[v & 63]};
  }
  if (const size_t rest = data.size() - i; rest > 0) {
    const uint32_t v = (uint32_t{p[i]} << 16) | (rest == 2 ? uint32_t{p[i + 1]} << 8 : 0);
    out += {kAlphabet[v >> 18], kAlphabet[(v >> 12) & 63],
            rest == 2 ? kAlphabet[(v >> 6) & 63] : '=', '='};
  }
  return out;
}

Expected<std::string> base64_decode(std::string_view text) {
  if (text.size() % 4 != 0) return Error("Failed to decode base64: length is not a multiple of 4");
  size_t padding = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c == '=' && i + 2 >= text.size() && (i + 1 == text.size() || text[i + 1] == '=')) {
      ++padding;
    } else if (!is_alphabet(c) || padding > 0) {
      return Error("Failed to decode base64: unexpected character at offset " + std::to_string(i));
    }
  }
  std::string out;
  out.reserve(text.size() / 4 * 3);
  for (size_t i = 0; i < text.size(); i += 4) {
    uint32_t v = 0;
    for (size_t k = 0; k < 4; ++k) v = (v << 6) | (text[i + k] == '=' ? 0 : value_of(text[i + k]));
    out += {static_cast<char>(v >> 16), static_cast<char>((v >> 8) & 0xff),
            static_cast<char>(v & 0xff)};
  }
  out.resize(out.size() - padding);
  return out;
}

}  // namespace flotilla
