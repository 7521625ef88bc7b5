// First-byte demultiplexing of the one UDP socket every daemon uses (DESIGN D1).
//
// In the style of RFC 9443 §3, the first byte of a datagram decides which protocol it belongs to:
//   0x00-0x03  STUN (RFC 8489: the two top bits of a STUN message are zero; RFC 9443 §3)
//   0x20-0x2F  our relay frames. RFC 9443 gives 20-63 (decimal, 0x14-0x3F) to DTLS; we never
//              carry DTLS on this socket, so we reserve a slice of that range for ourselves.
//   0x40-0xFF  QUIC (RFC 9000 §17: the fixed bit 0x40 is set; 0x80-0xBF stays QUIC because a
//              peer may grease the fixed bit, RFC 9287). RFC 9443 shares parts of this range
//              with TURN channels and RTP, neither of which we carry.
//   anything else, and empty datagrams, is Unknown and dropped.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

namespace ztna::wire {

enum class PacketClass { Stun, Relay, Quic, Unknown };

// A STUN header is 20 bytes (RFC 8489 §5); anything shorter cannot be STUN.
constexpr size_t kStunHeaderSize = 20;
constexpr uint8_t kStunFirstByteMax = 0x03;
constexpr uint8_t kRelayFirstByteMin = 0x20;
constexpr uint8_t kRelayFirstByteMax = 0x2F;
constexpr uint8_t kQuicFirstByteMin = 0x40;

PacketClass classify_packet(std::span<const uint8_t> datagram);

const char* to_string(PacketClass c);

} // namespace ztna::wire
