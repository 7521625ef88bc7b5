// nat::NatDiscovery against the intermediate's real STUN server (stun::BindingServer), through a
// simulated NAT of each RFC 4787 kind: mapping, allocation, filtering and hairpinning.
#include <catch2/catch.hpp>

#include "nat/nat_discovery.hpp"
#include "stun/binding_server.hpp"

#include <map>
#include <random>

using namespace ztna;
using nat::Allocation;
using nat::Filtering;
using nat::Mapping;
using nat::NatDiscovery;
using nat::Tristate;

namespace {

constexpr uint64_t kMs = 1'000'000;

Address addr(const std::string& s) {
  return *Address::parse(s);
}

const Address kLocal = addr("10.0.0.2:5000");
const Address kWan = addr("198.51.100.1:0");
const Address kPrimary = addr("203.0.113.10:3478");
const Address kAltIp = addr("203.0.113.11:3478");

// A NAT in front of kLocal. One mapping per key: the destination's address (ADM), address and
// port (APDM, random or sequential ports), or nothing (EIM).
struct SimNat {
  std::string mapping = "eim"; // eim, adm, apdm, seq
  std::string filtering = "apdf";
  bool preserve = true;
  bool hairpin = true;
  std::mt19937 rng{7};
  uint16_t next_seq = 30000;
  std::map<std::string, uint16_t> ports;              // key -> external port
  std::map<uint16_t, std::vector<Address>> contacted; // external port -> remotes sent to

  std::string key(const Address& to) const {
    if (mapping == "eim") return "";
    if (mapping == "adm") return to.ip_string();
    return to.to_string();
  }
  Address out(const Address& to) {
    auto [it, fresh] = ports.try_emplace(key(to));
    if (fresh) {
      if (mapping == "seq")
        it->second = next_seq++;
      else if (mapping == "eim" && preserve)
        it->second = kLocal.port();
      else
        it->second = static_cast<uint16_t>(20000 + rng() % 40000);
    }
    contacted[it->second].push_back(to);
    Address a = kWan;
    a.set_port(it->second);
    return a;
  }
  // May a packet from `from` to our external port get in?
  bool in(const Address& from, uint16_t port) const {
    auto it = contacted.find(port);
    if (it == contacted.end()) return false;
    for (const auto& r : it->second) {
      if (filtering == "eif") return true;
      if (filtering == "adf" && r.ip_bytes() == from.ip_bytes()) return true;
      if (r == from) return true;
    }
    return false;
  }
};

struct Lab {
  SimNat nat;
  std::vector<stun::BindingServer> servers;
  std::vector<Address> locals{kLocal};
  uint64_t now = 1'000 * kMs;
  size_t sent = 0;

  explicit Lab(bool rfc5780 = true) { servers.emplace_back(config(kPrimary, rfc5780)); }
  static stun::BindingServer::Config config(const Address& primary, bool rfc5780) {
    stun::BindingServer::Config c;
    c.primary = primary;
    if (rfc5780) {
      c.alternate_port = 3479;
      c.alternate_address = kAltIp;
    }
    return c;
  }
  std::optional<std::pair<stun::BindingServer*, stun::Socket>> socket_of(const Address& to) {
    for (auto& server : servers)
      for (auto s : stun::kAllSockets)
        if (server.has(s) && server.address(s) == to) return std::pair{&server, s};
    return std::nullopt;
  }

  // Runs discovery to the end with a 1 ms one-way delay on every hop.
  nat::NatReport run(std::vector<Address> servers = {kPrimary}) {
    nat::DiscoveryConfig c;
    c.servers = std::move(servers);
    c.local = kLocal;
    c.local_addresses = locals;
    c.random = [n = uint8_t{1}](std::span<uint8_t> out) mutable {
      for (auto& b : out)
        b = n++;
    };
    NatDiscovery d(c, now);
    for (int guard = 0; !d.done(); ++guard) {
      REQUIRE(guard < 100'000);
      while (auto o = d.poll(now)) {
        sent++;
        const Address ext = nat.out(o->to);
        now += kMs;
        if (o->to == ext || o->to.ip_bytes() == kWan.ip_bytes()) {
          // To our own external address: the hairpin (Linux-style: the NAT translates it back
          // in, whatever its filtering).
          if (nat.hairpin && nat.contacted.count(o->to.port()))
            d.on_datagram(ext, o->datagram, now);
          continue;
        }
        auto s = socket_of(o->to);
        if (!s) continue;
        auto reply = s->first->on_datagram(now, s->second, ext, o->datagram);
        if (!reply) continue;
        const Address from = s->first->address(reply->via);
        now += kMs;
        if (nat.in(from, reply->to.port())) CHECK(d.on_datagram(from, reply->datagram, now));
      }
      const auto t = d.next_timeout();
      if (t == NatDiscovery::kNever) break;
      now = std::max(now, t);
    }
    REQUIRE(d.done());
    return d.report();
  }
};

} // namespace

TEST_CASE("NAT discovery: each mapping and filtering behaviour is recognised", "[nat]") {
  struct Case {
    const char* mapping;
    const char* filtering;
    Mapping want_mapping;
    Filtering want_filtering;
  };
  const Case cases[] = {
      {"eim", "eif", Mapping::EndpointIndependent, Filtering::EndpointIndependent},
      {"eim", "adf", Mapping::EndpointIndependent, Filtering::AddressDependent},
      {"eim", "apdf", Mapping::EndpointIndependent, Filtering::AddressAndPortDependent},
      {"adm", "apdf", Mapping::AddressDependent, Filtering::AddressAndPortDependent},
      {"apdm", "apdf", Mapping::AddressAndPortDependent, Filtering::AddressAndPortDependent},
      {"apdm", "eif", Mapping::AddressAndPortDependent, Filtering::EndpointIndependent},
  };
  for (const auto& c : cases) {
    INFO(c.mapping << " / " << c.filtering);
    Lab lab;
    lab.nat.mapping = c.mapping;
    lab.nat.filtering = c.filtering;
    const auto r = lab.run();
    CHECK(r.rfc5780);
    CHECK(r.mapping == c.want_mapping);
    CHECK(r.filtering == c.want_filtering);
    REQUIRE(r.reflexive);
    CHECK(r.reflexive->ip_bytes() == kWan.ip_bytes());
    REQUIRE(r.servers.size() == 1);
    CHECK(r.servers[0].rtt);
    CHECK(r.hairpin == Tristate::Yes);
    CHECK(r.hard() == (c.want_mapping != Mapping::EndpointIndependent));
  }
}

TEST_CASE("NAT discovery: port preservation and the allocation pattern", "[nat]") {
  SECTION("endpoint-independent, port kept") {
    Lab lab;
    const auto r = lab.run();
    CHECK(r.port_preserved == Tristate::Yes);
    CHECK(r.allocation == Allocation::Preserving);
    CHECK(r.summary() == "endpoint-independent mapping (port preserved), "
                         "address-and-port-dependent filtering, hairpinning yes");
  }
  SECTION("a sequential allocator shows its step, and is not hard") {
    Lab lab;
    lab.nat.mapping = "seq";
    const auto r = lab.run();
    CHECK(r.mapping == Mapping::AddressAndPortDependent);
    CHECK(r.allocation == Allocation::Sequential);
    CHECK(r.port_step == 1);
    CHECK(r.port_preserved == Tristate::No);
    CHECK(r.mapping_samples.size() == 3);
    CHECK_FALSE(r.hard());
  }
  SECTION("random ports") {
    Lab lab;
    lab.nat.mapping = "apdm";
    const auto r = lab.run();
    CHECK(r.allocation == Allocation::Random);
    CHECK(r.hard());
  }
}

TEST_CASE("NAT discovery: hairpinning that does not work is reported", "[nat]") {
  Lab lab;
  lab.nat.hairpin = false;
  CHECK(lab.run().hairpin == Tristate::No);
}

TEST_CASE("NAT discovery: no NAT when the reflexive address is ours", "[nat]") {
  Lab lab;
  lab.nat.filtering = "adf";
  Address wan = kWan;
  wan.set_port(kLocal.port());
  lab.locals.push_back(wan); // a public host: its interface has the address the server sees
  const auto r = lab.run();
  CHECK(r.mapping == Mapping::None);
  CHECK(r.filtering == Filtering::AddressDependent); // a stateful firewall still filters
  CHECK(r.hairpin == Tristate::Unknown);             // nothing to hairpin through
  CHECK_FALSE(r.hard());
  CHECK(r.summary() == "no NAT, address-dependent filtering");
}

TEST_CASE("NAT discovery without RFC 5780: mapping from several servers, filtering unknown",
          "[nat]") {
  const Address second = addr("203.0.113.20:3478");
  SECTION("a single server: mapping unknown") {
    Lab lab(false);
    const auto r = lab.run();
    CHECK_FALSE(r.rfc5780);
    CHECK(r.mapping == Mapping::Unknown);
    CHECK(r.filtering == Filtering::Unknown);
    REQUIRE(r.reflexive);
  }
  for (const char* kind : {"eim", "apdm"}) {
    SECTION(std::string("two servers, ") + kind) {
      Lab lab(false);
      lab.nat.mapping = kind;
      lab.nat.filtering = "eif";
      lab.servers.emplace_back(Lab::config(second, false));
      const auto r = lab.run({kPrimary, second});
      CHECK(r.mapping ==
            (std::string(kind) == "eim" ? Mapping::EndpointIndependent : Mapping::Dependent));
      CHECK(r.filtering == Filtering::Unknown);
      CHECK(r.servers.size() == 2);
      CHECK(r.servers[1].mapped);
      CHECK(r.servers[1].rtt);
    }
  }
}

TEST_CASE("NAT discovery: no answer at all ends within the retransmission schedule", "[nat]") {
  nat::DiscoveryConfig c;
  c.servers = {kPrimary};
  c.local = kLocal;
  c.random = [](std::span<uint8_t> out) {
    for (auto& b : out)
      b = 9;
  };
  const uint64_t t0 = 5'000 * kMs;
  NatDiscovery d(c, t0);
  uint64_t now = t0;
  int sent = 0;
  for (;;) {
    while (d.poll(now))
      sent++;
    if (d.done()) break;
    now = d.next_timeout();
    REQUIRE(now != NatDiscovery::kNever);
  }
  CHECK(sent == 3);
  // 200 + 400 + 800 ms.
  CHECK(now - t0 == 1'400 * kMs);
  CHECK(d.report().mapping == Mapping::Unknown);
  CHECK(d.report().summary() == "unknown (no STUN answer)");
}

TEST_CASE("NAT discovery ignores what is not its own", "[nat]") {
  nat::DiscoveryConfig c;
  c.servers = {kPrimary};
  c.local = kLocal;
  c.random = [](std::span<uint8_t> out) {
    for (auto& b : out)
      b = 3;
  };
  NatDiscovery d(c, 0);
  REQUIRE(d.poll(0));
  const uint8_t junk[] = {0, 1, 0, 0, 0x21, 0x12, 0xA4, 0x42, 1,  2,
                          3, 4, 5, 6, 7,    8,    9,    10,   11, 12};
  CHECK_FALSE(d.on_datagram(kPrimary, junk, 1));
  CHECK_FALSE(d.on_datagram(kPrimary, std::span<const uint8_t>(), 1));
  CHECK_FALSE(d.done());
}
