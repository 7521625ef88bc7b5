#include "ice/candidate.hpp"

#include <algorithm>
#include <initializer_list>
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

bool is_v4_metadata(uint8_t b0, uint8_t b1, uint8_t b2, uint8_t b3) {
  return (b0 == 169 && b1 == 254 && b2 == 169 && b3 == 254) || // the usual one
         (b0 == 100 && b1 == 100 && b2 == 100 && b3 == 200) || // Alibaba Cloud
         (b0 == 168 && b1 == 63 && b2 == 129 && b3 == 16);     // Azure WireServer
}

ProbeRefusal v4_refusal(const std::string& ip, size_t at) {
  const uint8_t b0 = byte_at(ip, at), b1 = byte_at(ip, at + 1), b2 = byte_at(ip, at + 2),
                b3 = byte_at(ip, at + 3);
  if (b0 == 0) return ProbeRefusal::Unspecified; // 0/8: "this network"
  if (b0 == 127) return ProbeRefusal::Loopback;
  if (is_v4_metadata(b0, b1, b2, b3)) return ProbeRefusal::Metadata;
  if (b0 == 169 && b1 == 254) return ProbeRefusal::LinkLocal; // RFC 3927
  if (b0 >= 224 && b0 <= 239) return ProbeRefusal::Multicast; // 224/4
  if (b0 == 255 && b1 == 255 && b2 == 255 && b3 == 255) return ProbeRefusal::Broadcast;
  return ProbeRefusal::None;
}

bool equals_v6(const std::string& ip, std::initializer_list<uint8_t> bytes) {
  size_t i = 0;
  for (uint8_t b : bytes)
    if (byte_at(ip, i++) != b) return false;
  return true;
}

ProbeRefusal v6_refusal(const std::string& ip) {
  const uint8_t b0 = byte_at(ip, 0), b1 = byte_at(ip, 1);
  if (all_zero(ip, 0, 16)) return ProbeRefusal::Unspecified;
  if (all_zero(ip, 0, 15) && byte_at(ip, 15) == 1) return ProbeRefusal::Loopback;
  // IPv4 inside IPv6: mapped ::ffff:0:0/96, compatible ::/96, NAT64 64:ff9b::/96 (RFC 6052).
  if (all_zero(ip, 0, 10) && byte_at(ip, 10) == 0xff && byte_at(ip, 11) == 0xff)
    return v4_refusal(ip, 12);
  if (all_zero(ip, 0, 12)) return v4_refusal(ip, 12);
  if (b0 == 0x00 && b1 == 0x64 && byte_at(ip, 2) == 0xff && byte_at(ip, 3) == 0x9b &&
      all_zero(ip, 4, 12))
    return v4_refusal(ip, 12);
  if (b0 == 0xfe && (b1 & 0xc0) == 0x80) return ProbeRefusal::LinkLocal; // fe80::/10
  if (b0 == 0xff) return ProbeRefusal::Multicast;                        // ff00::/8
  if (equals_v6(ip, {0xfd, 0x00, 0x0e, 0xc2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x02, 0x54}) || // AWS
      equals_v6(ip, {0xfd, 0x20, 0x00, 0xce, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x02, 0x54}))   // GCP
    return ProbeRefusal::Metadata;
  return ProbeRefusal::None;
}

// RFC 8445 §5.1.1.1 plus the addresses that cannot carry a direct path between two machines.
bool usable_host_address(const Address& a) {
  if (ip_refusal(a) != ProbeRefusal::None) return false;
  const std::string ip = a.ip_bytes();
  if (ip.size() == 16) {
    const uint8_t b0 = byte_at(ip, 0), b1 = byte_at(ip, 1);
    if (all_zero(ip, 0, 12)) return false; // IPv4-compatible (::/96)
    if (all_zero(ip, 0, 10) && byte_at(ip, 10) == 0xff && byte_at(ip, 11) == 0xff)
      return false;                                      // IPv4-mapped (::ffff:0:0/96)
    if (b0 == 0xfe && (b1 & 0xc0) == 0xc0) return false; // site-local fec0::/10 (deprecated)
    if (b0 == 0x01 && all_zero(ip, 1, 8)) return false;  // 100::/64: the relay's virtual address
  }
  return true;
}

} // namespace

ProbeRefusal ip_refusal(const Address& a) {
  if (a.empty()) return ProbeRefusal::Invalid;
  const std::string ip = a.ip_bytes();
  if (ip.size() == 4) return v4_refusal(ip, 0);
  if (ip.size() == 16) return v6_refusal(ip);
  return ProbeRefusal::Invalid;
}

ProbeRefusal probe_refusal(const Address& a) {
  const ProbeRefusal r = ip_refusal(a);
  if (r != ProbeRefusal::None) return r;
  return a.port() == 0 ? ProbeRefusal::PortZero : ProbeRefusal::None;
}

const char* to_string(ProbeRefusal r) {
  switch (r) {
  case ProbeRefusal::None:
    return "ok";
  case ProbeRefusal::Invalid:
    return "invalid";
  case ProbeRefusal::Unspecified:
    return "unspecified";
  case ProbeRefusal::Loopback:
    return "loopback";
  case ProbeRefusal::LinkLocal:
    return "link-local";
  case ProbeRefusal::Multicast:
    return "multicast";
  case ProbeRefusal::Broadcast:
    return "broadcast";
  case ProbeRefusal::Metadata:
    return "metadata";
  case ProbeRefusal::PortZero:
    return "port-zero";
  }
  return "invalid";
}

namespace {

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
    if (!may_probe(a)) continue; // port 0
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
