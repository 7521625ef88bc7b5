// Candidates and their priorities for hole punching (DESIGN D4, RFC 8445 §5.1). Plain values and
// arithmetic: gathering interface addresses and learning the server-reflexive address happen in
// the I/O shell and on the control connection.
#pragma once

#include "net/address.hpp"

#include <cstdint>
#include <span>
#include <vector>

namespace ztna::ice {

// Nanoseconds on a monotonic clock: the same representation as quic::Timestamp (ngtcp2_tstamp),
// so one `now` drives a daemon's QUIC connections and its path layer alike.
using Timestamp = uint64_t;
constexpr Timestamp kNever = UINT64_MAX;

// The values are our wire encoding of a candidate's type (wire::Candidates).
enum class CandidateType : uint8_t { Host = 1, ServerReflexive = 2, PeerReflexive = 3, Relay = 4 };

struct Candidate {
  CandidateType type = CandidateType::Host;
  Address address;
  uint32_t priority = 0;
  bool operator==(const Candidate&) const = default;
};

// RFC 8445 §5.1.2.2 recommended values: host 126, prflx 110, srflx 100, relay 0.
uint16_t type_preference(CandidateType t);
// RFC 8445 §5.1.2.1: 2^24 * type preference + 2^8 * local preference + (256 - component).
uint32_t candidate_priority(CandidateType t, uint16_t local_preference, uint8_t component = 1);
// RFC 8445 §6.1.2.3: 2^32 * min(G, D) + 2 * max(G, D) + (G > D ? 1 : 0), where G is the
// controlling agent's candidate priority and D the controlled agent's.
uint64_t pair_priority(uint32_t controlling, uint32_t controlled);

// Host candidates from the machine's interface addresses (RFC 8445 §5.1.1.1). Drops what no peer
// can reach or what must not be offered: loopback (127/8, ::1), link-local (169.254/16,
// fe80::/10), unspecified, multicast, IPv4-compatible/-mapped and site-local IPv6, and 100::/64
// (our relay's virtual address). Sets `port` on each, drops duplicates, and gives IPv6 a higher
// local preference than IPv4 (RFC 8421 §4), so the result, sorted by priority, lists IPv6 first.
std::vector<Candidate> host_candidates(std::span<const Address> interface_addresses, uint16_t port);
// The address the intermediate observed for our socket, as a server-reflexive candidate with
// the same per-family local preference as host candidates.
Candidate server_reflexive(const Address& observed);

// "host", "srflx", "prflx", "relay" (RFC 8839 §5.1 spellings); "unknown" for other values,
// which untrusted signaling can carry.
const char* to_string(CandidateType t);

} // namespace ztna::ice
