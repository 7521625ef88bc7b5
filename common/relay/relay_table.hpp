// Relay authorization and quotas on the intermediate (DESIGN D3): a session's frames are
// forwarded only between the two authenticated control addresses bound to it, so the relay can
// never be used to reach a third party or to reflect traffic; and every session, and every
// identity across its sessions, gets a bandwidth quota (token buckets of bytes), so that one peer
// cannot take the relay for itself.
#pragma once

#include "net/address.hpp"
#include "net/rate_limiter.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>

namespace ztna {

struct RelayQuota {
  double bytes_per_second = 0; // 0 = unlimited
  double burst_bytes = 0;
  bool limited() const { return bytes_per_second > 0; }
};

class RelayTable {
public:
  enum class Verdict { Forward, NotAnEnd, SessionQuota, IdentityQuota };

  explicit RelayTable(RelayQuota per_session = {}, RelayQuota per_identity = {})
      : per_session_(per_session), per_identity_(per_identity) {}

  // `*_identity` names whose quota the end's frames count against ("agent/alice", ...).
  void bind(uint64_t session_id, const Address& agent, const std::string& agent_identity,
            const Address& connector, const std::string& connector_identity);
  void unbind(uint64_t session_id);
  // A peer's control address changed (NAT rebinding): follow it in every session it is in.
  void rebind(const Address& from, const Address& to);
  // Where a frame of `bytes` for `session_id` arriving from `from` goes (in `to`), or why not:
  // `from` is not one of the session's two ends (or the session is unknown), or a quota is
  // spent. Spends quota only on Forward.
  Verdict route(uint64_t session_id, const Address& from, size_t bytes, uint64_t now_ns,
                Address& to);
  // Routing alone, without quotas (status, tests).
  std::optional<Address> peer_of(uint64_t session_id, const Address& from) const;
  size_t size() const { return sessions_.size(); }

private:
  struct Bucket {
    RateLimiter limiter;
    size_t users = 0;
  };
  struct End {
    Address address;
    Bucket* identity = nullptr; // null when identities are unlimited
  };
  struct Route {
    End agent, connector;
    RateLimiter session;
  };
  Bucket* acquire(const std::string& identity);
  void release(Bucket* b);

  RelayQuota per_session_, per_identity_;
  std::unordered_map<uint64_t, Route> sessions_;
  std::unordered_map<std::string, Bucket> identities_; // node-based: Bucket* stay valid
};

} // namespace ztna
