#include <catch2/catch.hpp>

#include "control/check_coordinator.hpp"

using ztna::CheckCoordinator;
using End = CheckCoordinator::End;

TEST_CASE("coordinator: starts a round once both ends are in", "[coordinator]") {
  CheckCoordinator c;
  CHECK_FALSE(c.on_candidates(1, End::Agent, 1));
  CHECK(c.on_candidates(1, End::Connector, 1));
  // The same round is never started twice, whoever repeats it.
  CHECK_FALSE(c.on_candidates(1, End::Connector, 1));
  CHECK_FALSE(c.on_candidates(1, End::Agent, 1));
  CHECK(c.rounds_started() == 1);
}

TEST_CASE("coordinator: either end may open a newer round", "[coordinator]") {
  CheckCoordinator c;
  CHECK_FALSE(c.on_candidates(7, End::Connector, 1));
  CHECK(c.on_candidates(7, End::Agent, 1));
  CHECK_FALSE(c.on_candidates(7, End::Connector, 2));
  CHECK(c.on_candidates(7, End::Agent, 2));
  // A stale round arriving late changes nothing.
  CHECK_FALSE(c.on_candidates(7, End::Agent, 1));
  CHECK(c.rounds_started() == 2);
}

TEST_CASE("coordinator: crossing rounds start the one both reach", "[coordinator]") {
  CheckCoordinator c;
  CHECK_FALSE(c.on_candidates(3, End::Agent, 3));
  CHECK_FALSE(c.on_candidates(3, End::Connector, 4)); // connector moved on first
  CHECK(c.on_candidates(3, End::Agent, 4));           // agent follows: round 4 starts
  CHECK_FALSE(c.on_candidates(3, End::Connector, 3));
}

TEST_CASE("coordinator: sessions are independent and can be forgotten", "[coordinator]") {
  CheckCoordinator c;
  CHECK_FALSE(c.on_candidates(1, End::Agent, 1));
  CHECK_FALSE(c.on_candidates(2, End::Connector, 1));
  c.forget(1);
  CHECK_FALSE(c.on_candidates(1, End::Connector, 1));
  CHECK(c.on_candidates(2, End::Agent, 1));
}
