// Small helpers for building byte strings in tests.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <span>
#include <string_view>
#include <vector>

namespace ztna::test {

using Bytes = std::vector<uint8_t>;

inline Bytes bytes(std::initializer_list<int> values) {
  Bytes out;
  for (int v : values)
    out.push_back(static_cast<uint8_t>(v));
  return out;
}

inline Bytes bytes(std::string_view s) {
  return Bytes(s.begin(), s.end());
}

inline Bytes concat(Bytes a, const Bytes& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

inline std::span<const uint8_t> prefix(const Bytes& b, size_t n) {
  return std::span<const uint8_t>(b).first(n);
}

} // namespace ztna::test
