// A plain STUN Binding server (RFC 8489) with NAT behaviour discovery (RFC 5780), sans-IO: the
// intermediate tells peers and standard clients the address it sees them at, and with an
// alternate address and port lets them classify their NAT (DESIGN D4). docs/protocol.md §12.
//
// Driven by (now, the socket a datagram arrived on, its source, its bytes); gives back the answer
// and the socket that must send it, or nothing. The caller owns the sockets. What is answered:
//   - Binding requests without USERNAME or MESSAGE-INTEGRITY. A request with credentials is an
//     ICE check meant for a peer (RFC 8445 §7.2): counted and dropped, never answered here.
//   - Never responses, indications or anything that is not STUN (RFC 8489 §6.3).
//   - A request with unknown comprehension-required attributes gets 420 with UNKNOWN-ATTRIBUTES
//     (RFC 8489 §6.3.1), a malformed or non-Binding one 400.
//   - CHANGE-REQUEST is served from the alternate socket(s) when both an alternate address and
//     an alternate port are configured; otherwise it gets 420 (RFC 5780 §6.1). OTHER-ADDRESS is
//     sent only then too. RESPONSE-PORT sends the answer to that port of the source IP (§6.1).
// Amplification: an answer is never larger than 3x the request that caused it. Optional
// attributes are left out, least useful first, until it fits. Every request that would be
// answered spends a token from its source's bucket (IPv4 address or IPv6 /64, in an LRU table of
// bounded size) and from a global bucket; an empty bucket drops it. Every drop has a counter.
#pragma once

#include "net/address.hpp"
#include "net/rate_limiter.hpp"

#include <array>
#include <cstddef>
#include <cstdint>
#include <list>
#include <optional>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

namespace ztna::stun {

// The four sockets of RFC 5780 §6: the primary address and port, and each combination with the
// alternate ones. Bit 0 is "alternate port", bit 1 "alternate address", so CHANGE-REQUEST's
// change-port and change-IP flags flip one bit each.
enum class Socket : uint8_t {
  Primary = 0,
  AlternatePort = 1,
  AlternateAddress = 2,
  AlternateBoth = 3,
};
constexpr std::array<Socket, 4> kAllSockets = {Socket::Primary, Socket::AlternatePort,
                                               Socket::AlternateAddress, Socket::AlternateBoth};
const char* to_string(Socket s);

class BindingServer {
public:
  struct Config {
    // The primary socket's address as clients reach it (IP and port). An unspecified IP
    // (0.0.0.0 or ::, a wildcard bind) means it is not known: answers from the primary IP then
    // carry no RESPONSE-ORIGIN, and RFC 5780 mode is off.
    Address primary;
    std::optional<uint16_t> alternate_port;   // opens AlternatePort (and, with an address, Both)
    std::optional<Address> alternate_address; // its IP opens AlternateAddress; its port is ignored
    std::string software = "ztna";            // SOFTWARE in answers when it fits; empty: never
    // Requests answered per second and saved up, per source and in all.
    double source_rate = 20, source_burst = 40;
    double global_rate = 2000, global_burst = 2000;
    size_t max_sources = 4096; // entries in the per-source table (least recently seen go first)
  };

  struct Reply {
    Socket via;                    // the socket that must send it
    Address to;                    // the request's source, or its RESPONSE-PORT
    std::vector<uint8_t> datagram; // at most 3x the request
  };

  struct Counters {
    uint64_t received = 0;
    uint64_t answered = 0;         // success responses
    uint64_t answered_changed = 0; // ... of which from another socket (CHANGE-REQUEST)
    uint64_t answered_to_port = 0; // responses of either class sent to another port (RESPONSE-PORT)
    uint64_t answers_trimmed = 0;  // success responses that left optional attributes out (3x)
    uint64_t bad_request = 0;      // 400 sent: malformed request, method other than Binding
    uint64_t unknown_attribute = 0;     // 420 sent: unknown attributes, or CHANGE-REQUEST unserved
    uint64_t dropped_invalid = 0;       // not STUN: header, framing or FINGERPRINT
    uint64_t dropped_oversize = 0;      // over 1500 bytes
    uint64_t dropped_not_request = 0;   // responses and indications: never answered
    uint64_t dropped_credentials = 0;   // USERNAME or MESSAGE-INTEGRITY: an ICE check, not for us
    uint64_t dropped_source_limit = 0;  // over the per-source rate
    uint64_t dropped_global_limit = 0;  // over the global rate
    uint64_t dropped_amplification = 0; // no answer fits within 3x the request
    uint64_t sources_evicted = 0;       // per-source entries pushed out of the full table
  };

  // Throws std::invalid_argument for a configuration that cannot work: no primary address, an
  // alternate address that is unspecified, of the other family or equal to the primary IP, an
  // alternate port 0 or equal to the primary port, a rate or burst not above 0, no table.
  explicit BindingServer(Config config);

  // One datagram that arrived on `on` from `from`. Throws std::invalid_argument if `on` is not
  // one of this server's sockets (has(on) is false): a wiring error of the caller.
  std::optional<Reply> on_datagram(uint64_t now_ns, Socket on, const Address& from,
                                   std::span<const uint8_t> datagram);

  bool has(Socket s) const;
  // The socket's address as clients reach it (the IP may be unspecified: unknown). Only for
  // sockets this server has.
  Address address(Socket s) const;
  // OTHER-ADDRESS sent and CHANGE-REQUEST served: alternate address and port configured, and the
  // primary IP known (RFC 5780 §6.1 needs all four addresses).
  bool rfc5780() const { return rfc5780_; }
  size_t sources() const { return sources_.size(); }
  const Counters& counters() const { return counters_; }
  const Config& config() const { return config_; }

private:
  struct Source {
    std::string key;
    RateLimiter bucket;
  };
  bool admit(uint64_t now_ns, const Address& from);

  Config config_;
  bool rfc5780_ = false;
  RateLimiter global_;
  // Most recently seen first; the map points into the list.
  std::list<Source> lru_;
  std::unordered_map<std::string, std::list<Source>::iterator> sources_;
  Counters counters_;
};

} // namespace ztna::stun
