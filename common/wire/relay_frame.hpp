// Relay frames: end-to-end QUIC packets carried through the intermediate (DESIGN D3).
//
// The intermediate forwards these without decrypting them; it only reads the session id to look
// up the session's two bound ends. Layout v1:
//   byte 0     0x20 (RELAY_DATA, version 1; the first byte falls in the relay range of
//              packet_class.hpp, so the shared socket can demultiplex it, RFC 9443 §3)
//   bytes 1-8  session id, u64 big-endian (random, chosen by the intermediate)
//   bytes 9-   payload: one whole QUIC packet, 1..kMaxRelayPayload bytes
// The other first bytes of the relay range (0x21-0x2F) are reserved and rejected.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

namespace ztna::wire {

constexpr uint8_t kRelayDataType = 0x20;
constexpr size_t kRelayHeaderSize = 9;
// Keeps header + payload within 65536 bytes; real frames are bounded far lower by the UDP MTU.
constexpr size_t kMaxRelayPayload = 65527;

struct RelayFrameView {
  uint64_t session_id;
  std::span<const uint8_t> payload; // points into the parsed datagram
};

// nullopt for a wrong type byte, a datagram shorter than header + 1, or an oversize payload.
std::optional<RelayFrameView> parse_relay_frame(std::span<const uint8_t> datagram);

// Writes exactly kRelayHeaderSize bytes at out, so a sender can build a frame in place in front
// of a QUIC packet that ngtcp2 wrote at out + kRelayHeaderSize (no copy on the hot path).
void write_relay_header(uint64_t session_id, uint8_t* out);

// Throws std::invalid_argument if payload is empty or longer than kMaxRelayPayload.
std::vector<uint8_t> encode_relay_frame(uint64_t session_id, std::span<const uint8_t> payload);

} // namespace ztna::wire
