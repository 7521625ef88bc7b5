// Counts refused handshakes by cause and says why in the log, without letting a flood of them
// flood the log: at most 10 lines a second, and a summary of what was left unsaid.
#pragma once

#include "net/address.hpp"
#include "net/rate_limiter.hpp"
#include "quic/peer_check.hpp"

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

} // namespace ztna::io
