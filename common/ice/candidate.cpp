#include "ice/candidate.hpp"

#include <algorithm>
#include <string>

namespace ztna::ice {

namespace {

// Local preferences (RFC 8445 §5.1.2.1 leaves them to us). Every IPv6 candidate ranks above
// every IPv4 one (RFC 8421 §4 with the RFC 6724 default policy); within a family the
// interfaces keep the order the kernel listed them in.
constexpr uint16_t kLocalPreferenceV6 = 65535;
constexpr uint16_t kLocalPreferenceV4 = 32767;
constexpr size_t kMaxPerFamilyRank = 1024; // keeps the two families' ranges apart

uint8_t byte_at(const std::string& ip, size_t i) {
  return static_cast<uint8_t>(ip[i]);
}

bool all_zero(const std::string& ip, size_t from, size_t to) {
  for (size_t i = from; i < to; ++i)
    if (ip[i] != 0) return false;
  return true;
}

// RFC 8445 §5.1.1.1 plus the addresses that cannot carry a direct path between two machines.
bool usable_host_address(const Address& a) {
  const std::string ip = a.ip_bytes();
  if (ip.size() == 4) {
    const uint8_t b0 = byte_at(ip, 0), b1 = byte_at(ip, 1);
    if (b0 == 0) return false;                      // 0/8: "this network", unspecified
    if (b0 == 127) return false;                    // loopback
    if (b0 == 169 && b1 == 254) return false;       // link-local (RFC 3927)
    if (b0 >= 224 && b0 <= 239) return false;       // multicast
    if (ip == std::string(4, '\xff')) return false; // limited broadcast
    return true;
  }
  if (ip.size() == 16) {
    const uint8_t b0 = byte_at(ip, 0), b1 = byte_at(ip, 1);
    if (all_zero(ip, 0, 12)) return false; // ::, ::1 and IPv4-compatible (::/96)
    if (all_zero(ip, 0, 10) && byte_at(ip, 10) == 0xff && byte_at(ip, 11) == 0xff)
      return false;                                      // IPv4-mapped (::ffff:0:0/96)
    if (b0 == 0xfe && (b1 & 0xc0) == 0x80) return false; // link-local fe80::/10
    if (b0 == 0xfe && (b1 & 0xc0) == 0xc0) return false; // site-local fec0::/10 (deprecated)
    if (b0 == 0xff) return false;                        // multicast
    if (b0 == 0x01 && all_zero(ip, 1, 8)) return false;  // 100::/64: the relay's virtual address
    return true;
  }
  return false;
}

uint16_t family_preference(const Address& a) {
  return a.is_v6() ? kLocalPreferenceV6 : kLocalPreferenceV4;
}

} // namespace

uint16_t type_preference(CandidateType t) {
  switch (t) {
  case CandidateType::Host:
    return 126;
  case CandidateType::PeerReflexive:
    return 110;
  case CandidateType::ServerReflexive:
    return 100;
  case CandidateType::Relay:
    return 0;
  }
  return 0;
}

uint32_t candidate_priority(CandidateType t, uint16_t local_preference, uint8_t component) {
  return (uint32_t{type_preference(t)} << 24) + (uint32_t{local_preference} << 8) +
         (256u - component);
}

uint64_t pair_priority(uint32_t controlling, uint32_t controlled) {
  const uint64_t lo = std::min(controlling, controlled);
  const uint64_t hi = std::max(controlling, controlled);
  return (lo << 32) + 2 * hi + (controlling > controlled ? 1 : 0);
}

std::vector<Candidate> host_candidates(std::span<const Address> interface_addresses,
                                       uint16_t port) {
  std::vector<Candidate> out;
  size_t rank[2] = {0, 0}; // per family: v4, v6
  for (Address a : interface_addresses) {
    if (a.empty() || !usable_host_address(a)) continue;
    a.set_port(port);
    if (std::any_of(out.begin(), out.end(), [&](const Candidate& c) { return c.address == a; }))
      continue;
    size_t& r = rank[a.is_v6() ? 1 : 0];
    const auto local = static_cast<uint16_t>(family_preference(a) - std::min(r, kMaxPerFamilyRank));
    ++r;
    out.push_back({CandidateType::Host, a, candidate_priority(CandidateType::Host, local)});
  }
  std::stable_sort(out.begin(), out.end(),
                   [](const Candidate& x, const Candidate& y) { return x.priority > y.priority; });
  return out;
}

Candidate server_reflexive(const Address& observed) {
  return {CandidateType::ServerReflexive, observed,
          candidate_priority(CandidateType::ServerReflexive, family_preference(observed))};
}

const char* to_string(CandidateType t) {
  switch (t) {
  case CandidateType::Host:
    return "host";
  case CandidateType::ServerReflexive:
    return "srflx";
  case CandidateType::PeerReflexive:
    return "prflx";
  case CandidateType::Relay:
    return "relay";
  }
  return "unknown";
}

} // namespace ztna::ice
