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

// Where a connectivity check may never go, whatever the signaling says (docs/security.md). The
// peer's candidates are untrusted: without this filter a session's other end could point our
// socket at services on our own machine or network. The address filter, with its one-word reason:
//   unspecified  0.0.0.0/8, ::
//   loopback     127.0.0.0/8, ::1 (also when our own socket is on loopback: never probed)
//   link-local   169.254.0.0/16, fe80::/10
//   multicast    224.0.0.0/4, ff00::/8
//   broadcast    255.255.255.255
//   metadata     cloud instance metadata: 169.254.169.254 (AWS, GCP, Azure, OpenStack...),
//                100.100.100.200 (Alibaba), 168.63.129.16 (Azure WireServer), fd00:ec2::254
//                (AWS), fd20:ce::254 (GCP)
//   port-zero    port 0
//   invalid      no address, or not IPv4/IPv6
// IPv6 forms that carry an IPv4 address are judged by it: IPv4-mapped (::ffff:0:0/96),
// IPv4-compatible (::/96) and the NAT64 well-known prefix (64:ff9b::/96), so ::ffff:127.0.0.1 is
// loopback and 64:ff9b::a9fe:a9fe is metadata.
enum class ProbeRefusal : uint8_t {
  None,
  Invalid,
  Unspecified,
  Loopback,
  LinkLocal,
  Multicast,
  Broadcast,
  Metadata,
  PortZero,
};
constexpr size_t kProbeRefusalKinds = 9;
// The verdict on the IP alone (any port).
ProbeRefusal ip_refusal(const Address& a);
// The verdict on the IP and the port: what decides whether a check may ever be sent to `a`.
ProbeRefusal probe_refusal(const Address& a);
inline bool may_probe(const Address& a) {
  return probe_refusal(a) == ProbeRefusal::None;
}
// "loopback", "link-local", ... ("ok" for None).
const char* to_string(ProbeRefusal r);

// Host candidates from the machine's interface addresses (RFC 8445 §5.1.1.1). Drops what no peer
// can reach or what must not be offered: everything ip_refusal() refuses, IPv4-compatible and
// -mapped and site-local IPv6, and 100::/64 (our relay's virtual address). Sets `port` on each
// (a port 0 gives nothing), drops duplicates, and gives IPv6 a higher local preference than IPv4
// (RFC 8421 §4), so the result, sorted by priority, lists IPv6 first.
std::vector<Candidate> host_candidates(std::span<const Address> interface_addresses, uint16_t port);
// The address the intermediate observed for our socket, as a server-reflexive candidate with
// the same per-family local preference as host candidates.
Candidate server_reflexive(const Address& observed);

// "host", "srflx", "prflx", "relay" (RFC 8839 §5.1 spellings); "unknown" for other values,
// which untrusted signaling can carry.
const char* to_string(CandidateType t);

} // namespace ztna::ice
