#include "wire/stun_message.hpp"

#include <arpa/inet.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>

#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <string_view>

#include "wire/byte_io.hpp"

namespace ztna::wire {

namespace {

constexpr size_t kAttrHeaderSize = 4;
constexpr size_t kIntegrityAttrSize = kAttrHeaderSize + kStunIntegritySize;
constexpr size_t kFingerprintAttrSize = kAttrHeaderSize + 4;
constexpr size_t kLengthOffset = 2;
constexpr size_t kTransactionIdOffset = 8;
constexpr uint8_t kFamilyIpv4 = 0x01; // RFC 8489 §14.1
constexpr uint8_t kFamilyIpv6 = 0x02;

// The 14-bit message type interleaves the class bits C1 (bit 8) and C0 (bit 4) with the 12
// method bits M11..M7, M6..M4, M3..M0 (RFC 8489 §5, Figure 3). StunClass's values are C1C0.
uint16_t message_type(StunClass c, uint16_t method) {
  const unsigned cls = static_cast<unsigned>(c);
  return static_cast<uint16_t>((method & 0x000F) | ((method & 0x0070) << 1) |
                               ((method & 0x0F80) << 2) | ((cls & 1) << 4) | ((cls & 2) << 7));
}

uint16_t method_of(uint16_t type) {
  return static_cast<uint16_t>((type & 0x000F) | ((type >> 1) & 0x0070) | ((type >> 2) & 0x0F80));
}

StunClass class_of(uint16_t type) {
  return static_cast<StunClass>(((type >> 4) & 1) | ((type >> 7) & 2));
}

size_t padded(size_t n) {
  return (n + 3) & ~size_t{3};
}

std::string hex16(uint16_t v) {
  static const char digits[] = "0123456789abcdef";
  std::string s = "0x";
  for (int shift = 12; shift >= 0; shift -= 4)
    s += digits[(v >> shift) & 0xF];
  return s;
}

// The 16 bytes an IPv6 address is XOR'ed with: cookie then transaction ID (RFC 8489 §14.2).
// The first 4 also serve IPv4, and the first 2 the port.
std::array<uint8_t, 16> xor_pad(const StunTransactionId& tx) {
  std::array<uint8_t, 16> pad{};
  for (int i = 0; i < 4; ++i)
    pad[i] = static_cast<uint8_t>(kStunMagicCookie >> (24 - 8 * i));
  std::copy(tx.begin(), tx.end(), pad.begin() + 4);
  return pad;
}

void set_length(std::vector<uint8_t>& msg, size_t length) {
  msg[kLengthOffset] = static_cast<uint8_t>(length >> 8);
  msg[kLengthOffset + 1] = static_cast<uint8_t>(length);
}

bool hmac_sha1(std::span<const uint8_t> key, std::span<const uint8_t> data,
               std::array<uint8_t, kStunIntegritySize>& out) {
  return gnutls_hmac_fast(GNUTLS_MAC_SHA1, key.data(), key.size(), data.data(), data.size(),
                          out.data()) == 0;
}

// ---- encoding ----------------------------------------------------------------------------------

void attr_header(ByteWriter& w, uint16_t type, size_t length) {
  w.u16(type);
  w.u16(static_cast<uint16_t>(length));
}

// Zero padding to the next 4-byte boundary (RFC 8489 §14: senders pad, receivers skip).
void pad_to_4(ByteWriter& w, size_t length) {
  for (size_t i = length; i < padded(length); ++i)
    w.u8(0);
}

void write_xor_address(ByteWriter& w, const Address& a, const StunTransactionId& tx) {
  const std::string ip = a.ip_bytes();
  if (ip.size() != 4 && ip.size() != 16)
    throw std::invalid_argument("encode_stun: XOR-MAPPED-ADDRESS has no IPv4/IPv6 family");
  const auto pad = xor_pad(tx);
  attr_header(w, kStunAttrXorMappedAddress, 4 + ip.size());
  w.u8(0);
  w.u8(ip.size() == 4 ? kFamilyIpv4 : kFamilyIpv6);
  w.u16(static_cast<uint16_t>(a.port() ^ (kStunMagicCookie >> 16)));
  for (size_t i = 0; i < ip.size(); ++i)
    w.u8(static_cast<uint8_t>(static_cast<uint8_t>(ip[i]) ^ pad[i]));
}

// MAPPED-ADDRESS, RESPONSE-ORIGIN and OTHER-ADDRESS share this layout, without the XOR
// (RFC 8489 §14.1, RFC 5780 §7.3, §7.4).
void write_plain_address(ByteWriter& w, uint16_t type, const Address& a) {
  const std::string ip = a.ip_bytes();
  if (ip.size() != 4 && ip.size() != 16)
    throw std::invalid_argument("encode_stun: attribute " + hex16(type) +
                                " has no IPv4/IPv6 address");
  attr_header(w, type, 4 + ip.size());
  w.u8(0);
  w.u8(ip.size() == 4 ? kFamilyIpv4 : kFamilyIpv6);
  w.u16(a.port());
  w.bytes(ip);
}

void write_error_code(ByteWriter& w, uint16_t code, const std::string& reason) {
  if (code < 300 || code > 699)
    throw std::invalid_argument("encode_stun: error code must be 300..699 (RFC 8489 §14.8)");
  if (reason.size() > kMaxStunErrorReason)
    throw std::invalid_argument("encode_stun: error reason longer than 763 bytes");
  attr_header(w, kStunAttrErrorCode, 4 + reason.size());
  w.u16(0);
  w.u8(static_cast<uint8_t>(code / 100));
  w.u8(static_cast<uint8_t>(code % 100));
  w.bytes(reason);
  pad_to_4(w, reason.size());
}

void write_attributes(ByteWriter& w, const StunMessage& m) {
  if (m.username) {
    if (m.username->size() > kMaxStunUsername)
      throw std::invalid_argument("encode_stun: USERNAME longer than 513 bytes");
    attr_header(w, kStunAttrUsername, m.username->size());
    w.bytes(*m.username);
    pad_to_4(w, m.username->size());
  }
  if (m.xor_mapped_address) write_xor_address(w, *m.xor_mapped_address, m.transaction_id);
  if (m.error_code)
    write_error_code(w, *m.error_code, m.error_reason);
  else if (!m.error_reason.empty())
    throw std::invalid_argument("encode_stun: error reason without an error code");
  if (m.priority) {
    attr_header(w, kStunAttrPriority, 4);
    w.u32(*m.priority);
  }
  if (m.use_candidate) attr_header(w, kStunAttrUseCandidate, 0);
  if (m.ice_controlled) {
    attr_header(w, kStunAttrIceControlled, 8);
    w.u64(*m.ice_controlled);
  }
  if (m.ice_controlling) {
    attr_header(w, kStunAttrIceControlling, 8);
    w.u64(*m.ice_controlling);
  }
  // Plain Binding and RFC 5780, after the ICE attributes so that checks keep their bytes.
  if (m.mapped_address) write_plain_address(w, kStunAttrMappedAddress, *m.mapped_address);
  if (m.response_origin) write_plain_address(w, kStunAttrResponseOrigin, *m.response_origin);
  if (m.other_address) write_plain_address(w, kStunAttrOtherAddress, *m.other_address);
  if (!m.unknown_attributes.empty()) {
    if (m.unknown_attributes.size() > kMaxStunUnknownAttributes)
      throw std::invalid_argument("encode_stun: more than 32 UNKNOWN-ATTRIBUTES");
    attr_header(w, kStunAttrUnknownAttributes, 2 * m.unknown_attributes.size());
    for (uint16_t t : m.unknown_attributes)
      w.u16(t);
    pad_to_4(w, 2 * m.unknown_attributes.size());
  }
  if (m.change_request) {
    attr_header(w, kStunAttrChangeRequest, 4);
    w.u32((m.change_request->change_ip ? kStunChangeIp : 0) |
          (m.change_request->change_port ? kStunChangePort : 0));
  }
  if (m.response_port) {
    // The port, then two zero bytes (RFC 5780 §7.5), as deployed clients send it.
    attr_header(w, kStunAttrResponsePort, 4);
    w.u16(*m.response_port);
    w.u16(0);
  }
  if (m.software) {
    if (m.software->size() > kMaxStunSoftware)
      throw std::invalid_argument("encode_stun: SOFTWARE longer than 763 bytes");
    attr_header(w, kStunAttrSoftware, m.software->size());
    w.bytes(*m.software);
    pad_to_4(w, m.software->size());
  }
}

size_t address_attr_size(const std::optional<Address>& a) {
  if (!a) return 0;
  return kAttrHeaderSize + 4 + (a->is_v6() ? 16 : 4);
}

// ---- parsing -----------------------------------------------------------------------------------

struct RawAttribute {
  uint16_t type = 0;
  std::span<const uint8_t> value;
  size_t offset = 0; // of the attribute header within the message
};

// Checks the fixed header (RFC 8489 §5, §6.3). On success the reader is past the header.
bool read_header(ByteReader& r, size_t size, uint16_t& type, std::string& error) {
  if (size > kMaxStunDatagram) {
    error = "datagram of " + std::to_string(size) + " bytes exceeds " +
            std::to_string(kMaxStunDatagram);
    return false;
  }
  if (size < kStunHeaderSize) {
    error = "datagram shorter than a STUN header";
    return false;
  }
  type = r.u16();
  const uint16_t length = r.u16();
  const uint32_t cookie = r.u32();
  r.bytes(12);
  if (type & 0xC000) {
    error = "top two bits of the message type are not zero";
    return false;
  }
  if (cookie != kStunMagicCookie) {
    error = "bad magic cookie";
    return false;
  }
  if (length % 4 != 0) {
    error = "message length " + std::to_string(length) + " is not a multiple of 4";
    return false;
  }
  if (length != size - kStunHeaderSize) {
    error = "message length " + std::to_string(length) + " does not match the datagram (" +
            std::to_string(size - kStunHeaderSize) + " bytes after the header)";
    return false;
  }
  return true;
}

// Reads the next attribute and its padding. False at the end, or with the reader failed when
// the attribute runs past the end of the message.
bool next_attribute(ByteReader& r, RawAttribute& a) {
  if (r.remaining() == 0) return false;
  a.offset = r.position();
  a.type = r.u16();
  const uint16_t length = r.u16();
  a.value = r.bytes(length);
  r.bytes(padded(length) - length);
  return r.ok();
}

Address make_address(const std::array<uint8_t, 16>& ip, size_t ip_size, uint16_t port) {
  if (ip_size == 4) {
    const uint32_t v4 =
        (uint32_t{ip[0]} << 24) | (uint32_t{ip[1]} << 16) | (uint32_t{ip[2]} << 8) | ip[3];
    return Address::ipv4(v4, port);
  }
  sockaddr_in6 sin6{};
  sin6.sin6_family = AF_INET6;
  std::memcpy(&sin6.sin6_addr, ip.data(), 16);
  sin6.sin6_port = htons(port);
  return Address::from_sockaddr(reinterpret_cast<const sockaddr*>(&sin6), sizeof sin6);
}

bool read_xor_address(const RawAttribute& a, const StunTransactionId& tx, StunMessage& m,
                      std::string& error) {
  ByteReader r(a.value);
  r.u8(); // reserved
  const uint8_t family = r.u8();
  const uint16_t port = static_cast<uint16_t>(r.u16() ^ (kStunMagicCookie >> 16));
  const size_t ip_size = family == kFamilyIpv4 ? 4 : family == kFamilyIpv6 ? 16 : 0;
  if (ip_size == 0 || a.value.size() != 4 + ip_size) {
    error = "malformed XOR-MAPPED-ADDRESS (family " + std::to_string(family) + ", " +
            std::to_string(a.value.size()) + " bytes)";
    return false;
  }
  const auto pad = xor_pad(tx);
  std::array<uint8_t, 16> ip{};
  for (size_t i = 0; i < ip_size; ++i)
    ip[i] = static_cast<uint8_t>(r.u8() ^ pad[i]);
  m.xor_mapped_address = make_address(ip, ip_size, port);
  return true;
}

// MAPPED-ADDRESS, RESPONSE-ORIGIN, OTHER-ADDRESS: family 1 with 4 bytes, 2 with 16.
bool read_plain_address(const RawAttribute& a, std::optional<Address>& out, const char* name,
                        std::string& error) {
  ByteReader r(a.value);
  r.u8(); // reserved
  const uint8_t family = r.u8();
  const uint16_t port = r.u16();
  const size_t ip_size = family == kFamilyIpv4 ? 4 : family == kFamilyIpv6 ? 16 : 0;
  if (ip_size == 0 || a.value.size() != 4 + ip_size) {
    error = std::string("malformed ") + name + " (family " + std::to_string(family) + ", " +
            std::to_string(a.value.size()) + " bytes)";
    return false;
  }
  std::array<uint8_t, 16> ip{};
  for (size_t i = 0; i < ip_size; ++i)
    ip[i] = r.u8();
  out = make_address(ip, ip_size, port);
  return true;
}

bool read_error_code(const RawAttribute& a, StunMessage& m, std::string& error) {
  if (a.value.size() < 4 || a.value.size() > 4 + kMaxStunErrorReason) {
    error = "ERROR-CODE of " + std::to_string(a.value.size()) + " bytes";
    return false;
  }
  // 21 reserved bits, 3 class bits, 8 number bits (RFC 8489 §14.8). Reserved bits are ignored.
  const unsigned cls = a.value[2] & 0x07;
  const unsigned number = a.value[3];
  if (cls < 3 || cls > 6 || number > 99) {
    error = "ERROR-CODE class " + std::to_string(cls) + " number " + std::to_string(number) +
            " out of range";
    return false;
  }
  m.error_code = static_cast<uint16_t>(cls * 100 + number);
  m.error_reason.assign(reinterpret_cast<const char*>(a.value.data()) + 4, a.value.size() - 4);
  return true;
}

// A fixed-size value, or an error naming the attribute.
bool expect_size(const RawAttribute& a, size_t size, std::string& error) {
  if (a.value.size() == size) return true;
  error = "attribute " + hex16(a.type) + " has length " + std::to_string(a.value.size()) +
          " (expected " + std::to_string(size) + ")";
  return false;
}

uint64_t read_u64(std::span<const uint8_t> v) {
  ByteReader r(v);
  return r.u64();
}

// Decodes one attribute we understand into m. Unknown comprehension-optional types are skipped;
// unknown comprehension-required ones are an error, unless `tolerate_unknown` (a server that
// answers them with 420 lists them itself).
bool read_attribute(const RawAttribute& a, StunMessage& m, bool tolerate_unknown,
                    std::string& error) {
  switch (a.type) {
  case kStunAttrMappedAddress:
    return read_plain_address(a, m.mapped_address, "MAPPED-ADDRESS", error);
  case kStunAttrResponseOrigin:
    return read_plain_address(a, m.response_origin, "RESPONSE-ORIGIN", error);
  case kStunAttrOtherAddress:
    return read_plain_address(a, m.other_address, "OTHER-ADDRESS", error);
  case kStunAttrUnknownAttributes: {
    // A list of u16 types with the usual padding; RFC 3489's odd-count duplicate is gone
    // (RFC 8489 §14.9).
    if (a.value.size() % 2 != 0 || a.value.size() / 2 > kMaxStunUnknownAttributes) {
      error = "UNKNOWN-ATTRIBUTES of " + std::to_string(a.value.size()) + " bytes";
      return false;
    }
    ByteReader r(a.value);
    m.unknown_attributes.clear();
    while (r.remaining() > 0)
      m.unknown_attributes.push_back(r.u16());
    return true;
  }
  case kStunAttrChangeRequest: {
    if (!expect_size(a, 4, error)) return false;
    const uint32_t flags = ByteReader(a.value).u32();
    m.change_request =
        StunChangeRequest{(flags & kStunChangeIp) != 0, (flags & kStunChangePort) != 0};
    return true;
  }
  case kStunAttrResponsePort:
    // Two bytes of port, then two of padding inside the value as most clients send it; a bare
    // two-byte value is taken too (RFC 5780 §7.5 can be read either way).
    if (a.value.size() != 2 && a.value.size() != 4) return expect_size(a, 4, error);
    m.response_port = ByteReader(a.value).u16();
    return true;
  case kStunAttrSoftware:
    if (a.value.size() > kMaxStunSoftware) {
      error = "SOFTWARE longer than " + std::to_string(kMaxStunSoftware) + " bytes";
      return false;
    }
    m.software.emplace(reinterpret_cast<const char*>(a.value.data()), a.value.size());
    return true;
  case kStunAttrUsername:
    if (a.value.size() > kMaxStunUsername) {
      error = "USERNAME longer than " + std::to_string(kMaxStunUsername) + " bytes";
      return false;
    }
    m.username.emplace(reinterpret_cast<const char*>(a.value.data()), a.value.size());
    return true;
  case kStunAttrXorMappedAddress:
    return read_xor_address(a, m.transaction_id, m, error);
  case kStunAttrErrorCode:
    return read_error_code(a, m, error);
  case kStunAttrPriority:
    if (!expect_size(a, 4, error)) return false;
    m.priority = ByteReader(a.value).u32();
    return true;
  case kStunAttrUseCandidate:
    if (!expect_size(a, 0, error)) return false;
    m.use_candidate = true;
    return true;
  case kStunAttrIceControlled:
    if (!expect_size(a, 8, error)) return false;
    m.ice_controlled = read_u64(a.value);
    return true;
  case kStunAttrIceControlling:
    if (!expect_size(a, 8, error)) return false;
    m.ice_controlling = read_u64(a.value);
    return true;
  default:
    // RFC 8489 §14: an agent that does not understand a comprehension-required attribute must
    // not process the message (a server would answer 420; a check has nothing to gain from it).
    if (a.type < 0x8000 && !tolerate_unknown) {
      error = "unknown comprehension-required attribute " + hex16(a.type);
      return false;
    }
    return true;
  }
}

// Bit per known attribute, so that of duplicates only the first is read (RFC 8489 §5).
unsigned seen_bit(uint16_t type) {
  switch (type) {
  case kStunAttrUsername:
    return 1u << 0;
  case kStunAttrXorMappedAddress:
    return 1u << 1;
  case kStunAttrErrorCode:
    return 1u << 2;
  case kStunAttrPriority:
    return 1u << 3;
  case kStunAttrUseCandidate:
    return 1u << 4;
  case kStunAttrIceControlled:
    return 1u << 5;
  case kStunAttrIceControlling:
    return 1u << 6;
  case kStunAttrMappedAddress:
    return 1u << 7;
  case kStunAttrResponseOrigin:
    return 1u << 8;
  case kStunAttrOtherAddress:
    return 1u << 9;
  case kStunAttrUnknownAttributes:
    return 1u << 10;
  case kStunAttrChangeRequest:
    return 1u << 11;
  case kStunAttrResponsePort:
    return 1u << 12;
  case kStunAttrSoftware:
    return 1u << 13;
  default:
    return 0;
  }
}

bool check_fingerprint(std::span<const uint8_t> msg, const RawAttribute& a, ByteReader& r,
                       std::string& error) {
  if (r.remaining() != 0) {
    error = "FINGERPRINT is not the last attribute";
    return false;
  }
  if (!expect_size(a, 4, error)) return false;
  // The CRC covers everything before the attribute, with the header length already counting
  // the FINGERPRINT itself (RFC 8489 §14.7); since it is last, that is the length as received.
  const uint32_t want = stun_crc32(msg.first(a.offset)) ^ kStunFingerprintXor;
  if (ByteReader(a.value).u32() != want) {
    error = "FINGERPRINT mismatch";
    return false;
  }
  return true;
}

// CRC-32 table for the reflected polynomial 0xEDB88320, built at compile time.
constexpr std::array<uint32_t, 256> make_crc_table() {
  std::array<uint32_t, 256> t{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int k = 0; k < 8; ++k)
      c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
    t[i] = c;
  }
  return t;
}
constexpr auto kCrcTable = make_crc_table();

// Log-safe copy of peer text: printable ASCII stays, everything else becomes \xNN.
std::string escape(std::string_view s) {
  static const char digits[] = "0123456789abcdef";
  std::string out;
  for (char ch : s) {
    const auto c = static_cast<uint8_t>(ch);
    if (c >= 0x20 && c < 0x7F && c != '\\') {
      out += ch;
    } else {
      out += "\\x";
      out += digits[c >> 4];
      out += digits[c & 0xF];
    }
  }
  return out;
}

std::string hex_bytes(std::span<const uint8_t> b) {
  static const char digits[] = "0123456789abcdef";
  std::string out;
  for (uint8_t c : b) {
    out += digits[c >> 4];
    out += digits[c & 0xF];
  }
  return out;
}

} // namespace

uint32_t stun_crc32(std::span<const uint8_t> data) {
  uint32_t c = 0xFFFFFFFFu;
  for (uint8_t b : data)
    c = kCrcTable[(c ^ b) & 0xFF] ^ (c >> 8);
  return c ^ 0xFFFFFFFFu;
}

size_t stun_encoded_size(const StunMessage& m, bool with_integrity) {
  size_t n = kStunHeaderSize;
  if (m.username) n += kAttrHeaderSize + padded(m.username->size());
  if (m.xor_mapped_address) n += address_attr_size(m.xor_mapped_address);
  if (m.error_code) n += kAttrHeaderSize + 4 + padded(m.error_reason.size());
  if (m.priority) n += kAttrHeaderSize + 4;
  if (m.use_candidate) n += kAttrHeaderSize;
  if (m.ice_controlled) n += kAttrHeaderSize + 8;
  if (m.ice_controlling) n += kAttrHeaderSize + 8;
  n += address_attr_size(m.mapped_address) + address_attr_size(m.response_origin) +
       address_attr_size(m.other_address);
  if (!m.unknown_attributes.empty()) n += kAttrHeaderSize + padded(2 * m.unknown_attributes.size());
  if (m.change_request) n += kAttrHeaderSize + 4;
  if (m.response_port) n += kAttrHeaderSize + 4;
  if (m.software) n += kAttrHeaderSize + padded(m.software->size());
  if (with_integrity) n += kIntegrityAttrSize;
  return n + kFingerprintAttrSize;
}

std::vector<uint8_t> encode_stun(const StunMessage& m, std::span<const uint8_t> integrity_key) {
  if (m.method > kStunMaxMethod)
    throw std::invalid_argument("encode_stun: method does not fit in 12 bits");
  std::vector<uint8_t> out;
  out.reserve(256);
  ByteWriter w(out);
  w.u16(message_type(m.cls, m.method));
  w.u16(0); // set below, once the attributes are known
  w.u32(kStunMagicCookie);
  w.bytes(m.transaction_id);
  write_attributes(w, m);
  // Every attribute at its limit would not fit in one datagram; refuse what our own parser (and
  // a 1500-byte link) would not take.
  const size_t total =
      out.size() + (integrity_key.empty() ? 0 : kIntegrityAttrSize) + kFingerprintAttrSize;
  if (total > kMaxStunDatagram)
    throw std::invalid_argument("encode_stun: message of " + std::to_string(total) +
                                " bytes exceeds " + std::to_string(kMaxStunDatagram));

  if (!integrity_key.empty()) {
    // The HMAC covers the message up to MESSAGE-INTEGRITY, with a header length that already
    // counts MESSAGE-INTEGRITY but not the FINGERPRINT that follows (RFC 8489 §14.5).
    set_length(out, out.size() - kStunHeaderSize + kIntegrityAttrSize);
    std::array<uint8_t, kStunIntegritySize> mac{};
    if (!hmac_sha1(integrity_key, out, mac))
      throw std::runtime_error("encode_stun: HMAC-SHA1 failed");
    attr_header(w, kStunAttrMessageIntegrity, kStunIntegritySize);
    w.bytes(mac);
  }
  // FINGERPRINT (RFC 8489 §14.7): CRC-32 of everything before it, length counting it.
  set_length(out, out.size() - kStunHeaderSize + kFingerprintAttrSize);
  const uint32_t crc = stun_crc32(out) ^ kStunFingerprintXor;
  attr_header(w, kStunAttrFingerprint, 4);
  w.u32(crc);
  return out;
}

namespace {

std::optional<StunMessage> parse_impl(std::span<const uint8_t> datagram, bool tolerate_unknown,
                                      std::string& error) {
  ByteReader r(datagram);
  uint16_t type = 0;
  if (!read_header(r, datagram.size(), type, error)) return std::nullopt;
  StunMessage m;
  m.cls = class_of(type);
  m.method = method_of(type);
  std::copy_n(datagram.begin() + kTransactionIdOffset, m.transaction_id.size(),
              m.transaction_id.begin());

  unsigned seen = 0;
  RawAttribute a;
  while (next_attribute(r, a)) {
    if (a.type == kStunAttrFingerprint) {
      if (!check_fingerprint(datagram, a, r, error)) return std::nullopt;
      m.has_fingerprint = true;
      break;
    }
    // After MESSAGE-INTEGRITY only FINGERPRINT counts (RFC 8489 §14.5): the rest is not
    // covered by the HMAC, so an on-path attacker could have added it.
    if (m.has_integrity) continue;
    if (a.type == kStunAttrMessageIntegrity) {
      if (!expect_size(a, kStunIntegritySize, error)) return std::nullopt;
      m.has_integrity = true;
      continue;
    }
    const unsigned bit = seen_bit(a.type);
    if (seen & bit) continue;
    seen |= bit;
    if (!read_attribute(a, m, tolerate_unknown, error)) return std::nullopt;
  }
  if (!r.ok()) {
    error = "attribute " + hex16(a.type) + " at offset " + std::to_string(a.offset) +
            " runs past the end of the message";
    return std::nullopt;
  }
  return m;
}

bool known_attribute(uint16_t type) {
  return seen_bit(type) != 0 || type == kStunAttrMessageIntegrity || type == kStunAttrFingerprint;
}

} // namespace

std::optional<StunMessage> parse_stun(std::span<const uint8_t> datagram, std::string& error) {
  return parse_impl(datagram, false, error);
}

StunInspection inspect_stun(std::span<const uint8_t> datagram) {
  StunInspection in;
  ByteReader r(datagram);
  uint16_t type = 0;
  if (!read_header(r, datagram.size(), type, in.error)) return in;
  in.cls = class_of(type);
  in.method = method_of(type);
  std::copy_n(datagram.begin() + kTransactionIdOffset, in.transaction_id.size(),
              in.transaction_id.begin());

  // First the framing, which decides between an answer and silence: every attribute inside the
  // message, FINGERPRINT last and right (a wrong one means the bytes are not STUN, RFC 8489
  // §7). On the way, note credentials and the types we do not know.
  bool after_integrity = false;
  RawAttribute a;
  while (next_attribute(r, a)) {
    if (a.type == kStunAttrFingerprint) {
      if (check_fingerprint(datagram, a, r, in.error)) break;
      in.unknown.clear();
      return in;
    }
    if (a.type == kStunAttrUsername || a.type == kStunAttrMessageIntegrity) in.credentials = true;
    if (after_integrity) continue; // ignored by the parser too (RFC 8489 §14.5)
    if (a.type == kStunAttrMessageIntegrity) after_integrity = true;
    if (a.type < 0x8000 && !known_attribute(a.type) &&
        in.unknown.size() < kMaxStunUnknownAttributes &&
        std::find(in.unknown.begin(), in.unknown.end(), a.type) == in.unknown.end())
      in.unknown.push_back(a.type);
  }
  if (!r.ok()) {
    in.error = "attribute " + hex16(a.type) + " at offset " + std::to_string(a.offset) +
               " runs past the end of the message";
    in.unknown.clear();
    return in;
  }
  // Then the values. The framing is sound, so a failure here is an attribute's value.
  in.message = parse_impl(datagram, true, in.error);
  if (!in.message) {
    in.verdict = StunInspection::Verdict::BadAttribute;
    in.unknown.clear();
    return in;
  }
  if (!in.unknown.empty()) {
    in.verdict = StunInspection::Verdict::UnknownRequired;
    in.error = "unknown comprehension-required attribute " + hex16(in.unknown.front());
    return in;
  }
  in.verdict = StunInspection::Verdict::Ok;
  return in;
}

std::vector<uint8_t> encode_binding_request(const StunBindingRequest& request) {
  StunMessage m;
  m.cls = StunClass::Request;
  m.method = kStunBindingMethod;
  m.transaction_id = request.transaction_id;
  m.change_request = request.change;
  m.response_port = request.response_port;
  if (!request.software.empty()) m.software = request.software;
  return encode_stun(m, {});
}

std::optional<StunBindingResponse> read_binding_response(std::span<const uint8_t> datagram,
                                                         const StunTransactionId& tx,
                                                         std::string& error) {
  auto m = parse_stun(datagram, error);
  if (!m) return std::nullopt;
  if (m->method != kStunBindingMethod ||
      (m->cls != StunClass::SuccessResponse && m->cls != StunClass::ErrorResponse)) {
    error = "not a Binding response: " + to_string(*m);
    return std::nullopt;
  }
  if (m->transaction_id != tx) {
    error = "response for another transaction";
    return std::nullopt;
  }
  StunBindingResponse out;
  out.success = m->cls == StunClass::SuccessResponse;
  out.mapped = m->xor_mapped_address ? m->xor_mapped_address : m->mapped_address;
  if (out.success && !out.mapped) {
    error = "success response without XOR-MAPPED-ADDRESS or MAPPED-ADDRESS";
    return std::nullopt;
  }
  out.response_origin = m->response_origin;
  out.other_address = m->other_address;
  if (!out.success) {
    out.error_code = m->error_code;
    out.error_reason = m->error_reason;
    out.unknown_attributes = m->unknown_attributes;
  }
  return out;
}

bool verify_stun_integrity(std::span<const uint8_t> datagram, std::span<const uint8_t> key) {
  if (key.empty()) return false;
  ByteReader r(datagram);
  uint16_t type = 0;
  std::string error;
  if (!read_header(r, datagram.size(), type, error)) return false;
  RawAttribute a;
  while (next_attribute(r, a)) {
    if (a.type != kStunAttrMessageIntegrity) continue;
    if (a.value.size() != kStunIntegritySize) return false;
    std::vector<uint8_t> covered(datagram.begin(), datagram.begin() + a.offset);
    set_length(covered, a.offset - kStunHeaderSize + kIntegrityAttrSize);
    std::array<uint8_t, kStunIntegritySize> mac{};
    if (!hmac_sha1(key, covered, mac)) return false;
    return gnutls_memcmp(mac.data(), a.value.data(), mac.size()) == 0;
  }
  return false;
}

bool is_stun(std::span<const uint8_t> datagram) {
  if (datagram.size() < kStunHeaderSize || (datagram[0] & 0xC0) != 0) return false;
  ByteReader r(datagram.subspan(4, 4));
  return r.u32() == kStunMagicCookie;
}

const char* to_string(StunClass c) {
  switch (c) {
  case StunClass::Request:
    return "request";
  case StunClass::Indication:
    return "indication";
  case StunClass::SuccessResponse:
    return "success";
  case StunClass::ErrorResponse:
    return "error";
  }
  return "?";
}

std::string to_string(const StunMessage& m) {
  std::string s = m.method == kStunBindingMethod ? "binding" : "method " + hex16(m.method);
  s += ' ';
  s += to_string(m.cls);
  s += " tx=" + hex_bytes(m.transaction_id);
  if (m.username) s += " user=" + escape(*m.username);
  if (m.xor_mapped_address) s += " mapped=" + m.xor_mapped_address->to_string();
  if (m.error_code)
    s += " error=" + std::to_string(*m.error_code) + " \"" + escape(m.error_reason) + '"';
  if (m.priority) s += " priority=" + std::to_string(*m.priority);
  if (m.use_candidate) s += " use-candidate";
  if (m.ice_controlling) s += " controlling=" + std::to_string(*m.ice_controlling);
  if (m.ice_controlled) s += " controlled=" + std::to_string(*m.ice_controlled);
  if (m.mapped_address) s += " mapped-address=" + m.mapped_address->to_string();
  if (m.response_origin) s += " response-origin=" + m.response_origin->to_string();
  if (m.other_address) s += " other-address=" + m.other_address->to_string();
  if (!m.unknown_attributes.empty()) {
    s += " unknown=";
    for (size_t i = 0; i < m.unknown_attributes.size(); ++i)
      s += (i ? "," : "") + hex16(m.unknown_attributes[i]);
  }
  if (m.change_request)
    s += std::string(" change-request=") + (m.change_request->change_ip ? "ip" : "") +
         (m.change_request->change_ip && m.change_request->change_port ? "+" : "") +
         (m.change_request->change_port ? "port" : "") +
         (m.change_request->change_ip || m.change_request->change_port ? "" : "none");
  if (m.response_port) s += " response-port=" + std::to_string(*m.response_port);
  if (m.software) s += " software=\"" + escape(*m.software) + '"';
  if (m.has_integrity) s += " integrity";
  if (m.has_fingerprint) s += " fingerprint";
  return s;
}

} // namespace ztna::wire
