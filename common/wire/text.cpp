#include "wire/text.hpp"

#include <cstdint>

namespace ztna::wire {
namespace {

// Length of the well-formed UTF-8 sequence at s[i], or 0 if there is none (RFC 3629 §4).
size_t utf8_sequence_length(std::string_view s, size_t i) {
  auto at = [&](size_t k) { return static_cast<uint8_t>(s[k]); };
  const uint8_t b0 = at(i);
  if (b0 < 0x80) return 1;
  size_t len = 0;
  uint8_t lo = 0x80, hi = 0xBF; // allowed range of the second byte
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    len = 2;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    len = 3;
    if (b0 == 0xE0) lo = 0xA0; // no overlongs
    if (b0 == 0xED) hi = 0x9F; // no UTF-16 surrogates
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    len = 4;
    if (b0 == 0xF0) lo = 0x90; // no overlongs
    if (b0 == 0xF4) hi = 0x8F; // nothing above U+10FFFF
  } else {
    return 0;
  }
  if (len > s.size() - i) return 0;
  if (at(i + 1) < lo || at(i + 1) > hi) return 0;
  for (size_t k = 2; k < len; ++k)
    if (at(i + k) < 0x80 || at(i + k) > 0xBF) return 0;
  return len;
}

bool is_control(uint8_t b) {
  return b < 0x20 || b == 0x7F;
}

} // namespace

bool is_valid_utf8(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    size_t n = utf8_sequence_length(s, i);
    if (n == 0) return false;
    i += n;
  }
  return true;
}

bool is_valid_name(std::string_view s) {
  if (s.empty() || s.size() > kMaxNameLength) return false;
  for (char c : s) {
    auto b = static_cast<uint8_t>(c);
    if (b < 0x21 || b == 0x7F) return false;
  }
  return is_valid_utf8(s);
}

bool is_valid_reason(std::string_view s) {
  if (s.size() > kMaxReasonLength) return false;
  for (char c : s)
    if (is_control(static_cast<uint8_t>(c))) return false;
  return is_valid_utf8(s);
}

std::string sanitize_reason(std::string_view s) {
  std::string out;
  out.reserve(s.size() < kMaxReasonLength ? s.size() : kMaxReasonLength);
  for (size_t i = 0; i < s.size();) {
    size_t n = utf8_sequence_length(s, i);
    std::string_view piece = "?";
    if (n == 1 && !is_control(static_cast<uint8_t>(s[i])))
      piece = s.substr(i, 1);
    else if (n > 1)
      piece = s.substr(i, n);
    if (out.size() + piece.size() > kMaxReasonLength) break;
    out.append(piece);
    i += n == 0 ? 1 : n;
  }
  return out;
}

} // namespace ztna::wire
