#include "cloud-hub/quantity.hpp"

#include <array>
#include <cctype>
#include <cstdint>
#include <utility>

namespace flotilla::hub {
namespace {

// A non-negative decimal number split into its integer and fraction digits.
struct Decimal {
  std::string whole;
  std::string fraction;
};

Expected<Decimal> parse_decimal(std::string_view text) {
  Decimal d;
  size_t i = 0;
  while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]))) {
    d.whole += text[i++];
  }
  if (i < text.size() && text[i] == '.') {
    ++i;
    while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]))) {
      d.fraction += text[i++];
    }
  }
  if (i != text.size() || (d.whole.empty() && d.fraction.empty())) {
    return Error("not a number");
  }
  // Leading zeros carry no value; trailing fraction zeros neither.
  while (d.whole.size() > 1 && d.whole.front() == '0') d.whole.erase(0, 1);
  while (!d.fraction.empty() && d.fraction.back() == '0') d.fraction.pop_back();
  if (d.whole.size() > 18) return Error("too large");
  return d;
}

// a * b as 128 bits (hi, lo), and x / d with its remainder for a d below 2^63 and a quotient
// below 2^64: what scale_decimal needs, without __int128 (which 32-bit ARM lacks).
struct Wide {
  uint64_t hi = 0;
  uint64_t lo = 0;
};

Wide multiply(uint64_t a, uint64_t b) {
  const uint64_t a_lo = a & 0xffffffffu, a_hi = a >> 32, b_lo = b & 0xffffffffu, b_hi = b >> 32;
  const uint64_t low = a_lo * b_lo, cross1 = a_lo * b_hi, cross2 = a_hi * b_lo;
  const uint64_t mid = (low >> 32) + (cross1 & 0xffffffffu) + (cross2 & 0xffffffffu);
  return {a_hi * b_hi + (cross1 >> 32) + (cross2 >> 32) + (mid >> 32),
          (mid << 32) | (low & 0xffffffffu)};
}

uint64_t divide(Wide x, uint64_t d, uint64_t& remainder) {
  uint64_t q = 0, r = 0;
  for (int bit = 127; bit >= 0; --bit) {
    r = (r << 1) | ((bit >= 64 ? x.hi >> (bit - 64) : x.lo >> bit) & 1);  // r < d < 2^63
    if (r >= d) {
      r -= d;
      if (bit < 64) q |= uint64_t{1} << bit;
    }
  }
  remainder = r;
  return q;
}

// value * scale, where value = whole.fraction. A result that is not whole is an error unless
// round_up is set (then it is rounded up).
Expected<int64_t> scale_decimal(const Decimal& d, int64_t scale, bool round_up, int64_t max) {
  int64_t whole = d.whole.empty() ? 0 : std::stoll(d.whole);
  if (whole > max / scale) return Error("too large");
  int64_t result = whole * scale;
  if (d.fraction.empty()) return result;
  // Twelve fraction digits are plenty for whole bytes and millicores; any digit past them
  // (trailing zeros are gone) makes the value inexact.
  constexpr size_t kDigits = 12;
  bool inexact = d.fraction.size() > kDigits;
  uint64_t num = 0;
  uint64_t den = 1;
  for (size_t i = 0; i < d.fraction.size() && i < kDigits; ++i) {
    num = num * 10 + static_cast<uint64_t>(d.fraction[i] - '0');
    den *= 10;
  }
  // num < den, so the quotient is below scale.
  uint64_t remainder = 0;
  uint64_t part = divide(multiply(num, static_cast<uint64_t>(scale)), den, remainder);
  if (remainder != 0) inexact = true;
  if (inexact && !round_up) return Error("finer than the smallest unit (1m)");
  if (inexact) ++part;
  if (part > static_cast<uint64_t>(max - result)) return Error("too large");
  return result + static_cast<int64_t>(part);
}

}  // namespace

Expected<int64_t> parse_cpu_millis(std::string_view text) {
  bool millis = !text.empty() && text.back() == 'm';
  std::string_view number = millis ? text.substr(0, text.size() - 1) : text;
  auto d = parse_decimal(number);
  if (!d) return Error("bad cpu quantity '" + std::string(text) + "' (want e.g. 500m, 0.5 or 2)");
  auto v = scale_decimal(*d, millis ? 1 : 1000, false, kMaxCpuMillis);
  if (!v) return Error("bad cpu quantity '" + std::string(text) + "': " + v.error().message());
  return v;
}

Expected<int64_t> parse_memory_bytes(std::string_view text) {
  static const std::array<std::pair<std::string_view, int64_t>, 12> kSuffixes = {{
      {"Ki", int64_t{1} << 10},
      {"Mi", int64_t{1} << 20},
      {"Gi", int64_t{1} << 30},
      {"Ti", int64_t{1} << 40},
      {"Pi", int64_t{1} << 50},
      {"Ei", int64_t{1} << 60},
      {"k", 1'000},
      {"M", 1'000'000},
      {"G", 1'000'000'000},
      {"T", 1'000'000'000'000},
      {"P", 1'000'000'000'000'000},
      {"E", 1'000'000'000'000'000'000},
  }};
  int64_t scale = 1;
  std::string_view number = text;
  for (const auto& [suffix, value] : kSuffixes) {
    if (text.size() > suffix.size() && text.substr(text.size() - suffix.size()) == suffix) {
      scale = value;
      number = text.substr(0, text.size() - suffix.size());
      break;
    }
  }
  auto d = parse_decimal(number);
  if (!d) {
    return Error("bad memory quantity '" + std::string(text) +
                 "' (want e.g. 64Mi, 1Gi, 1G or a byte count)");
  }
  auto v = scale_decimal(*d, scale, true, kMaxMemoryBytes);
  if (!v) return Error("bad memory quantity '" + std::string(text) + "': " + v.error().message());
  return v;
}

std::string format_cpu_millis(int64_t millis) {
  if (millis % 1000 == 0) return std::to_string(millis / 1000);
  return std::to_string(millis) + "m";
}

std::string format_memory_bytes(int64_t bytes) {
  if (bytes == 0) return "0";
  static const std::array<std::pair<const char*, int64_t>, 10> kUnits = {{
      {"Ei", int64_t{1} << 60},
      {"Pi", int64_t{1} << 50},
      {"Ti", int64_t{1} << 40},
      {"Gi", int64_t{1} << 30},
      {"Mi", int64_t{1} << 20},
      {"Ki", int64_t{1} << 10},
      {"T", 1'000'000'000'000},
      {"G", 1'000'000'000},
      {"M", 1'000'000},
      {"k", 1'000},
  }};
  for (const auto& [suffix, value] : kUnits) {
    if (bytes % value == 0) return std::to_string(bytes / value) + suffix;
  }
  return std::to_string(bytes);
}

}  // namespace flotilla::hub
