// portmap::PortMapping: protocol order, retransmissions, renewal, restarts, failure and back-off,
// deletion. Explicit time, a gateway simulated from the requests; no sockets, no sleeps.
#include <catch2/catch.hpp>

#include "portmap/port_mapping.hpp"

#include <cstring>
#include <stdexcept>

using namespace ztna::portmap;
using ztna::Address;

namespace {

constexpr Timestamp kMs = 1'000'000;
constexpr Timestamp kS = 1'000'000'000;
constexpr uint16_t kPort = 40000;

Address addr(const char* text) {
  auto a = Address::parse(text);
  REQUIRE(a);
  return *a;
}

Config make_config(std::vector<Protocol> protocols = default_protocols()) {
  Config c;
  c.protocols = std::move(protocols);
  c.internal_port = kPort;
  c.gateway = *Address::parse("10.1.0.1:5351");
  c.client = *Address::parse("10.1.0.10:0");
  c.lifetime = std::chrono::seconds(7200);
  // Deterministic: 0, 1, 2... so the nonce is 00..0b and the back-off's random is fixed.
  c.random = [n = 0](std::span<uint8_t> out) mutable {
    for (auto& b : out)
      b = static_cast<uint8_t>(n++);
  };
  return c;
}

template <class T> std::vector<T> all(const std::vector<Action>& actions) {
  std::vector<T> out;
  for (const auto& a : actions)
    if (auto* t = std::get_if<T>(&a)) out.push_back(*t);
  return out;
}

template <class T> T one(const std::vector<Action>& actions) {
  auto v = all<T>(actions);
  REQUIRE(v.size() == 1);
  return v[0];
}

// A PCP request as the gateway reads it (RFC 6887 §7.1, §11.1).
struct Request {
  uint8_t opcode = 0;
  uint32_t lifetime = 0;
  pcp::Nonce nonce{};
  uint16_t internal_port = 0;
  uint16_t external_port = 0;
  pcp::Ip16 external_address{};
};

uint32_t be32(const std::vector<uint8_t>& d, size_t at) {
  return (uint32_t{d[at]} << 24) | (uint32_t{d[at + 1]} << 16) | (uint32_t{d[at + 2]} << 8) |
         d[at + 3];
}

Request parse(const std::vector<uint8_t>& d) {
  REQUIRE(d.size() >= 24);
  REQUIRE(d[0] == 2);
  Request r;
  r.opcode = d[1];
  r.lifetime = be32(d, 4);
  if (r.opcode == 1) {
    REQUIRE(d.size() == 60);
    std::memcpy(r.nonce.data(), &d[24], 12);
    CHECK(d[36] == 17);
    r.internal_port = static_cast<uint16_t>((d[40] << 8) | d[41]);
    r.external_port = static_cast<uint16_t>((d[42] << 8) | d[43]);
    std::memcpy(r.external_address.data(), &d[44], 16);
  }
  return r;
}

std::vector<uint8_t> map_answer(const Request& q, const Address& external, uint32_t lifetime,
                                uint32_t epoch, uint8_t result = 0) {
  pcp::Response r;
  r.opcode = 1;
  r.result = result;
  r.lifetime = lifetime;
  r.epoch = epoch;
  r.map = pcp::MapData{q.nonce, 17, q.internal_port, external.port(), pcp::ip16_of(external)};
  return pcp::encode_response(r);
}

std::vector<uint8_t> announce_answer(uint32_t epoch) {
  pcp::Response r;
  r.opcode = 0;
  r.epoch = epoch;
  return pcp::encode_response(r);
}

struct Run {
  PortMapping m;
  Timestamp now = 1000 * kS;
  explicit Run(Config c) : m(std::move(c)) {}
  std::vector<Action> start() {
    m.start(now);
    return m.take_actions();
  }
  // Jumps to the next timer and runs it.
  std::vector<Action> fire() {
    REQUIRE(m.next_timeout() != kNever);
    REQUIRE(m.next_timeout() >= now);
    now = m.next_timeout();
    m.handle_timeout(now);
    return m.take_actions();
  }
  std::vector<Action> at(Timestamp t) {
    now = t;
    m.handle_timeout(now);
    return m.take_actions();
  }
  std::vector<Action> pcp(const std::vector<uint8_t>& d) {
    m.on_pcp(now, d);
    return m.take_actions();
  }
  std::vector<Action> natpmp(const NatPmpAnswer& a) {
    m.on_natpmp(now, a);
    return m.take_actions();
  }
  std::vector<Action> upnp(const UpnpAnswer& a) {
    m.on_upnp(now, a);
    return m.take_actions();
  }
  // Up to a mapping via PCP: returns the MAP request.
  Request map_pcp(const Address& external, uint32_t lifetime = 7200, uint32_t epoch = 100) {
    auto q = parse(one<SendPcp>(start()).datagram);
    auto out = pcp(map_answer(q, external, lifetime, epoch));
    one<Obtained>(out);
    REQUIRE(m.state() == PortMapping::State::Mapped);
    return q;
  }
};

NatPmpAnswer natpmp_address(uint32_t ip, uint32_t epoch) {
  NatPmpAnswer a;
  a.public_address = true;
  a.public_ip = ip;
  a.epoch = epoch;
  return a;
}

NatPmpAnswer natpmp_map(uint16_t external, uint32_t lifetime, uint32_t epoch) {
  NatPmpAnswer a;
  a.internal_port = kPort;
  a.external_port = external;
  a.lifetime = lifetime;
  a.epoch = epoch;
  return a;
}

} // namespace

TEST_CASE("PCP first: 250 ms doubling, four requests, given up after 3.75 s for NAT-PMP",
          "[portmap]") {
  Run r(make_config());
  Timestamp t0 = r.now;
  auto first = parse(one<SendPcp>(r.start()).datagram);
  CHECK(first.opcode == 1);
  CHECK(first.lifetime == 7200);
  CHECK(first.internal_port == kPort);
  CHECK(first.external_port == kPort);             // the internal port suggested
  CHECK(pcp::v4_of(first.external_address) == 0u); // any IPv4 address
  CHECK(r.m.state() == PortMapping::State::Trying);
  for (Timestamp at : {250 * kMs, 750 * kMs, 1750 * kMs}) {
    auto again = r.fire();
    CHECK(r.now - t0 == at);
    CHECK(parse(one<SendPcp>(again).datagram).nonce == first.nonce); // the same request
  }
  auto next = r.fire();
  CHECK(r.now - t0 == 3750 * kMs);
  CHECK(all<SendPcp>(next).empty());
  auto nat = one<SendNatPmp>(next);
  CHECK(nat.request.public_address); // NAT-PMP starts with the external address (RFC 6886 §3.2)
  REQUIRE(r.m.round_failures().size() == 1);
  CHECK(r.m.round_failures()[0].first == Protocol::Pcp);
  CHECK(r.m.round_failures()[0].second == "no answer from 10.1.0.1:5351 (4 requests in 3750 ms)");
  CHECK(r.m.counters().requests == 5);
}

TEST_CASE("PCP mapping, renewal at half the lifetime with the same nonce", "[portmap]") {
  Run r(make_config());
  Timestamp t0 = r.now;
  auto q = parse(one<SendPcp>(r.start()).datagram);
  r.now += 3 * kMs;
  auto got = one<Obtained>(r.pcp(map_answer(q, addr("203.0.113.101:40123"), 3600, 500)));
  CHECK_FALSE(got.changed);
  CHECK(got.mapping.protocol == Protocol::Pcp);
  CHECK(got.mapping.external == addr("203.0.113.101:40123"));
  CHECK(got.mapping.internal_port == kPort);
  CHECK(got.mapping.lifetime_s == 3600); // the server's, shorter than asked
  CHECK(got.mapping.expires_at == t0 + 3 * kMs + 3600 * kS);
  CHECK(r.m.renew_at() == t0 + 3 * kMs + 1800 * kS);

  // Nothing until the renewal (the epoch check is on its own timer).
  r.m.handle_timeout(r.now + 1799 * kS);
  auto actions = r.m.take_actions();
  for (const auto& a : actions) // at most epoch checks (ANNOUNCE)
    if (auto* s = std::get_if<SendPcp>(&a)) CHECK(parse(s->datagram).opcode == 0);
  r.m.on_pcp(r.now + 1799 * kS, announce_answer(500 + 1799));
  r.m.take_actions();

  auto renew = r.at(t0 + 3 * kMs + 1800 * kS);
  auto rq = parse(one<SendPcp>(renew).datagram);
  CHECK(rq.opcode == 1);
  CHECK(rq.nonce == q.nonce);       // RFC 6887 §11.2.1
  CHECK(rq.external_port == 40123); // what we have
  CHECK(pcp::v4_of(rq.external_address) == 0xcb007165u);
  auto renewed = one<Renewed>(r.pcp(map_answer(rq, addr("203.0.113.101:40123"), 3600, 500 + 1800)));
  CHECK(renewed.mapping.renewed_at == r.now);
  CHECK(renewed.mapping.obtained_at == t0 + 3 * kMs);
  CHECK(r.m.counters().renewals == 1);
  CHECK(r.m.counters().gateway_restarts == 0);
}

TEST_CASE("A NAT-PMP-only gateway: PCP's unsupported version moves on at once", "[portmap]") {
  Run r(make_config());
  one<SendPcp>(r.start());
  r.now += 2 * kMs;
  pcp::Response nat;
  nat.version = 0;
  nat.opcode = 1;
  nat.result = 1;
  nat.epoch = 77;
  auto out = r.pcp(pcp::encode_response(nat));
  CHECK(one<SendNatPmp>(out).request.public_address);
  CHECK(r.m.round_failures()[0].second.find("NAT-PMP only") != std::string::npos);

  auto map = one<SendNatPmp>(r.natpmp(natpmp_address(0xcb007165, 77)));
  CHECK_FALSE(map.request.public_address);
  CHECK(map.request.internal_port == kPort);
  CHECK(map.request.external_port == kPort);
  CHECK(map.request.lifetime == 7200);
  auto got = one<Obtained>(r.natpmp(natpmp_map(40500, 7200, 77)));
  CHECK(got.mapping.protocol == Protocol::NatPmp);
  CHECK(got.mapping.external == addr("203.0.113.101:40500"));
}

TEST_CASE("NAT-PMP: renewal asks for the mapping only; stop deletes it (RFC 6886 §3.4)",
          "[portmap]") {
  Run r(make_config({Protocol::NatPmp}));
  CHECK(one<SendNatPmp>(r.start()).request.public_address); // PCP is never tried
  one<SendNatPmp>(r.natpmp(natpmp_address(0xcb007165, 10)));
  one<Obtained>(r.natpmp(natpmp_map(40000, 120, 10)));
  Timestamp mapped_at = r.now;
  CHECK(r.m.renew_at() == mapped_at + 60 * kS);
  auto renew = one<SendNatPmp>(r.at(mapped_at + 60 * kS));
  CHECK_FALSE(renew.request.public_address);
  CHECK(renew.request.external_port == 40000);
  one<Renewed>(r.natpmp(natpmp_map(40000, 120, 70)));

  r.m.stop(r.now);
  auto del = one<SendNatPmp>(r.m.take_actions());
  CHECK(del.request.lifetime == 0);
  CHECK(del.request.external_port == 0);
  CHECK(del.request.internal_port == kPort);
  CHECK(r.m.state() == PortMapping::State::Stopping);
  auto stopped = one<Stopped>(r.natpmp(natpmp_map(0, 0, 71)));
  CHECK(stopped.deleted);
  REQUIRE(stopped.mapping);
  CHECK(stopped.mapping->external == addr("203.0.113.101:40000"));
  CHECK(r.m.state() == PortMapping::State::Stopped);
  CHECK(r.m.next_timeout() == kNever);
  CHECK(r.m.counters().deletions == 1);
}

TEST_CASE("Port 5351 refused: NAT-PMP is skipped, UPnP-IGD is asked", "[portmap]") {
  Run r(make_config());
  one<SendPcp>(r.start());
  r.m.on_unreachable(r.now, Protocol::Pcp);
  auto out = r.m.take_actions();
  CHECK(all<SendNatPmp>(out).empty());
  auto job = one<RunUpnp>(out).job;
  CHECK_FALSE(job.remove);
  CHECK(job.internal_port == kPort);
  CHECK(job.external_port == kPort);
  CHECK(job.lifetime == 7200);
  REQUIRE(r.m.round_failures().size() == 2);
  CHECK(r.m.round_failures()[0].second == "10.1.0.1 refused port 5351 (ICMP port unreachable)");
  CHECK(r.m.round_failures()[1].second == "not tried: 10.1.0.1 refused port 5351");

  UpnpAnswer a;
  a.id = job.id;
  a.ok = true;
  a.external = addr("203.0.113.101:40000");
  a.lifetime = 7200;
  auto got = one<Obtained>(r.upnp(a));
  CHECK(got.mapping.protocol == Protocol::Upnp);
  CHECK(r.m.renew_at() == r.now + 3600 * kS);
  // UPnP-IGD has no epoch to check: the next timer is the renewal.
  CHECK(r.m.next_timeout() == r.now + 3600 * kS);
}

TEST_CASE("Nothing answers: Failed naming every protocol, a new round after the back-off",
          "[portmap]") {
  auto c = make_config();
  c.upnp_timeout = std::chrono::milliseconds(5000);
  Run r(std::move(c));
  Timestamp t0 = r.now;
  r.start();
  std::vector<Action> out;
  uint64_t job = 0;
  while (all<Failed>(out).empty()) {
    out = r.fire();
    for (auto& j : all<RunUpnp>(out))
      job = j.job.id;
  }
  // PCP 3.75 s, NAT-PMP 3.75 s (its first request goes unanswered too), UPnP-IGD 5 s.
  CHECK(r.now - t0 == 12500 * kMs);
  auto failed = one<Failed>(out);
  CHECK(
      failed.reason ==
      "no gateway gave a port mapping: PCP: no answer from 10.1.0.1:5351 (4 requests in 3750 ms); "
      "NAT-PMP: no answer from 10.1.0.1:5351 (4 requests in 3750 ms); "
      "UPnP-IGD: no answer within 5000 ms");
  CHECK(r.m.state() == PortMapping::State::Waiting);
  // 60 s with equal jitter: 30 to 60 s.
  CHECK(failed.retry_at >= r.now + 30 * kS);
  CHECK(failed.retry_at <= r.now + 60 * kS);
  CHECK(r.m.next_timeout() == failed.retry_at);
  CHECK(r.m.counters().rounds_failed == 1);

  // The worker's late success for the job given up on is deleted.
  UpnpAnswer late;
  late.id = job;
  late.ok = true;
  late.external = addr("203.0.113.101:40000");
  auto cleanup = one<RunUpnp>(r.upnp(late));
  CHECK(cleanup.job.remove);

  auto again = r.fire();
  CHECK(r.now == failed.retry_at);
  one<SendPcp>(again);
  CHECK(r.m.state() == PortMapping::State::Trying);
  CHECK(r.m.round_failures().empty());

  // Round two fails too: the back-off doubles (60 to 120 s).
  out.clear();
  while (all<Failed>(out).empty())
    out = r.fire();
  auto second = one<Failed>(out);
  CHECK(second.retry_at >= r.now + 60 * kS);
  CHECK(second.retry_at <= r.now + 120 * kS);
}

TEST_CASE("A gateway's error lifetime defers the next round (RFC 6887 §7.2)", "[portmap]") {
  Run r(make_config({Protocol::Pcp}));
  auto q = parse(one<SendPcp>(r.start()).datagram);
  auto out = r.pcp(map_answer(q, addr("0.0.0.0:0"), 900, 5, 8)); // NO_RESOURCES for 900 s
  auto failed = one<Failed>(out);
  CHECK(failed.reason == "no gateway gave a port mapping: PCP: the gateway refused: NO_RESOURCES "
                         "(result 8)");
  CHECK(failed.retry_at == r.now + 900 * kS);
}

TEST_CASE("Without a default gateway only UPnP-IGD is tried", "[portmap]") {
  auto c = make_config();
  c.gateway.reset();
  Run r(std::move(c));
  auto out = r.start();
  CHECK(all<SendPcp>(out).empty());
  CHECK(all<SendNatPmp>(out).empty());
  auto job = one<RunUpnp>(out).job;
  UpnpAnswer a;
  a.id = job.id;
  a.error = "no UPnP device answered SSDP discovery within 2000 ms";
  auto failed = one<Failed>(r.upnp(a));
  CHECK(failed.reason ==
        "no gateway gave a port mapping: PCP: not tried: no default gateway known; NAT-PMP: not "
        "tried: no default gateway known; UPnP-IGD: no UPnP device answered SSDP discovery within "
        "2000 ms");
}

TEST_CASE("Answers that are not ours are ignored", "[portmap]") {
  Run r(make_config());
  auto q = parse(one<SendPcp>(r.start()).datagram);
  auto wrong_nonce = q;
  wrong_nonce.nonce[0] ^= 1;
  CHECK(r.pcp(map_answer(wrong_nonce, addr("203.0.113.101:40000"), 7200, 1)).empty());
  auto wrong_port = q;
  wrong_port.internal_port = 1234;
  CHECK(r.pcp(map_answer(wrong_port, addr("203.0.113.101:40000"), 7200, 1)).empty());
  CHECK(r.pcp({1, 2, 3}).empty());
  CHECK(r.pcp(announce_answer(5)).empty()); // nothing mapped: no epoch to compare
  CHECK(r.m.counters().ignored == 3);
  CHECK(r.m.counters().malformed == 1);
  // A NAT-PMP or UPnP-IGD answer while PCP is asked.
  CHECK(r.natpmp(natpmp_map(40000, 7200, 1)).empty());
  UpnpAnswer a;
  a.id = 99;
  a.ok = true;
  CHECK(r.upnp(a).empty()); // a job never given: no clean-up either
  CHECK(r.m.state() == PortMapping::State::Trying);
  // A success with lifetime 0 is no mapping.
  auto out = r.pcp(map_answer(q, addr("203.0.113.101:40000"), 0, 1));
  CHECK(one<SendNatPmp>(out).request.public_address);
  CHECK(r.m.round_failures()[0].second == "the gateway refused: a lifetime of 0 s");
}

TEST_CASE("An unanswered renewal is retried halfway to the expiry; then the mapping is lost",
          "[portmap]") {
  auto c = make_config({Protocol::Pcp});
  c.epoch_check = std::chrono::seconds(0);
  Run r(std::move(c));
  r.map_pcp(addr("203.0.113.101:40000"), 100);
  Timestamp mapped_at = r.now;
  Timestamp expires = mapped_at + 100 * kS;
  one<SendPcp>(r.fire()); // the renewal at 50 s
  CHECK(r.now == mapped_at + 50 * kS);
  for (int i = 0; i < 3; ++i)
    one<SendPcp>(r.fire());
  CHECK(r.fire().empty()); // given up at 53.75 s: the mapping stays
  CHECK(r.now == mapped_at + 53750 * kMs);
  CHECK(r.m.state() == PortMapping::State::Mapped);
  CHECK(r.m.counters().renewals_missed == 1);
  CHECK(r.m.renew_at() == r.now + (expires - r.now) / 2);
  // Each try halves the time left; the last one is cut short by the expiry.
  std::vector<Action> out;
  while (all<Lost>(out).empty()) {
    CHECK(r.m.state() == PortMapping::State::Mapped);
    out = r.fire();
  }
  CHECK(r.now == expires);
  auto lost = one<Lost>(out);
  CHECK(lost.mapping.external == addr("203.0.113.101:40000"));
  CHECK(lost.reason.find("expired") != std::string::npos);
  // A new round at once, suggesting the port we had (RFC 6887 §11.2.1).
  auto q = parse(one<SendPcp>(out).datagram);
  CHECK(q.external_port == 40000);
  CHECK(r.m.state() == PortMapping::State::Trying);
  CHECK(r.m.counters().losses == 1);
}

TEST_CASE("A refused renewal loses the mapping at once", "[portmap]") {
  Run r(make_config());
  r.map_pcp(addr("203.0.113.101:40000"), 100);
  auto rq = parse(one<SendPcp>(r.at(r.m.renew_at())).datagram);
  auto out = r.pcp(map_answer(rq, addr("203.0.113.101:40000"), 600, 150, 2)); // NOT_AUTHORIZED
  auto lost = one<Lost>(out);
  CHECK(lost.reason == "the gateway refused the renewal: NOT_AUTHORIZED (result 2)");
  CHECK(r.m.state() == PortMapping::State::Trying);
  one<SendPcp>(out); // the new round
}

TEST_CASE("A gateway restart: the epoch went back, the mapping is made again", "[portmap]") {
  Run r(make_config());
  auto q = r.map_pcp(addr("203.0.113.101:40000"), 7200, 1000);
  Timestamp mapped_at = r.now;

  SECTION("the periodic ANNOUNCE finds it") {
    auto check = r.fire();
    CHECK(r.now == mapped_at + 60 * kS);
    CHECK(parse(one<SendPcp>(check).datagram).opcode == 0);
    CHECK(r.pcp(announce_answer(1060)).empty()); // on time: nothing
    CHECK(r.m.next_timeout() == r.now + 60 * kS);
    one<SendPcp>(r.fire());
    auto out = r.pcp(announce_answer(3)); // restarted 3 s ago
    auto restart = one<GatewayRestarted>(out);
    CHECK(restart.protocol == Protocol::Pcp);
    CHECK(restart.epoch_before == 1060);
    CHECK(restart.epoch_now == 3);
    auto rq = parse(one<SendPcp>(out).datagram); // MAP at once
    CHECK(rq.opcode == 1);
    CHECK(rq.nonce == q.nonce);
    CHECK(rq.external_port == 40000);
    // The restarted gateway gives another port: the candidate changes.
    auto got = one<Obtained>(r.pcp(map_answer(rq, addr("203.0.113.101:41000"), 7200, 3)));
    CHECK(got.changed);
    CHECK(got.mapping.external == addr("203.0.113.101:41000"));
    CHECK(r.m.counters().gateway_restarts == 1);
    CHECK(r.m.counters().changes == 1);
  }
  SECTION("an unsolicited ANNOUNCE (RFC 6887 §14.1.3)") {
    r.now += 10 * kS;
    auto out = r.pcp(announce_answer(0));
    one<GatewayRestarted>(out);
    CHECK(parse(one<SendPcp>(out).datagram).opcode == 1);
  }
  SECTION("the renewal's own answer shows it: counted, nothing more to send") {
    auto rq = parse(one<SendPcp>(r.at(r.m.renew_at())).datagram);
    auto out = r.pcp(map_answer(rq, addr("203.0.113.101:40000"), 7200, 20));
    one<GatewayRestarted>(out);
    one<Renewed>(out);
    CHECK(all<SendPcp>(out).empty());
  }
  SECTION("an epoch far ahead of our clock is invalid too") {
    one<SendPcp>(r.fire());
    auto out = r.pcp(announce_answer(1000 + 60 + 3600));
    one<GatewayRestarted>(out);
  }
  SECTION("up to a second backwards is reordering, not a restart (RFC 6887 §8.5)") {
    CHECK(r.pcp(announce_answer(999)).empty());
    CHECK(r.m.counters().gateway_restarts == 0);
    CHECK(one<GatewayRestarted>(r.pcp(announce_answer(997))).epoch_before == 999);
  }
}

TEST_CASE("NAT-PMP's epoch check notices a restart and a new external address", "[portmap]") {
  Run r(make_config({Protocol::NatPmp}));
  r.start();
  r.natpmp(natpmp_address(0xcb007165, 500));
  one<Obtained>(r.natpmp(natpmp_map(40000, 7200, 500)));
  auto check = one<SendNatPmp>(r.fire());
  CHECK(check.request.public_address);
  auto moved = one<Obtained>(r.natpmp(natpmp_address(0xcb007166, 560)));
  CHECK(moved.changed);
  CHECK(moved.mapping.external == addr("203.0.113.102:40000"));
  one<SendNatPmp>(r.fire());
  auto out = r.natpmp(natpmp_address(0xcb007166, 2));
  one<GatewayRestarted>(out);
  auto again = one<SendNatPmp>(out);
  CHECK_FALSE(again.request.public_address);
  CHECK(again.request.external_port == 40000);
}

TEST_CASE("stop(): the deletion", "[portmap]") {
  SECTION("PCP: lifetime 0, same nonce; confirmed") {
    Run r(make_config());
    auto q = r.map_pcp(addr("203.0.113.101:40000"));
    r.m.stop(r.now);
    auto dq = parse(one<SendPcp>(r.m.take_actions()).datagram);
    CHECK(dq.lifetime == 0);
    CHECK(dq.nonce == q.nonce);
    CHECK(dq.internal_port == kPort);
    auto stopped = one<Stopped>(r.pcp(map_answer(dq, addr("203.0.113.101:40000"), 0, 110)));
    CHECK(stopped.deleted);
    CHECK(stopped.detail == "deleted");
  }
  SECTION("PCP: unanswered, three tries in 1.75 s") {
    Run r(make_config());
    r.map_pcp(addr("203.0.113.101:40000"));
    Timestamp t0 = r.now;
    r.m.stop(r.now);
    one<SendPcp>(r.m.take_actions());
    one<SendPcp>(r.fire());
    one<SendPcp>(r.fire());
    auto stopped = one<Stopped>(r.fire());
    CHECK(r.now - t0 == 1750 * kMs);
    CHECK_FALSE(stopped.deleted);
    CHECK(stopped.detail ==
          "the deletion got no answer from 10.1.0.1:5351 (3 requests in 1750 ms)");
    REQUIRE(stopped.mapping);
    CHECK(r.m.next_timeout() == kNever);
  }
  SECTION("while PCP is still asked: what it may have made is deleted") {
    Run r(make_config());
    auto q = parse(one<SendPcp>(r.start()).datagram);
    r.m.stop(r.now);
    auto dq = parse(one<SendPcp>(r.m.take_actions()).datagram);
    CHECK(dq.lifetime == 0);
    CHECK(dq.nonce == q.nonce);
    // The late answer to the MAP request itself is no deletion.
    CHECK(r.pcp(map_answer(q, addr("203.0.113.101:40000"), 7200, 5)).empty());
    CHECK(r.m.state() == PortMapping::State::Stopping);
    auto stopped = one<Stopped>(r.pcp(map_answer(dq, addr("203.0.113.101:40000"), 0, 5)));
    CHECK(stopped.deleted);
    CHECK_FALSE(stopped.mapping);
  }
  SECTION("while NAT-PMP asks for the address: nothing to delete") {
    Run r(make_config({Protocol::NatPmp}));
    r.start();
    r.m.stop(r.now);
    auto stopped = one<Stopped>(r.m.take_actions());
    CHECK_FALSE(stopped.deleted);
    CHECK(stopped.detail == "nothing was mapped");
  }
  SECTION("while a UPnP-IGD job runs: a delete job follows it") {
    Run r(make_config({Protocol::Upnp}));
    auto job = one<RunUpnp>(r.start()).job;
    r.m.stop(r.now);
    auto del = one<RunUpnp>(r.m.take_actions()).job;
    CHECK(del.remove);
    CHECK(del.id != job.id);
    UpnpAnswer late; // the map job answers first: ignored
    late.id = job.id;
    late.ok = true;
    late.external = addr("203.0.113.101:40000");
    CHECK(r.upnp(late).empty());
    UpnpAnswer done;
    done.id = del.id;
    done.ok = true;
    CHECK(one<Stopped>(r.upnp(done)).deleted);
  }
  SECTION("a UPnP-IGD deletion that does not come back in stop_timeout") {
    Run r(make_config({Protocol::Upnp}));
    auto job = one<RunUpnp>(r.start()).job;
    UpnpAnswer a;
    a.id = job.id;
    a.ok = true;
    a.external = addr("203.0.113.101:40000");
    a.lifetime = 7200;
    one<Obtained>(r.upnp(a));
    Timestamp t0 = r.now;
    r.m.stop(r.now);
    CHECK(one<RunUpnp>(r.m.take_actions()).job.remove);
    auto stopped = one<Stopped>(r.fire());
    CHECK(r.now - t0 == 3000 * kMs);
    CHECK_FALSE(stopped.deleted);
  }
  SECTION("from idle and from waiting, at once") {
    Run idle(make_config());
    idle.m.stop(idle.now);
    CHECK(one<Stopped>(idle.m.take_actions()).detail == "nothing was mapped");
    Run waiting(make_config({Protocol::Pcp}));
    auto q = parse(one<SendPcp>(waiting.start()).datagram);
    one<Failed>(waiting.pcp(map_answer(q, addr("0.0.0.0:0"), 60, 1, 2)));
    waiting.m.stop(waiting.now);
    one<Stopped>(waiting.m.take_actions());
    CHECK(waiting.m.next_timeout() == kNever);
    waiting.m.stop(waiting.now); // twice: nothing more
    CHECK(waiting.m.take_actions().empty());
  }
}

TEST_CASE("UPnP-IGD renewals: retried until the lease ends; a permanent lease is lost",
          "[portmap]") {
  Run r(make_config({Protocol::Upnp}));
  auto job = one<RunUpnp>(r.start()).job;
  UpnpAnswer a;
  a.id = job.id;
  a.ok = true;
  a.external = addr("203.0.113.101:40000");
  a.lifetime = 0; // IGDv1 permanent lease (error 725 on a timed one)
  auto got = one<Obtained>(r.upnp(a));
  CHECK(got.mapping.expires_at == kNever);
  CHECK(r.m.renew_at() == r.now + 3600 * kS); // half the lifetime asked for
  auto renew = one<RunUpnp>(r.fire()).job;
  CHECK(renew.external_port == 40000);
  UpnpAnswer failed;
  failed.id = renew.id;
  failed.error = "AddPortMapping 40000/UDP -> 10.1.0.10:40000 failed: -3";
  auto out = r.upnp(failed);
  CHECK(one<Lost>(out).reason == "the renewal failed and the lease has no expiry to wait for");
  one<RunUpnp>(out);
}

TEST_CASE("Configurations that cannot work are refused", "[portmap]") {
  auto c = make_config();
  c.random = nullptr;
  CHECK_THROWS_AS(PortMapping(c), std::invalid_argument);
  c = make_config();
  c.internal_port = 0;
  CHECK_THROWS_AS(PortMapping(c), std::invalid_argument);
  c = make_config({});
  CHECK_THROWS_AS(PortMapping(c), std::invalid_argument);
  c = make_config({Protocol::Pcp, Protocol::Upnp, Protocol::Pcp});
  CHECK_THROWS_AS(PortMapping(c), std::invalid_argument);
  c = make_config();
  c.lifetime = std::chrono::seconds(1);
  CHECK_THROWS_AS(PortMapping(c), std::invalid_argument);
  c = make_config();
  c.initial_rto = std::chrono::milliseconds(0);
  CHECK_THROWS_AS(PortMapping(c), std::invalid_argument);
  CHECK(parse_protocol("natpmp") == Protocol::NatPmp);
  CHECK_FALSE(parse_protocol("auto"));
}
