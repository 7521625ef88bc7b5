// Counts refused handshakes by cause and says why in the log, without letting a flood of them
// flood the log: at most 10 lines a second, and a summary of what was left unsaid.
#pragma once

#include "net/address.hpp"
#include "net/rate_limiter.hpp"
#include "quic/peer_check.hpp"
#include "quic/tls_identity.hpp"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>

namespace ztna::io {

class RefusalLog {
public:
  // `what`: the kind of connection, e.g. "control connection", "session".
  void refused(const quic::PeerRefusal& r, const Address& from, const std::string& what);
  const quic::RefusalCounters& counters() const { return counters_; }
  // {"expired": 0, "revoked": 2, ...} with every cause present.
  nlohmann::json json() const;

private:
  quic::RefusalCounters counters_;
  RateLimiter lines_{10, 20};
  uint64_t unsaid_ = 0;
};

// The credentials a daemon holds now. A connection checks its peer's certificate with those in
// force when it was accepted; if a reload came in between, the reload's sweep of live
// connections may have missed it. So the handshake's end checks once more against these.
struct LiveCredentials {
  const quic::TlsIdentityPtr* tls = nullptr; // the daemon's member, replaced on reload
  RefusalLog* refusals = nullptr;

  // True (counted and logged as revoked) if the current CRL lists `peer`.
  bool refuse_if_revoked(const Identity& peer, const Address& from,
                         const std::string& what) const {
    if (!tls || !*tls || !(*tls)->is_revoked(peer)) return false;
    if (refusals)
      refusals->refused({quic::Refusal::Revoked, "certificate revoked (listed in the reloaded CRL)"},
                        from, what);
    return true;
  }
};

} // namespace ztna::io
