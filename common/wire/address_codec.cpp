#include "wire/address_codec.hpp"

#include <arpa/inet.h>

#include <cstring>
#include <stdexcept>

namespace ztna::wire {

void write_address(ByteWriter& w, const Address& a) {
  const std::string ip = a.ip_bytes();
  if (ip.size() == 4)
    w.u8(kFamilyV4);
  else if (ip.size() == 16)
    w.u8(kFamilyV6);
  else
    throw std::invalid_argument("write_address: address has no IPv4/IPv6 family");
  w.bytes(ip);
  w.u16(a.port());
}

std::optional<Address> read_address(ByteReader& r) {
  const uint8_t family = r.u8();
  if (!r.ok()) return std::nullopt;
  if (family == kFamilyV4) {
    const uint32_t ip = r.u32();
    const uint16_t port = r.u16();
    if (!r.ok()) return std::nullopt;
    return Address::ipv4(ip, port);
  }
  if (family == kFamilyV6) {
    auto ip = r.bytes(16);
    const uint16_t port = r.u16();
    if (!r.ok()) return std::nullopt;
    sockaddr_in6 sin6{};
    sin6.sin6_family = AF_INET6;
    std::memcpy(&sin6.sin6_addr, ip.data(), 16);
    sin6.sin6_port = htons(port);
    return Address::from_sockaddr(reinterpret_cast<const sockaddr*>(&sin6), sizeof sin6);
  }
  r.fail();
  return std::nullopt;
}

} // namespace ztna::wire
