// The Port Control Protocol (RFC 6887) as far as a client mapping one UDP port needs it: MAP and
// ANNOUNCE requests out, their responses in. Sans-IO: bytes in, structures out, and back.
//
// Every address on the wire is 16 bytes; an IPv4 address travels IPv4-mapped (::ffff:a.b.c.d,
// RFC 6887 §5). PCP shares port 5351 with NAT-PMP (RFC 6886), and a NAT-PMP-only gateway answers
// a PCP request in NAT-PMP's format with result 1, "unsupported version" (RFC 6887 §9): the
// decoder returns that as a Response of version 0 so that the client can move on at once.
#pragma once

#include "net/address.hpp"

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

namespace ztna::portmap::pcp {

constexpr uint16_t kServerPort = 5351; // RFC 6887 §19.1 (shared with NAT-PMP)
constexpr uint8_t kVersion = 2;        // §9
constexpr size_t kHeaderSize = 24;     // §7.1 request and §7.2 response headers
constexpr size_t kMapSize = 36;        // §11.1 MAP opcode data
constexpr size_t kMaxMessage = 1100;   // §7
constexpr uint8_t kProtocolUdp = 17;   // IANA protocol number (§11.1)

enum class Opcode : uint8_t { Announce = 0, Map = 1 };

// Result codes (§7.4). Long lifetime errors (1-6, 9, 12, 13) will not go away by retrying soon;
// short ones (7, 8, 10, 11) may.
enum class Result : uint8_t {
  Success = 0,
  UnsuppVersion = 1,
  NotAuthorized = 2,
  MalformedRequest = 3,
  UnsuppOpcode = 4,
  UnsuppOption = 5,
  MalformedOption = 6,
  NetworkFailure = 7,
  NoResources = 8,
  UnsuppProtocol = 9,
  UserExQuota = 10,
  CannotProvideExternal = 11,
  AddressMismatch = 12,
  ExcessiveRemotePeers = 13,
};
// "SUCCESS", "NOT_AUTHORIZED"... as RFC 6887 names them; "unknown" for other values.
const char* result_name(uint8_t result);

using Ip16 = std::array<uint8_t, 16>;
using Nonce = std::array<uint8_t, 12>;

// ::ffff:a.b.c.d for an IPv4 address (host order), and back.
Ip16 v4_mapped(uint32_t host_order_ip);
std::optional<uint32_t> v4_of(const Ip16& ip);
// An Address's IP on the wire (IPv4-mapped for IPv4), and an Address from wire fields: IPv4 for
// an IPv4-mapped IP, IPv6 otherwise.
Ip16 ip16_of(const Address& a);
Address address_of(const Ip16& ip, uint16_t port);

// A MAP request (§11.1). Lifetime 0 deletes the mapping the nonce, protocol and internal port
// name (§15).
struct MapRequest {
  uint32_t lifetime = 0;
  Ip16 client{}; // PCP Client's IP Address: the request's own source address (§7.1, §8.1)
  Nonce nonce{}; // the same for the life of a mapping: renewing or deleting needs it (§11.2)
  uint8_t protocol = kProtocolUdp;
  uint16_t internal_port = 0;
  uint16_t external_port = 0; // suggested; 0: no preference
  // Suggested; ::ffff:0.0.0.0 asks for any IPv4 address (§11.1), the default here.
  Ip16 external_address = v4_mapped(0);
};

// 60 bytes.
std::vector<uint8_t> encode_map_request(const MapRequest& r);
// An ANNOUNCE request (§14.1): 24 bytes, no opcode data. The answer carries the server's epoch.
std::vector<uint8_t> encode_announce_request(const Ip16& client);

// The MAP opcode data of a response (§11.1): what the server assigned (on success) or the copy of
// the request (on error).
struct MapData {
  Nonce nonce{};
  uint8_t protocol = 0;
  uint16_t internal_port = 0;
  uint16_t external_port = 0;
  Ip16 external_address{};
  bool operator==(const MapData&) const = default;
};

struct Response {
  // kVersion for a PCP response. 0: a NAT-PMP response (a NAT-PMP-only gateway refusing our
  // version, §9); then only opcode, result and epoch are meaningful. Any other value: a PCP
  // server of another version (only the header is decoded).
  uint8_t version = kVersion;
  uint8_t opcode = 0;         // without the R bit
  uint8_t result = 0;         // Result, or NAT-PMP's result code for version 0
  uint32_t lifetime = 0;      // granted (success) or how long the error will last (error, §7.2)
  uint32_t epoch = 0;         // seconds since the server's state began (§8.5)
  std::optional<MapData> map; // MAP responses of version 2 that carry the opcode data
  bool operator==(const Response&) const = default;
};

// A datagram from the gateway's port 5351. nullopt for anything that is not a well-formed
// response: too short or long, length not a multiple of 4, R bit clear, a successful MAP response
// without its data, or options that overrun the message (§7.3). Unknown options are skipped.
std::optional<Response> decode_response(std::span<const uint8_t> datagram);

// The bytes of a response (what a PCP server sends): for tests and for the fuzz target's round
// trip. Version 0 gives NAT-PMP's 8-byte form (version, 128 + opcode, 16-bit result, epoch).
std::vector<uint8_t> encode_response(const Response& r);

} // namespace ztna::portmap::pcp
