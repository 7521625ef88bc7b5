// The relay path as ngtcp2 sees it (DESIGN D3): every path gets its own virtual local address
// so that a later move to a direct path is a real QUIC migration. Packets on a path whose local
// address is a relay one are wrapped in relay frames and sent to the path's remote address, the
// intermediate.
//
// The agent opens a new relay path (the next port) each time it moves onto a relay again: when
// the relay comes back after the control plane was lost (DESIGN D10), the move is a QUIC
// migration with path validation, which restarts the flow at once instead of waiting out the
// backed-off loss timers of packets lost while the relay was gone.
#pragma once

#include "net/address.hpp"

#include <netinet/in.h>

#include <cstdint>
#include <cstring>

namespace ztna {

// [100::1]:generation, from the discard-only prefix 100::/64 (RFC 6666): never a real
// interface address.
inline Address relay_local_address(uint16_t generation = 1) {
  static const Address base = *Address::parse("[100::1]:1");
  Address a = base;
  a.set_port(generation);
  return a;
}

// On every session packet in and out: a comparison of the 16 address bytes, no allocation.
inline bool is_relay_local(const Address& a) {
  static const in6_addr relay = reinterpret_cast<const sockaddr_in6*>(relay_local_address().sa())->sin6_addr;
  return a.is_v6() &&
         std::memcmp(&reinterpret_cast<const sockaddr_in6*>(a.sa())->sin6_addr, &relay,
                     sizeof relay) == 0;
}

} // namespace ztna
