#include "portmap/pcp.hpp"

#include "wire/byte_io.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cstring>

namespace ztna::portmap::pcp {

namespace {

constexpr uint8_t kResponseBit = 0x80; // R (§7.1, §7.2)
constexpr size_t kNatPmpHeader = 8;    // RFC 6886 §3.5: version, opcode, result, epoch

void put_ip(wire::ByteWriter& w, const Ip16& ip) {
  w.bytes(std::span<const uint8_t>(ip));
}

template <size_t N> std::array<uint8_t, N> take(wire::ByteReader& r) {
  std::array<uint8_t, N> out{};
  auto b = r.bytes(N);
  if (b.size() == N) std::memcpy(out.data(), b.data(), N);
  return out;
}

// Options (§7.3) follow the opcode data: code, reserved, 16-bit length, data padded to 4 bytes.
// A response whose options overrun the message is malformed; what the options say is of no use
// to a client that sends none.
bool options_well_formed(wire::ByteReader& r) {
  while (r.ok() && r.remaining() > 0) {
    r.u8(); // code
    r.u8(); // reserved
    size_t len = r.u16();
    size_t padded = (len + 3) & ~size_t{3};
    if (!r.ok() || padded > r.remaining()) return false;
    r.bytes(padded);
  }
  return r.ok();
}

} // namespace

const char* result_name(uint8_t result) {
  switch (static_cast<Result>(result)) {
  case Result::Success:
    return "SUCCESS";
  case Result::UnsuppVersion:
    return "UNSUPP_VERSION";
  case Result::NotAuthorized:
    return "NOT_AUTHORIZED";
  case Result::MalformedRequest:
    return "MALFORMED_REQUEST";
  case Result::UnsuppOpcode:
    return "UNSUPP_OPCODE";
  case Result::UnsuppOption:
    return "UNSUPP_OPTION";
  case Result::MalformedOption:
    return "MALFORMED_OPTION";
  case Result::NetworkFailure:
    return "NETWORK_FAILURE";
  case Result::NoResources:
    return "NO_RESOURCES";
  case Result::UnsuppProtocol:
    return "UNSUPP_PROTOCOL";
  case Result::UserExQuota:
    return "USER_EX_QUOTA";
  case Result::CannotProvideExternal:
    return "CANNOT_PROVIDE_EXTERNAL";
  case Result::AddressMismatch:
    return "ADDRESS_MISMATCH";
  case Result::ExcessiveRemotePeers:
    return "EXCESSIVE_REMOTE_PEERS";
  }
  return "unknown";
}

Ip16 v4_mapped(uint32_t host_order_ip) {
  Ip16 ip{};
  ip[10] = 0xff;
  ip[11] = 0xff;
  ip[12] = static_cast<uint8_t>(host_order_ip >> 24);
  ip[13] = static_cast<uint8_t>(host_order_ip >> 16);
  ip[14] = static_cast<uint8_t>(host_order_ip >> 8);
  ip[15] = static_cast<uint8_t>(host_order_ip);
  return ip;
}

std::optional<uint32_t> v4_of(const Ip16& ip) {
  for (size_t i = 0; i < 10; ++i)
    if (ip[i] != 0) return std::nullopt;
  if (ip[10] != 0xff || ip[11] != 0xff) return std::nullopt;
  return (uint32_t{ip[12]} << 24) | (uint32_t{ip[13]} << 16) | (uint32_t{ip[14]} << 8) | ip[15];
}

Ip16 ip16_of(const Address& a) {
  if (!a.is_v6()) {
    auto* in = reinterpret_cast<const sockaddr_in*>(a.sa());
    return v4_mapped(ntohl(in->sin_addr.s_addr));
  }
  Ip16 ip{};
  auto* in6 = reinterpret_cast<const sockaddr_in6*>(a.sa());
  std::memcpy(ip.data(), &in6->sin6_addr, 16);
  return ip;
}

Address address_of(const Ip16& ip, uint16_t port) {
  if (auto v4 = v4_of(ip)) return Address::ipv4(*v4, port);
  sockaddr_in6 in6{};
  in6.sin6_family = AF_INET6;
  in6.sin6_port = htons(port);
  std::memcpy(&in6.sin6_addr, ip.data(), 16);
  return Address::from_sockaddr(reinterpret_cast<const sockaddr*>(&in6), sizeof in6);
}

std::vector<uint8_t> encode_map_request(const MapRequest& req) {
  std::vector<uint8_t> out;
  out.reserve(kHeaderSize + kMapSize);
  wire::ByteWriter w(out);
  // Request header (§7.1).
  w.u8(kVersion);
  w.u8(static_cast<uint8_t>(Opcode::Map));
  w.u16(0);
  w.u32(req.lifetime);
  put_ip(w, req.client);
  // MAP opcode data (§11.1).
  w.bytes(std::span<const uint8_t>(req.nonce));
  w.u8(req.protocol);
  w.u8(0);
  w.u16(0);
  w.u16(req.internal_port);
  w.u16(req.external_port);
  put_ip(w, req.external_address);
  return out;
}

std::vector<uint8_t> encode_announce_request(const Ip16& client) {
  std::vector<uint8_t> out;
  wire::ByteWriter w(out);
  w.u8(kVersion);
  w.u8(static_cast<uint8_t>(Opcode::Announce));
  w.u16(0);
  w.u32(0); // lifetime: 0 for ANNOUNCE (§14.1)
  put_ip(w, client);
  return out;
}

std::optional<Response> decode_response(std::span<const uint8_t> d) {
  if (d.size() < kNatPmpHeader || d.size() > kMaxMessage) return std::nullopt;
  wire::ByteReader r(d);
  Response resp;
  resp.version = r.u8();
  uint8_t op = r.u8();
  if (!(op & kResponseBit)) return std::nullopt; // a request, maybe our own reflected
  resp.opcode = op & ~kResponseBit;
  if (resp.version == 0) {
    // NAT-PMP's header (RFC 6886 §3.5): a 16-bit result and the epoch. Whatever follows belongs
    // to NAT-PMP's opcodes, which a PCP client does not ask for.
    uint16_t result = r.u16();
    resp.result = result > 255 ? 255 : static_cast<uint8_t>(result);
    resp.epoch = r.u32();
    return resp;
  }
  if (d.size() < kHeaderSize || d.size() % 4 != 0) return std::nullopt;
  r.u8(); // reserved
  resp.result = r.u8();
  resp.lifetime = r.u32();
  resp.epoch = r.u32();
  r.bytes(12);                               // reserved
  if (resp.version != kVersion) return resp; // another version: its layout is not ours to read
  if (resp.opcode == static_cast<uint8_t>(Opcode::Map)) {
    if (r.remaining() >= kMapSize) {
      MapData m;
      m.nonce = take<12>(r);
      m.protocol = r.u8();
      r.bytes(3); // reserved
      m.internal_port = r.u16();
      m.external_port = r.u16();
      m.external_address = take<16>(r);
      resp.map = m;
    } else if (resp.result == static_cast<uint8_t>(Result::Success)) {
      return std::nullopt; // a success must say what was assigned
    }
  }
  if (!options_well_formed(r)) return std::nullopt;
  return resp;
}

std::vector<uint8_t> encode_response(const Response& resp) {
  std::vector<uint8_t> out;
  wire::ByteWriter w(out);
  w.u8(resp.version);
  w.u8(static_cast<uint8_t>(resp.opcode | kResponseBit));
  if (resp.version == 0) {
    w.u16(resp.result);
    w.u32(resp.epoch);
    return out;
  }
  w.u8(0);
  w.u8(resp.result);
  w.u32(resp.lifetime);
  w.u32(resp.epoch);
  for (int i = 0; i < 12; ++i)
    w.u8(0);
  if (resp.map) {
    w.bytes(std::span<const uint8_t>(resp.map->nonce));
    w.u8(resp.map->protocol);
    w.u8(0);
    w.u16(0);
    w.u16(resp.map->internal_port);
    w.u16(resp.map->external_port);
    put_ip(w, resp.map->external_address);
  }
  return out;
}

} // namespace ztna::portmap::pcp
