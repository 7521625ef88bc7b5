// UDP flows carried in QUIC DATAGRAM frames (RFC 9221) on the end-to-end session (DESIGN D5).
//
// DATAGRAM frames are unreliable and unordered, like the UDP they carry, so each one names its
// flow and service by itself. Payload v1:
//   [u8 type = 0x01][u32 flow id][u8 service name length, 1..255][name][UDP payload, 0..N]
// The agent picks the flow id per (local listener, client source address); the connector's
// replies carry the same flow id and name. A zero-length UDP payload is a valid UDP datagram.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

namespace ztna::wire {

constexpr uint8_t kDatagramUdpType = 0x01;
// type + flow id + name length; the name follows.
constexpr size_t kDatagramFixedSize = 6;

struct DatagramView {
  uint32_t flow_id;
  std::string_view service; // points into the parsed bytes
  std::span<const uint8_t> payload;
};

// nullopt for an unknown type byte, truncation, or an empty or invalid service name.
std::optional<DatagramView> parse_datagram(std::span<const uint8_t> bytes);

// Bytes in front of the UDP payload for this service: what to subtract from the peer's
// max_datagram_frame_size (RFC 9221 §3) to get the largest UDP payload we can carry.
constexpr size_t datagram_overhead(std::string_view service) {
  return kDatagramFixedSize + service.size();
}

// Path probes for `ztna-agent ping` (like `tailscale ping`): the agent sends
//   [u8 type = 0x02][u64 id]
// and the connector echoes the same 9 bytes with type 0x03. A DATAGRAM frame goes out on the
// session's current path, so the echo tells which path answers and its round-trip time.
constexpr uint8_t kDatagramPingType = 0x02;
constexpr uint8_t kDatagramPongType = 0x03;
constexpr size_t kDatagramPingSize = 9;
struct PingView {
  bool pong;
  uint64_t id;
};
std::optional<PingView> parse_ping(std::span<const uint8_t> bytes);
std::vector<uint8_t> encode_ping(bool pong, uint64_t id);

// Throws std::invalid_argument if service is not a valid name (text.hpp).
std::vector<uint8_t> encode_datagram(uint32_t flow_id, std::string_view service,
                                     std::span<const uint8_t> payload);

} // namespace ztna::wire
