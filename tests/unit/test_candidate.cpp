#include <catch2/catch.hpp>

#include <string>
#include <type_traits>
#include <vector>

#include "ice/candidate.hpp"
#include "quic/connection.hpp"

using namespace ztna;
using namespace ztna::ice;

// One `now` drives both QUIC and the path layer.
static_assert(std::is_same_v<ice::Timestamp, quic::Timestamp>);
static_assert(ice::kNever == quic::kNever);

namespace {

Address addr(const std::string& text) {
  auto a = Address::parse(text);
  REQUIRE(a);
  return *a;
}

std::vector<std::string> addresses_of(const std::vector<Candidate>& cs) {
  std::vector<std::string> out;
  for (const auto& c : cs)
    out.push_back(c.address.to_string());
  return out;
}

} // namespace

TEST_CASE("Type preferences are RFC 8445 §5.1.2.2's recommended values", "[ice]") {
  CHECK(type_preference(CandidateType::Host) == 126);
  CHECK(type_preference(CandidateType::PeerReflexive) == 110);
  CHECK(type_preference(CandidateType::ServerReflexive) == 100);
  CHECK(type_preference(CandidateType::Relay) == 0);
}

TEST_CASE("Candidate priorities match hand-computed RFC 8445 §5.1.2.1 values", "[ice]") {
  // 2^24 * type + 2^8 * local + (256 - component)
  CHECK(candidate_priority(CandidateType::Host, 65535) == 2130706431u);
  CHECK(candidate_priority(CandidateType::ServerReflexive, 65535) == 1694498815u);
  CHECK(candidate_priority(CandidateType::PeerReflexive, 65535) == 1862270975u);
  CHECK(candidate_priority(CandidateType::Relay, 65535) == 16777215u);
  CHECK(candidate_priority(CandidateType::Host, 65535, 2) == 2130706430u);
  CHECK(candidate_priority(CandidateType::Host, 32767) == 2122317823u);
  CHECK(candidate_priority(CandidateType::ServerReflexive, 32767) == 1686110207u);
  // Type dominates local preference: the worst host beats the best srflx.
  CHECK(candidate_priority(CandidateType::Host, 0) >
        candidate_priority(CandidateType::ServerReflexive, 65535));
}

TEST_CASE("Pair priority follows RFC 8445 §6.1.2.3 and both sides agree on it", "[ice]") {
  const uint32_t host = 2130706431u, srflx = 1694498815u;
  // 2^32 * min + 2 * max + (G > D)
  CHECK(pair_priority(host, srflx) == 7277816997797167103ull);
  CHECK(pair_priority(srflx, host) == 7277816997797167102ull);
  CHECK(pair_priority(5, 5) == 21474836490ull);
  // The lower candidate priority dominates: a host-relay pair ranks below srflx-srflx.
  const uint32_t relay = 16777215u;
  CHECK(pair_priority(host, relay) < pair_priority(srflx, srflx));
  // The largest possible candidate priorities do not overflow.
  const uint32_t top = candidate_priority(CandidateType::Host, 65535);
  CHECK(pair_priority(top, top) == (uint64_t{top} << 32) + 2ull * top);
}

TEST_CASE("Host candidates keep only addresses a peer can reach", "[ice]") {
  const std::vector<Address> in = {
      addr("127.0.0.1:0"),          // loopback
      addr("127.1.2.3:0"),          // loopback /8
      addr("169.254.10.20:0"),      // link-local
      addr("0.0.0.0:0"),            // unspecified
      addr("224.0.0.251:0"),        // multicast
      addr("255.255.255.255:0"),    // broadcast
      addr("[::1]:0"),              // loopback
      addr("[::]:0"),               // unspecified
      addr("[fe80::1]:0"),          // link-local
      addr("[febf::1]:0"),          // link-local (end of fe80::/10)
      addr("[fec0::1]:0"),          // site-local, deprecated
      addr("[ff02::1]:0"),          // multicast
      addr("[::ffff:192.0.2.1]:0"), // IPv4-mapped
      addr("[100::1]:0"),           // the relay's virtual address
      addr("[100::ffff:1]:0"),      // still 100::/64
      addr("192.168.1.10:0"),       // usable
      addr("10.0.0.5:1234"),        // usable; the port is replaced
      addr("[2001:db8::10]:0"),     // usable
      addr("[fd00::7]:0"),          // ULA: usable
      addr("[100:0:0:1::1]:0"),     // outside 100::/64: usable
      addr("192.168.1.10:9"),       // duplicate of the first usable one once the port is set
  };
  const auto out = host_candidates(in, 4433);
  CHECK(addresses_of(out) == std::vector<std::string>{"[2001:db8::10]:4433", "[fd00::7]:4433",
                                                      "[100:0:0:1::1]:4433", "192.168.1.10:4433",
                                                      "10.0.0.5:4433"});
  for (const auto& c : out) {
    CHECK(c.type == CandidateType::Host);
    CHECK(c.address.port() == 4433);
  }
}

TEST_CASE("Host candidates rank IPv6 above IPv4 and keep the interface order", "[ice]") {
  const std::vector<Address> in = {addr("192.0.2.1:0"), addr("[2001:db8::1]:0"),
                                   addr("198.51.100.1:0"), addr("[2001:db8::2]:0")};
  const auto out = host_candidates(in, 5000);
  REQUIRE(out.size() == 4);
  CHECK(addresses_of(out) == std::vector<std::string>{"[2001:db8::1]:5000", "[2001:db8::2]:5000",
                                                      "192.0.2.1:5000", "198.51.100.1:5000"});
  CHECK(out[0].priority == candidate_priority(CandidateType::Host, 65535));
  CHECK(out[1].priority == candidate_priority(CandidateType::Host, 65534));
  CHECK(out[2].priority == candidate_priority(CandidateType::Host, 32767));
  CHECK(out[3].priority == candidate_priority(CandidateType::Host, 32766));
  // Distinct priorities: the check list orders every pair unambiguously.
  for (size_t i = 1; i < out.size(); ++i)
    CHECK(out[i - 1].priority > out[i].priority);
}

TEST_CASE("Host candidates of nothing usable are empty", "[ice]") {
  CHECK(host_candidates({}, 1).empty());
  const std::vector<Address> only_bad = {addr("127.0.0.1:0"), addr("[::1]:0"), Address()};
  CHECK(host_candidates(only_bad, 1).empty());
}

TEST_CASE("Server-reflexive candidate keeps the observed address", "[ice]") {
  const auto v4 = server_reflexive(addr("203.0.113.7:61000"));
  CHECK(v4.type == CandidateType::ServerReflexive);
  CHECK(v4.address == addr("203.0.113.7:61000"));
  CHECK(v4.priority == candidate_priority(CandidateType::ServerReflexive, 32767));
  const auto v6 = server_reflexive(addr("[2001:db8::7]:61000"));
  CHECK(v6.priority == candidate_priority(CandidateType::ServerReflexive, 65535));
  // Below every host candidate of either family.
  CHECK(v6.priority < host_candidates(std::vector<Address>{addr("10.0.0.1:0")}, 1)[0].priority);
}

TEST_CASE("Candidate types have their SDP names", "[ice]") {
  CHECK(std::string(to_string(CandidateType::Host)) == "host");
  CHECK(std::string(to_string(CandidateType::ServerReflexive)) == "srflx");
  CHECK(std::string(to_string(CandidateType::PeerReflexive)) == "prflx");
  CHECK(std::string(to_string(CandidateType::Relay)) == "relay");
  CHECK(std::string(to_string(static_cast<CandidateType>(9))) == "unknown");
}

TEST_CASE("Probe filter refuses what no check may ever go to, with a one-word reason",
          "[ice][filter]") {
  const std::vector<std::pair<std::string, std::string>> refused = {
      {"127.0.0.1:5000", "loopback"},
      {"127.255.0.9:5000", "loopback"},
      {"169.254.169.254:80", "metadata"},
      {"169.254.1.1:5000", "link-local"},
      {"100.100.100.200:80", "metadata"},
      {"168.63.129.16:80", "metadata"},
      {"224.0.0.251:5353", "multicast"},
      {"239.255.255.250:1900", "multicast"},
      {"0.0.0.0:5000", "unspecified"},
      {"0.1.2.3:5000", "unspecified"},
      {"255.255.255.255:5000", "broadcast"},
      {"[::1]:5000", "loopback"},
      {"[::]:5000", "unspecified"},
      {"[fe80::1]:5000", "link-local"},
      {"[febf::1]:5000", "link-local"},
      {"[ff02::1]:5000", "multicast"},
      {"[ff0e::1]:5000", "multicast"},
      {"[fd00:ec2::254]:80", "metadata"},
      {"[fd20:ce::254]:80", "metadata"},
      // IPv4 inside IPv6 is judged by the IPv4 address.
      {"[::ffff:127.0.0.1]:5000", "loopback"},
      {"[::ffff:169.254.169.254]:80", "metadata"},
      {"[::ffff:169.254.7.7]:80", "link-local"},
      {"[::ffff:224.0.0.251]:5353", "multicast"},
      {"[::ffff:0.0.0.0]:5000", "unspecified"},
      {"[::ffff:255.255.255.255]:5000", "broadcast"},
      {"[::ffff:100.100.100.200]:80", "metadata"},
      {"[::127.0.0.1]:5000", "loopback"},      // IPv4-compatible
      {"[64:ff9b::7f00:1]:5000", "loopback"},  // NAT64 of 127.0.0.1
      {"[64:ff9b::a9fe:a9fe]:80", "metadata"}, // NAT64 of 169.254.169.254
      {"198.51.100.7:0", "port-zero"},
      {"[2001:db8::7]:0", "port-zero"},
      {"127.0.0.1:0", "loopback"}, // the address speaks first
  };
  for (const auto& [text, reason] : refused) {
    INFO(text);
    const auto a = addr(text);
    CHECK_FALSE(may_probe(a));
    CHECK(std::string(to_string(probe_refusal(a))) == reason);
  }
  CHECK(probe_refusal(Address()) == ProbeRefusal::Invalid);
  CHECK(std::string(to_string(ProbeRefusal::Invalid)) == "invalid");
}

TEST_CASE("Probe filter lets ordinary unicast addresses through", "[ice][filter]") {
  for (const std::string text :
       {"10.0.0.1:5000", "192.168.1.10:1", "172.16.0.1:65535", "100.64.1.10:4000",
        "100.100.100.201:80", "169.253.255.255:80", "169.255.0.1:80", "223.255.255.255:9",
        "203.0.113.10:4433", "[2001:db8::1]:5000", "[fd00::1]:5000", "[fd00:ec2::253]:80",
        "[fec0::1]:5000", "[::ffff:10.0.0.1]:5000", "[64:ff9b::a00:1]:5000", "[100::1]:5000"}) {
    INFO(text);
    CHECK(may_probe(addr(text)));
    CHECK(probe_refusal(addr(text)) == ProbeRefusal::None);
  }
}

TEST_CASE("Probe filter: the IP verdict ignores the port, reasons are one word", "[ice][filter]") {
  CHECK(ip_refusal(addr("10.0.0.1:0")) == ProbeRefusal::None);
  CHECK(probe_refusal(addr("10.0.0.1:0")) == ProbeRefusal::PortZero);
  CHECK(ip_refusal(addr("127.0.0.1:0")) == ProbeRefusal::Loopback);
  for (size_t i = 0; i < kProbeRefusalKinds; ++i) {
    const std::string word = to_string(static_cast<ProbeRefusal>(i));
    CHECK_FALSE(word.empty());
    CHECK(word.find(' ') == std::string::npos);
  }
}

TEST_CASE("Host candidates never offer an address the probe filter refuses", "[ice][filter]") {
  const std::vector<Address> in = {addr("169.254.169.254:0"), addr("100.100.100.200:0"),
                                   addr("168.63.129.16:0"),   addr("[fd00:ec2::254]:0"),
                                   addr("[fd20:ce::254]:0"),  addr("[64:ff9b::7f00:1]:0"),
                                   addr("10.0.0.5:0")};
  const auto out = host_candidates(in, 4433);
  for (const auto& c : out)
    CHECK(may_probe(c.address));
  CHECK(addresses_of(out) == std::vector<std::string>{"10.0.0.5:4433"});
  // A socket on port 0 (not bound yet) has nothing to offer.
  CHECK(host_candidates(std::vector<Address>{addr("10.0.0.5:0")}, 0).empty());
}
