// Hand-built STUN messages for the tests of the Binding codec and server, independent of the
// encoder under test (only stun_crc32, itself checked against the RFC 5769 vectors).
#pragma once

#include "bytes.hpp"
#include "wire/stun_message.hpp"

#include <cstdint>

namespace ztna::test {

// One attribute with zero padding.
inline Bytes stun_attr(uint16_t type, const Bytes& value) {
  Bytes out = bytes({type >> 8, type & 0xFF, static_cast<int>(value.size() >> 8),
                     static_cast<int>(value.size() & 0xFF)});
  out = concat(out, value);
  while (out.size() % 4)
    out.push_back(0);
  return out;
}

// Header of the given type and transaction ID, the attributes, then optionally FINGERPRINT.
inline Bytes stun_message(uint16_t type, const wire::StunTransactionId& tx, const Bytes& attrs,
                          bool fingerprint = true) {
  const size_t length = attrs.size() + (fingerprint ? 8 : 0);
  Bytes out = bytes({type >> 8, type & 0xFF, static_cast<int>(length >> 8),
                     static_cast<int>(length & 0xFF), 0x21, 0x12, 0xa4, 0x42});
  out.insert(out.end(), tx.begin(), tx.end());
  out = concat(out, attrs);
  if (fingerprint) {
    const uint32_t crc = wire::stun_crc32(out) ^ wire::kStunFingerprintXor;
    out = concat(
        out, stun_attr(wire::kStunAttrFingerprint,
                       bytes({static_cast<int>(crc >> 24), static_cast<int>((crc >> 16) & 0xFF),
                              static_cast<int>((crc >> 8) & 0xFF), static_cast<int>(crc & 0xFF)})));
  }
  return out;
}

inline Bytes u16_bytes(uint16_t v) {
  return bytes({v >> 8, v & 0xFF});
}

inline Bytes u32_bytes(uint32_t v) {
  return bytes({static_cast<int>(v >> 24), static_cast<int>((v >> 16) & 0xFF),
                static_cast<int>((v >> 8) & 0xFF), static_cast<int>(v & 0xFF)});
}

} // namespace ztna::test
