// Admission of new QUIC handshakes on a server (the intermediate), sans-IO. Unauthenticated
// handshakes must never lock out real peers, so they get a budget of their own:
//   - at most `max_half_open` handshakes in progress at once, and `max_per_source` from one
//     source (an IPv4 address, or an IPv6 /64);
//   - above `retry_above` handshakes in progress, or above `retry_rate` new handshakes per
//     second, a new client must first prove its address with a QUIC Retry (RFC 9000 §8.1.2), so
//     that spoofed Initials cost us no state at all;
//   - authenticated peers are counted elsewhere: a flood fills this budget, never theirs.
#pragma once

#include "net/address.hpp"
#include "net/rate_limiter.hpp"

#include <cstddef>
#include <cstdint>
#include <string>
#include <unordered_map>

namespace ztna::quic {

class HandshakeGate {
public:
  enum class RetryMode { Auto, Always, Never };
  struct Config {
    size_t max_half_open = 256; // about 100 KiB each: 25 MiB at most
    size_t max_per_source = 16;
    RetryMode retry = RetryMode::Auto;
    size_t retry_above = 64;   // handshakes in progress (Auto)
    double retry_rate = 200;   // new handshakes per second (Auto), with a burst of as many
  };
  enum class Verdict {
    Accept,
    Retry,           // answer with a Retry packet; keep no state
    OverBudget,      // drop: too many handshakes in progress
    OverSourceLimit, // drop: too many from this source
  };
  struct Counters {
    uint64_t accepted = 0;
    uint64_t retries_sent = 0;
    uint64_t dropped_budget = 0;
    uint64_t dropped_source = 0;
    uint64_t bad_tokens = 0; // Initials with a token that does not verify: dropped
  };

  explicit HandshakeGate(Config config);

  // A new client Initial from `source`; `validated` if it carried a valid Retry token (its
  // address is proven). Accept means the caller starts a handshake and calls started().
  Verdict admit(const Address& source, bool validated, uint64_t now_ns);
  void started(const Address& source);
  // The handshake completed, or the connection ended before it did.
  void finished(const Address& source);
  void bad_token() { counters_.bad_tokens++; }

  size_t half_open() const { return half_open_; }
  const Counters& counters() const { return counters_; }
  const Config& config() const { return config_; }
  // Is address validation (Retry) demanded right now?
  bool retry_required(uint64_t now_ns);

private:
  static std::string source_key(const Address& a);

  Config config_;
  RateLimiter rate_;
  size_t half_open_ = 0;
  std::unordered_map<std::string, size_t> per_source_;
  Counters counters_;
};

} // namespace ztna::quic
