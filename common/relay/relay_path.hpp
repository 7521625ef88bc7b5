// The relay path as ngtcp2 sees it (DESIGN D3): every path gets its own virtual local address
// so that a later move to a direct path is a real QUIC migration. Packets on a path whose local
// address is the relay's are wrapped in relay frames and sent to the intermediate.
#pragma once

#include "net/address.hpp"

namespace ztna {

// [100::1]:1, from the discard-only prefix 100::/64 (RFC 6666): never a real interface address.
inline const Address& relay_local_address() {
  static const Address a = *Address::parse("[100::1]:1");
  return a;
}

} // namespace ztna
