#include <catch2/catch.hpp>

#include "net/address.hpp"
#include "relay/relay_table.hpp"

using ztna::Address;
using ztna::RelayTable;

namespace {

Address addr(const char* text) {
  auto a = Address::parse(text);
  REQUIRE(a);
  return *a;
}

} // namespace

TEST_CASE("RelayTable routes a session in both directions", "[relay_table]") {
  RelayTable t;
  auto agent = addr("198.51.100.7:40000");
  auto connector = addr("[2001:db8::5]:5000");
  t.bind(1, agent, "agent/agent", connector, "connector/connector");
  CHECK(t.size() == 1);
  CHECK(t.peer_of(1, agent) == connector);
  CHECK(t.peer_of(1, connector) == agent);
}

TEST_CASE("RelayTable refuses third parties and unknown sessions", "[relay_table]") {
  RelayTable t;
  auto agent = addr("198.51.100.7:40000");
  auto connector = addr("203.0.113.9:5000");
  t.bind(1, agent, "agent/agent", connector, "connector/connector");

  CHECK_FALSE(t.peer_of(1, addr("192.0.2.66:40000")));
  // Same IP, other port: a different socket is a different party.
  CHECK_FALSE(t.peer_of(1, addr("198.51.100.7:40001")));
  CHECK_FALSE(t.peer_of(1, Address{}));
  // A known address cannot use a session it is not in.
  CHECK_FALSE(t.peer_of(2, agent));
  CHECK_FALSE(t.peer_of(0, connector));
}

TEST_CASE("RelayTable keeps sessions apart", "[relay_table]") {
  RelayTable t;
  auto a1 = addr("198.51.100.1:1000");
  auto a2 = addr("198.51.100.2:1000");
  auto c = addr("203.0.113.9:5000");
  t.bind(10, a1, "agent/a1", c, "connector/c");
  t.bind(20, a2, "agent/a2", c, "connector/c");
  CHECK(t.size() == 2);
  CHECK(t.peer_of(10, c) == a1);
  CHECK(t.peer_of(20, c) == a2);
  CHECK_FALSE(t.peer_of(10, a2));
  CHECK_FALSE(t.peer_of(20, a1));
}

TEST_CASE("RelayTable::unbind ends a session", "[relay_table]") {
  RelayTable t;
  auto agent = addr("198.51.100.7:40000");
  auto connector = addr("203.0.113.9:5000");
  t.bind(1, agent, "agent/agent", connector, "connector/connector");
  t.bind(2, agent, "agent/agent", connector, "connector/connector");
  t.unbind(1);
  CHECK(t.size() == 1);
  CHECK_FALSE(t.peer_of(1, agent));
  CHECK_FALSE(t.peer_of(1, connector));
  CHECK(t.peer_of(2, agent) == connector);
  t.unbind(1); // unknown: no effect
  t.unbind(99);
  CHECK(t.size() == 1);
}

TEST_CASE("RelayTable::bind again replaces a session's ends", "[relay_table]") {
  RelayTable t;
  auto old_agent = addr("198.51.100.7:40000");
  auto new_agent = addr("198.51.100.8:40000");
  auto connector = addr("203.0.113.9:5000");
  t.bind(1, old_agent, "agent/old_agent", connector, "connector/connector");
  t.bind(1, new_agent, "agent/new_agent", connector, "connector/connector");
  CHECK(t.size() == 1);
  CHECK_FALSE(t.peer_of(1, old_agent));
  CHECK(t.peer_of(1, connector) == new_agent);
}

TEST_CASE("RelayTable::rebind follows a NAT rebinding in every session", "[relay_table]") {
  RelayTable t;
  auto agent = addr("198.51.100.7:40000");
  auto rebound = addr("198.51.100.7:40999");
  auto c1 = addr("203.0.113.1:5000");
  auto c2 = addr("203.0.113.2:5000");
  auto other = addr("198.51.100.50:1234");
  t.bind(1, agent, "agent/agent", c1, "connector/c1");
  t.bind(2, agent, "agent/agent", c2, "connector/c2");
  t.bind(3, other, "agent/other", c1, "connector/c1");

  t.rebind(agent, rebound);
  CHECK_FALSE(t.peer_of(1, agent));
  CHECK_FALSE(t.peer_of(2, agent));
  CHECK(t.peer_of(1, rebound) == c1);
  CHECK(t.peer_of(2, rebound) == c2);
  CHECK(t.peer_of(1, c1) == rebound);
  CHECK(t.peer_of(2, c2) == rebound);
  // Sessions the rebound peer is not in are untouched.
  CHECK(t.peer_of(3, other) == c1);
  CHECK(t.peer_of(3, c1) == other);

  SECTION("a connector rebinds too") {
    auto c1_new = addr("203.0.113.1:6000");
    t.rebind(c1, c1_new);
    CHECK(t.peer_of(1, rebound) == c1_new);
    CHECK(t.peer_of(3, other) == c1_new);
    CHECK(t.peer_of(3, c1_new) == other);
    CHECK_FALSE(t.peer_of(3, c1));
  }
  SECTION("an unknown address changes nothing") {
    t.rebind(addr("192.0.2.1:1"), addr("192.0.2.2:2"));
    CHECK(t.peer_of(1, rebound) == c1);
    CHECK(t.peer_of(3, other) == c1);
    CHECK(t.size() == 3);
  }
}

TEST_CASE("RelayTable spends a session's quota in bytes, in both directions", "[relay_table]") {
  // 1000 bytes/s, 1500 saved up at most.
  RelayTable t(ztna::RelayQuota{1000, 1500}, {});
  auto agent = addr("198.51.100.7:40000");
  auto connector = addr("203.0.113.9:5000");
  t.bind(1, agent, "agent/a", connector, "connector/c");
  Address to;
  CHECK(t.route(1, agent, 1000, 0, to) == RelayTable::Verdict::Forward);
  CHECK(to == connector);
  CHECK(t.route(1, connector, 500, 0, to) == RelayTable::Verdict::Forward);
  CHECK(to == agent);
  CHECK(t.route(1, agent, 1, 0, to) == RelayTable::Verdict::SessionQuota);
  // Half a second refills 500 bytes.
  CHECK(t.route(1, agent, 500, 500'000'000, to) == RelayTable::Verdict::Forward);
  CHECK(t.route(1, agent, 1, 500'000'000, to) == RelayTable::Verdict::SessionQuota);
  // A third party is refused before any quota is looked at.
  CHECK(t.route(1, addr("192.0.2.1:1"), 1, 10'000'000'000, to) == RelayTable::Verdict::NotAnEnd);
  CHECK(t.route(7, agent, 1, 10'000'000'000, to) == RelayTable::Verdict::NotAnEnd);
}

TEST_CASE("RelayTable shares an identity's quota across its sessions", "[relay_table]") {
  RelayTable t({}, ztna::RelayQuota{1000, 1000});
  auto agent = addr("198.51.100.7:40000");
  auto c1 = addr("203.0.113.1:5000");
  auto c2 = addr("203.0.113.2:5000");
  t.bind(1, agent, "agent/a", c1, "connector/c1");
  t.bind(2, agent, "agent/a", c2, "connector/c2");
  Address to;
  CHECK(t.route(1, agent, 600, 0, to) == RelayTable::Verdict::Forward);
  CHECK(t.route(2, agent, 600, 0, to) == RelayTable::Verdict::IdentityQuota);
  // The connectors' own quotas are theirs.
  CHECK(t.route(2, c2, 1000, 0, to) == RelayTable::Verdict::Forward);
  CHECK(t.route(1, c1, 1000, 0, to) == RelayTable::Verdict::Forward);
  // Once the agent's sessions are gone, a new session starts with a full bucket.
  t.unbind(1);
  t.unbind(2);
  t.bind(3, agent, "agent/a", c1, "connector/c1");
  CHECK(t.route(3, agent, 1000, 0, to) == RelayTable::Verdict::Forward);
}
