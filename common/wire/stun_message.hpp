// STUN messages for ICE connectivity checks (RFC 8489, RFC 8445 §7; DESIGN D4).
//
// Only what a connectivity check and its answer carry: the 20-byte header, USERNAME,
// XOR-MAPPED-ADDRESS, ERROR-CODE, PRIORITY, USE-CANDIDATE, ICE-CONTROLLING / ICE-CONTROLLED,
// MESSAGE-INTEGRITY (HMAC-SHA1, short-term credentials) and FINGERPRINT. Layout in
// docs/protocol.md §9. Sans-IO: these functions turn bytes into values and back; the check list
// decides what to send and which key to use.
//
// Parsing and integrity are separate steps on purpose: the key is the password for the USERNAME
// in the request (RFC 8445 §7.2.2), so the caller parses, looks the user up, then verifies.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "net/address.hpp"
#include "wire/packet_class.hpp"

namespace ztna::wire {

constexpr uint32_t kStunMagicCookie = 0x2112A442;
constexpr uint16_t kStunBindingMethod = 0x0001;
// A method is 12 bits of the 14-bit message type (RFC 8489 §5).
constexpr uint16_t kStunMaxMethod = 0x0FFF;

// Untrusted-input limits. A connectivity check never needs more than one unfragmented datagram
// on a 1500-byte link; USERNAME and the reason phrase are bounded by RFC 8489 §14.3 and §14.8.
constexpr size_t kMaxStunDatagram = 1500;
constexpr size_t kMaxStunUsername = 513;
constexpr size_t kMaxStunErrorReason = 763;

// Attribute types (RFC 8489 §18.3, RFC 8445 §16.1). 0x0000-0x7FFF are comprehension-required,
// 0x8000-0xFFFF comprehension-optional (RFC 8489 §14).
constexpr uint16_t kStunAttrUsername = 0x0006;
constexpr uint16_t kStunAttrMessageIntegrity = 0x0008;
constexpr uint16_t kStunAttrErrorCode = 0x0009;
constexpr uint16_t kStunAttrXorMappedAddress = 0x0020;
constexpr uint16_t kStunAttrPriority = 0x0024;
constexpr uint16_t kStunAttrUseCandidate = 0x0025;
constexpr uint16_t kStunAttrFingerprint = 0x8028;
constexpr uint16_t kStunAttrIceControlled = 0x8029;
constexpr uint16_t kStunAttrIceControlling = 0x802A;

// FINGERPRINT is the CRC-32 of the message XOR'ed with this ("STUN"), RFC 8489 §14.7.
constexpr uint32_t kStunFingerprintXor = 0x5354554E;
constexpr size_t kStunIntegritySize = 20; // HMAC-SHA1 output

using StunTransactionId = std::array<uint8_t, 12>;

enum class StunClass : uint8_t { Request, Indication, SuccessResponse, ErrorResponse };

struct StunMessage {
  StunClass cls = StunClass::Request;
  uint16_t method = kStunBindingMethod;
  StunTransactionId transaction_id{};
  std::optional<std::string> username;       // USERNAME 0x0006, at most 513 bytes
  std::optional<Address> xor_mapped_address; // XOR-MAPPED-ADDRESS 0x0020 (IPv4 and IPv6)
  std::optional<uint32_t> priority;          // PRIORITY 0x0024 (RFC 8445 §16.1)
  bool use_candidate = false;                // USE-CANDIDATE 0x0025
  std::optional<uint64_t> ice_controlling;   // ICE-CONTROLLING 0x802A (tie-breaker)
  std::optional<uint64_t> ice_controlled;    // ICE-CONTROLLED 0x8029 (tie-breaker)
  std::optional<uint16_t> error_code;        // ERROR-CODE 0x0009: class * 100 + number, 300..699
  std::string error_reason;                  // only with error_code; at most 763 bytes
  bool has_integrity = false;   // set by the parser: MESSAGE-INTEGRITY (0x0008) present
  bool has_fingerprint = false; // set by the parser: FINGERPRINT (0x8028) present and valid
  bool operator==(const StunMessage&) const = default;
};

// Encodes m. If integrity_key is non-empty, appends MESSAGE-INTEGRITY (HMAC-SHA1 keyed with it,
// RFC 8489 §14.5; for ICE the key is the peer's password bytes as-is, RFC 8445 §7.2.2), then
// always FINGERPRINT (RFC 8489 §14.7). m.has_integrity and m.has_fingerprint are ignored.
// Throws std::invalid_argument for data no peer should receive: a method above 0xFFF, a USERNAME
// or reason over its limit, an error code outside 300..699, a reason without a code, or an
// empty (family-less) address; std::runtime_error if GnuTLS cannot compute the HMAC.
std::vector<uint8_t> encode_stun(const StunMessage& m, std::span<const uint8_t> integrity_key);

// Parses one datagram (RFC 8489 §5, §14):
//  - header: the two top bits 0, the magic cookie, a length that is a multiple of 4 and equal to
//    the rest of the datagram, which is at most kMaxStunDatagram bytes in all;
//  - attributes with 4-byte padding (padding bytes are not checked: RFC 5769 pads with spaces);
//    none may run past the end; of duplicates the first wins;
//  - a FINGERPRINT must be the last attribute and match, or the message is rejected;
//  - attributes after MESSAGE-INTEGRITY other than FINGERPRINT are ignored (§14.5);
//  - unknown comprehension-optional attributes (0x8000-0xFFFF) are skipped, unknown
//    comprehension-required ones (0x0000-0x7FFF) reject the message.
// Returns nullopt and sets error to one line on failure. Does NOT verify MESSAGE-INTEGRITY.
std::optional<StunMessage> parse_stun(std::span<const uint8_t> datagram, std::string& error);

// True if the datagram is a well-framed STUN message that carries MESSAGE-INTEGRITY and its
// HMAC-SHA1 over the bytes before it (with the header length adjusted to end just after it,
// RFC 8489 §14.5) matches, compared in constant time. False for an empty key: encode_stun never
// protects with one, and ICE passwords are at least 128 bits (RFC 8445 §5.3).
bool verify_stun_integrity(std::span<const uint8_t> datagram, std::span<const uint8_t> key);

// Cheap check before parsing: at least a header, the two top bits 0 and the magic cookie.
bool is_stun(std::span<const uint8_t> datagram);

// CRC-32 (ISO-HDLC / IEEE 802.3, as zlib's crc32), the basis of FINGERPRINT.
uint32_t stun_crc32(std::span<const uint8_t> data);

// One line for logs, e.g. "binding request tx=b7e7a701bc34d686fa87dfae user=evtj:h6vY
// priority=1845494271 controlled=..." (USERNAME and reason are escaped to printable ASCII).
std::string to_string(const StunMessage& m);
const char* to_string(StunClass c);

} // namespace ztna::wire
