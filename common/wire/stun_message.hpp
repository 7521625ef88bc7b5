// STUN messages (RFC 8489): ICE connectivity checks (RFC 8445 §7; DESIGN D4) and plain Binding
// requests with NAT behaviour discovery (RFC 5780), both sides of each.
//
// What a connectivity check and its answer carry: the 20-byte header, USERNAME,
// XOR-MAPPED-ADDRESS, ERROR-CODE, PRIORITY, USE-CANDIDATE, ICE-CONTROLLING / ICE-CONTROLLED,
// MESSAGE-INTEGRITY (HMAC-SHA1, short-term credentials) and FINGERPRINT. What a plain Binding
// server and its clients add: MAPPED-ADDRESS, UNKNOWN-ATTRIBUTES, SOFTWARE, and RFC 5780's
// CHANGE-REQUEST, RESPONSE-PORT, RESPONSE-ORIGIN and OTHER-ADDRESS. Layout in docs/protocol.md
// §9 and §12. Sans-IO: these functions turn bytes into values and back; the check list and the
// Binding server (common/stun/) decide what to send.
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
constexpr size_t kMaxStunSoftware = 763; // RFC 8489 §14.10: 128 characters, 763 bytes decoded
// UNKNOWN-ATTRIBUTES entries we send or accept; a 420 names the first ones (RFC 8489 §14.9 sets
// no limit, and no request of ours carries more than a handful of attributes).
constexpr size_t kMaxStunUnknownAttributes = 32;

// Attribute types (RFC 8489 §18.3, RFC 8445 §16.1). 0x0000-0x7FFF are comprehension-required,
// 0x8000-0xFFFF comprehension-optional (RFC 8489 §14).
constexpr uint16_t kStunAttrMappedAddress = 0x0001; // RFC 8489 §14.1
constexpr uint16_t kStunAttrChangeRequest = 0x0003; // RFC 5780 §7.2
constexpr uint16_t kStunAttrUsername = 0x0006;
constexpr uint16_t kStunAttrMessageIntegrity = 0x0008;
constexpr uint16_t kStunAttrErrorCode = 0x0009;
constexpr uint16_t kStunAttrUnknownAttributes = 0x000A; // RFC 8489 §14.9
constexpr uint16_t kStunAttrXorMappedAddress = 0x0020;
constexpr uint16_t kStunAttrPriority = 0x0024;
constexpr uint16_t kStunAttrUseCandidate = 0x0025;
constexpr uint16_t kStunAttrPadding = 0x0026;      // RFC 5780 §7.6: not understood (a 420)
constexpr uint16_t kStunAttrResponsePort = 0x0027; // RFC 5780 §7.5
constexpr uint16_t kStunAttrSoftware = 0x8022;     // RFC 8489 §14.10
constexpr uint16_t kStunAttrFingerprint = 0x8028;
constexpr uint16_t kStunAttrIceControlled = 0x8029;
constexpr uint16_t kStunAttrIceControlling = 0x802A;
constexpr uint16_t kStunAttrResponseOrigin = 0x802B; // RFC 5780 §7.3
constexpr uint16_t kStunAttrOtherAddress = 0x802C;   // RFC 5780 §7.4

// CHANGE-REQUEST flags (RFC 5780 §7.2): answer from the other IP address and/or the other port.
constexpr uint32_t kStunChangeIp = 0x4;
constexpr uint32_t kStunChangePort = 0x2;

// FINGERPRINT is the CRC-32 of the message XOR'ed with this ("STUN"), RFC 8489 §14.7.
constexpr uint32_t kStunFingerprintXor = 0x5354554E;
constexpr size_t kStunIntegritySize = 20; // HMAC-SHA1 output

using StunTransactionId = std::array<uint8_t, 12>;

enum class StunClass : uint8_t { Request, Indication, SuccessResponse, ErrorResponse };

// CHANGE-REQUEST's two flags; the other 30 bits are ignored on receipt and sent as zero.
struct StunChangeRequest {
  bool change_ip = false;
  bool change_port = false;
  bool operator==(const StunChangeRequest&) const = default;
};

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
  // Plain Binding and RFC 5780 (docs/protocol.md §12). The addresses are not XOR'ed.
  std::optional<Address> mapped_address;           // MAPPED-ADDRESS 0x0001
  std::optional<Address> response_origin;          // RESPONSE-ORIGIN 0x802B
  std::optional<Address> other_address;            // OTHER-ADDRESS 0x802C
  std::vector<uint16_t> unknown_attributes;        // UNKNOWN-ATTRIBUTES 0x000A, at most 32
  std::optional<StunChangeRequest> change_request; // CHANGE-REQUEST 0x0003
  std::optional<uint16_t> response_port;           // RESPONSE-PORT 0x0027
  std::optional<std::string> software;             // SOFTWARE 0x8022, at most 763 bytes
  bool has_integrity = false;   // set by the parser: MESSAGE-INTEGRITY (0x0008) present
  bool has_fingerprint = false; // set by the parser: FINGERPRINT (0x8028) present and valid
  bool operator==(const StunMessage&) const = default;
};

// Encodes m. If integrity_key is non-empty, appends MESSAGE-INTEGRITY (HMAC-SHA1 keyed with it,
// RFC 8489 §14.5; for ICE the key is the peer's password bytes as-is, RFC 8445 §7.2.2), then
// always FINGERPRINT (RFC 8489 §14.7). m.has_integrity and m.has_fingerprint are ignored.
// Throws std::invalid_argument for data no peer should receive: a method above 0xFFF, a USERNAME,
// reason or SOFTWARE over its limit, an error code outside 300..699, a reason without a code,
// an empty (family-less) address, more than 32 unknown attributes, or a message that would
// exceed kMaxStunDatagram; std::runtime_error if GnuTLS cannot compute the HMAC.
std::vector<uint8_t> encode_stun(const StunMessage& m, std::span<const uint8_t> integrity_key);

// The size encode_stun would give m, with or without MESSAGE-INTEGRITY, FINGERPRINT included;
// it does not check m's limits. A server uses it to fit an answer within its size budget.
size_t stun_encoded_size(const StunMessage& m, bool with_integrity);

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

// What a server needs to choose between an answer, an error response and silence
// (RFC 8489 §6.3): parse_stun's result, and how far a datagram it refuses got.
struct StunInspection {
  enum class Verdict {
    Ok,              // parse_stun accepts it: `message` is what it returns
    UnknownRequired, // sound, but with comprehension-required attributes we do not know:
                     // `unknown` lists them, `message` holds the rest (RFC 8489 §6.3.1: a 420)
    BadAttribute,    // sound header and framing, but a known attribute breaks its rules (a 400)
    Invalid,         // not a STUN message: header, framing or FINGERPRINT (no answer at all)
  };
  Verdict verdict = Verdict::Invalid;
  std::optional<StunMessage> message;
  // From the header, unless Invalid.
  StunClass cls = StunClass::Request;
  uint16_t method = 0;
  StunTransactionId transaction_id{};
  // UnknownRequired: the unknown comprehension-required types before MESSAGE-INTEGRITY, each
  // once, in order, at most kMaxStunUnknownAttributes. Empty for every other verdict.
  std::vector<uint16_t> unknown;
  // A USERNAME or MESSAGE-INTEGRITY attribute is present (by type, whatever its value): a
  // request with credentials is an ICE check, not for a plain Binding server.
  bool credentials = false;
  std::string error; // one line, unless Ok
};
StunInspection inspect_stun(std::span<const uint8_t> datagram);

// True if the datagram is a well-framed STUN message that carries MESSAGE-INTEGRITY and its
// HMAC-SHA1 over the bytes before it (with the header length adjusted to end just after it,
// RFC 8489 §14.5) matches, compared in constant time. False for an empty key: encode_stun never
// protects with one, and ICE passwords are at least 128 bits (RFC 8445 §5.3).
bool verify_stun_integrity(std::span<const uint8_t> datagram, std::span<const uint8_t> key);

// Cheap check before parsing: at least a header, the two top bits 0 and the magic cookie.
bool is_stun(std::span<const uint8_t> datagram);

// ---- Client side of plain Binding (RFC 8489 §6.1) and NAT behaviour discovery (RFC 5780 §4) ----
//
// A client sends encode_binding_request() from the socket whose mapping it wants to learn, keeps
// the transaction ID, and reads the answer with read_binding_response(). Retransmission, timeouts
// and the RFC 5780 test sequence are the caller's. Against ztna-intermediate (docs/protocol.md
// §12): OTHER-ADDRESS in an answer means the server serves CHANGE-REQUEST; without it a
// CHANGE-REQUEST gets a 420 error.

struct StunBindingRequest {
  StunTransactionId transaction_id{};      // random, from a CSPRNG (RFC 8489 §6)
  std::optional<StunChangeRequest> change; // CHANGE-REQUEST: answer from the other IP/port
  std::optional<uint16_t> response_port;   // RESPONSE-PORT: answer to this port of our IP
  // SOFTWARE (RFC 8489 §14.10). It also sizes the request: a server that answers at most 3x the
  // request (ours does) leaves out attributes that do not fit, and with the default a 44-byte
  // request leaves room for all four addresses of an IPv6 answer. Empty: no SOFTWARE.
  std::string software = "ztna stun";
};

// The request: Binding, no credentials, FINGERPRINT. Throws std::invalid_argument as
// encode_stun does (a SOFTWARE over 763 bytes).
std::vector<uint8_t> encode_binding_request(const StunBindingRequest& request);

struct StunBindingResponse {
  bool success = false; // a success response; else an error response
  // XOR-MAPPED-ADDRESS, or MAPPED-ADDRESS from a server that sends only that (RFC 8489 §14.1):
  // the client's reflexive transport address. Always set on success.
  std::optional<Address> mapped;
  std::optional<Address> response_origin; // RESPONSE-ORIGIN: where the answer came from
  std::optional<Address> other_address;   // OTHER-ADDRESS: the server's alternate IP and port
  std::optional<uint16_t> error_code;     // error responses: 300..699 (ERROR-CODE)
  std::string error_reason;
  std::vector<uint16_t> unknown_attributes; // with a 420: what the server did not understand
};

// Reads the answer to the request with transaction ID tx (RFC 8489 §6.3.3, §6.3.4). nullopt and
// one line in error if the datagram is not a well-formed STUN message (parse_stun), is not a
// Binding response, is for another transaction, or is a success response without a mapped
// address. Integrity is not checked: plain Binding has no credentials (RFC 8489 §9).
std::optional<StunBindingResponse> read_binding_response(std::span<const uint8_t> datagram,
                                                         const StunTransactionId& tx,
                                                         std::string& error);

// CRC-32 (ISO-HDLC / IEEE 802.3, as zlib's crc32), the basis of FINGERPRINT.
uint32_t stun_crc32(std::span<const uint8_t> data);

// One line for logs, e.g. "binding request tx=b7e7a701bc34d686fa87dfae user=evtj:h6vY
// priority=1845494271 controlled=..." (USERNAME and reason are escaped to printable ASCII).
std::string to_string(const StunMessage& m);
const char* to_string(StunClass c);

} // namespace ztna::wire
