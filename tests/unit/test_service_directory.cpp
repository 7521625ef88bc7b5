#include <catch2/catch.hpp>

#include <map>
#include <set>

#include "control/service_directory.hpp"

using ztna::ServiceDirectory;
using Id = ServiceDirectory::ConnectorId;

namespace {

auto no_load = [](Id) -> size_t { return 0; };
auto none_used = [](Id) { return false; };

} // namespace

TEST_CASE("ServiceDirectory without a connector picks nothing", "[service_directory]") {
  ServiceDirectory d;
  CHECK_FALSE(d.has("db"));
  CHECK(d.connectors_for("db").empty());
  CHECK_FALSE(d.pick("db", no_load, none_used));

  d.add(1, {"web"});
  CHECK_FALSE(d.has("db"));
  CHECK_FALSE(d.pick("db", no_load, none_used));
  CHECK(d.has("web"));
}

TEST_CASE("ServiceDirectory lists the connectors of each service", "[service_directory]") {
  ServiceDirectory d;
  d.add(3, {"db", "web"});
  d.add(1, {"db"});
  d.add(3, {"db"}); // again: no duplicate
  CHECK(d.connectors_for("db") == std::vector<Id>{1, 3});
  CHECK(d.connectors_for("web") == std::vector<Id>{3});
}

TEST_CASE("ServiceDirectory picks the least-loaded connector", "[service_directory]") {
  ServiceDirectory d;
  d.add(1, {"db"});
  d.add(2, {"db"});
  d.add(3, {"db"});
  std::map<Id, size_t> load{{1, 5}, {2, 1}, {3, 9}};
  auto by_load = [&](Id c) { return load.at(c); };
  for (int i = 0; i < 5; ++i)
    CHECK(d.pick("db", by_load, none_used) == 2u);
  load[2] = 10;
  CHECK(d.pick("db", by_load, none_used) == 1u);
}

TEST_CASE("ServiceDirectory rotates among equally loaded connectors", "[service_directory]") {
  ServiceDirectory d;
  d.add(1, {"db"});
  d.add(2, {"db"});
  d.add(3, {"db"});
  d.add(4, {"db"});
  std::map<Id, size_t> load{{1, 2}, {2, 0}, {3, 2}, {4, 0}};
  auto by_load = [&](Id c) { return load.at(c); };
  std::map<Id, int> picks;
  for (int i = 0; i < 10; ++i) {
    auto c = d.pick("db", by_load, none_used);
    REQUIRE(c);
    picks[*c]++;
  }
  // Only the two least-loaded ones, and evenly.
  CHECK(picks == std::map<Id, int>{{2, 5}, {4, 5}});

  // Consecutive picks alternate rather than repeat.
  auto a = d.pick("db", by_load, none_used);
  auto b = d.pick("db", by_load, none_used);
  CHECK(a != b);
}

TEST_CASE("ServiceDirectory spreads picks as load is counted", "[service_directory]") {
  ServiceDirectory d;
  for (Id c : {10, 20, 30})
    d.add(c, {"web"});
  std::map<Id, size_t> load{{10, 0}, {20, 0}, {30, 0}};
  auto by_load = [&](Id c) { return load.at(c); };
  for (int i = 0; i < 30; ++i) {
    auto c = d.pick("web", by_load, none_used);
    REQUIRE(c);
    load[*c]++;
  }
  CHECK(load == std::map<Id, size_t>{{10, 10}, {20, 10}, {30, 10}});
}

TEST_CASE("ServiceDirectory prefers a connector already in use", "[service_directory]") {
  ServiceDirectory d;
  d.add(1, {"db"});
  d.add(2, {"db"});
  d.add(3, {"web"});
  std::map<Id, size_t> load{{1, 0}, {2, 100}, {3, 0}};
  auto by_load = [&](Id c) { return load.at(c); };
  // Connector 2 is busier, but the agent already has a session with it.
  for (int i = 0; i < 4; ++i)
    CHECK(d.pick("db", by_load, [](Id c) { return c == 2; }) == 2u);
  // A session with a connector that does not serve the service does not count.
  CHECK(d.pick("db", by_load, [](Id c) { return c == 3; }) == 1u);
}

TEST_CASE("ServiceDirectory::remove drops a connector from every service", "[service_directory]") {
  ServiceDirectory d;
  d.add(1, {"db", "web"});
  d.add(2, {"db"});
  d.remove(1);
  CHECK(d.connectors_for("db") == std::vector<Id>{2});
  CHECK_FALSE(d.has("web")); // its last connector is gone
  CHECK(d.connectors_for("web").empty());
  for (int i = 0; i < 3; ++i)
    CHECK(d.pick("db", no_load, none_used) == 2u);
  CHECK_FALSE(d.pick("web", no_load, none_used));

  d.remove(2);
  CHECK_FALSE(d.has("db"));
  CHECK_FALSE(d.pick("db", no_load, [](Id) { return true; }));
  d.remove(7); // unknown: no effect
  d.add(2, {"db"});
  CHECK(d.pick("db", no_load, none_used) == 2u);
}
