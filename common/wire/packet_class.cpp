#include "wire/packet_class.hpp"

namespace ztna::wire {

PacketClass classify_packet(std::span<const uint8_t> datagram) {
  if (datagram.empty()) return PacketClass::Unknown;
  const uint8_t b = datagram[0];
  if (b <= kStunFirstByteMax)
    return datagram.size() >= kStunHeaderSize ? PacketClass::Stun : PacketClass::Unknown;
  if (b >= kRelayFirstByteMin && b <= kRelayFirstByteMax) return PacketClass::Relay;
  if (b >= kQuicFirstByteMin) return PacketClass::Quic;
  return PacketClass::Unknown;
}

const char* to_string(PacketClass c) {
  switch (c) {
  case PacketClass::Stun:
    return "stun";
  case PacketClass::Relay:
    return "relay";
  case PacketClass::Quic:
    return "quic";
  case PacketClass::Unknown:
    break;
  }
  return "unknown";
}

} // namespace ztna::wire
