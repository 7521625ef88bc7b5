// Relay authorization on the intermediate (DESIGN D3): a session's frames are forwarded only
// between the two authenticated control addresses bound to it, so the relay can never be used
// to reach a third party or to reflect traffic.
#pragma once

#include "net/address.hpp"

#include <cstdint>
#include <optional>
#include <unordered_map>

namespace ztna {

class RelayTable {
public:
  void bind(uint64_t session_id, const Address& agent, const Address& connector);
  void unbind(uint64_t session_id);
  // A peer's control address changed (NAT rebinding): follow it in every session it is in.
  void rebind(const Address& from, const Address& to);
  // Where a frame for `session_id` arriving from `from` goes, or nullopt if `from` is not one of
  // the session's two ends (or the session is unknown).
  std::optional<Address> route(uint64_t session_id, const Address& from) const;
  size_t size() const { return sessions_.size(); }

private:
  struct Ends {
    Address agent, connector;
  };
  std::unordered_map<uint64_t, Ends> sessions_;
};

} // namespace ztna
