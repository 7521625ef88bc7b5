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
  t.bind(1, agent, connector);
  CHECK(t.size() == 1);
  CHECK(t.route(1, agent) == connector);
  CHECK(t.route(1, connector) == agent);
}

TEST_CASE("RelayTable refuses third parties and unknown sessions", "[relay_table]") {
  RelayTable t;
  auto agent = addr("198.51.100.7:40000");
  auto connector = addr("203.0.113.9:5000");
  t.bind(1, agent, connector);

  CHECK_FALSE(t.route(1, addr("192.0.2.66:40000")));
  // Same IP, other port: a different socket is a different party.
  CHECK_FALSE(t.route(1, addr("198.51.100.7:40001")));
  CHECK_FALSE(t.route(1, Address{}));
  // A known address cannot use a session it is not in.
  CHECK_FALSE(t.route(2, agent));
  CHECK_FALSE(t.route(0, connector));
}

TEST_CASE("RelayTable keeps sessions apart", "[relay_table]") {
  RelayTable t;
  auto a1 = addr("198.51.100.1:1000");
  auto a2 = addr("198.51.100.2:1000");
  auto c = addr("203.0.113.9:5000");
  t.bind(10, a1, c);
  t.bind(20, a2, c);
  CHECK(t.size() == 2);
  CHECK(t.route(10, c) == a1);
  CHECK(t.route(20, c) == a2);
  CHECK_FALSE(t.route(10, a2));
  CHECK_FALSE(t.route(20, a1));
}

TEST_CASE("RelayTable::unbind ends a session", "[relay_table]") {
  RelayTable t;
  auto agent = addr("198.51.100.7:40000");
  auto connector = addr("203.0.113.9:5000");
  t.bind(1, agent, connector);
  t.bind(2, agent, connector);
  t.unbind(1);
  CHECK(t.size() == 1);
  CHECK_FALSE(t.route(1, agent));
  CHECK_FALSE(t.route(1, connector));
  CHECK(t.route(2, agent) == connector);
  t.unbind(1); // unknown: no effect
  t.unbind(99);
  CHECK(t.size() == 1);
}

TEST_CASE("RelayTable::bind again replaces a session's ends", "[relay_table]") {
  RelayTable t;
  auto old_agent = addr("198.51.100.7:40000");
  auto new_agent = addr("198.51.100.8:40000");
  auto connector = addr("203.0.113.9:5000");
  t.bind(1, old_agent, connector);
  t.bind(1, new_agent, connector);
  CHECK(t.size() == 1);
  CHECK_FALSE(t.route(1, old_agent));
  CHECK(t.route(1, connector) == new_agent);
}

TEST_CASE("RelayTable::rebind follows a NAT rebinding in every session", "[relay_table]") {
  RelayTable t;
  auto agent = addr("198.51.100.7:40000");
  auto rebound = addr("198.51.100.7:40999");
  auto c1 = addr("203.0.113.1:5000");
  auto c2 = addr("203.0.113.2:5000");
  auto other = addr("198.51.100.50:1234");
  t.bind(1, agent, c1);
  t.bind(2, agent, c2);
  t.bind(3, other, c1);

  t.rebind(agent, rebound);
  CHECK_FALSE(t.route(1, agent));
  CHECK_FALSE(t.route(2, agent));
  CHECK(t.route(1, rebound) == c1);
  CHECK(t.route(2, rebound) == c2);
  CHECK(t.route(1, c1) == rebound);
  CHECK(t.route(2, c2) == rebound);
  // Sessions the rebound peer is not in are untouched.
  CHECK(t.route(3, other) == c1);
  CHECK(t.route(3, c1) == other);

  SECTION("a connector rebinds too") {
    auto c1_new = addr("203.0.113.1:6000");
    t.rebind(c1, c1_new);
    CHECK(t.route(1, rebound) == c1_new);
    CHECK(t.route(3, other) == c1_new);
    CHECK(t.route(3, c1_new) == other);
    CHECK_FALSE(t.route(3, c1));
  }
  SECTION("an unknown address changes nothing") {
    t.rebind(addr("192.0.2.1:1"), addr("192.0.2.2:2"));
    CHECK(t.route(1, rebound) == c1);
    CHECK(t.route(3, other) == c1);
    CHECK(t.size() == 3);
  }
}
