#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "quic/cid_router.hpp"

namespace {

struct Owner {
  int id;
};

using Router = ztna::quic::CidRouter<Owner>;
using Cids = std::vector<std::string>;

} // namespace

TEST_CASE("CidRouter routes assigned IDs to their owner", "[cid_router]") {
  Router r;
  Owner a{1}, b{2};
  CHECK(r.find("x") == nullptr);
  r.assign(&a, {"a1", "a2"});
  r.assign(&b, {"b1"});
  CHECK(r.size() == 3);
  CHECK(r.find("a1") == &a);
  CHECK(r.find("a2") == &a);
  CHECK(r.find("b1") == &b);
  CHECK(r.find("b2") == nullptr);
  CHECK(r.find("") == nullptr);
}

TEST_CASE("CidRouter::assign replaces an owner's set", "[cid_router]") {
  Router r;
  Owner a{1};
  r.assign(&a, {"a1", "a2"});
  r.assign(&a, {"a2", "a3"}); // a1 retired, a3 new, a2 kept
  CHECK(r.size() == 2);
  CHECK(r.find("a1") == nullptr);
  CHECK(r.find("a2") == &a);
  CHECK(r.find("a3") == &a);

  r.assign(&a, {"a2", "a3"}); // same set: no change
  CHECK(r.size() == 2);

  r.assign(&a, {});
  CHECK(r.size() == 0);
  CHECK(r.find("a2") == nullptr);
}

TEST_CASE("CidRouter IDs are binary strings", "[cid_router]") {
  Router r;
  Owner a{1};
  std::string with_nul("\x00\x01\x02", 3);
  r.assign(&a, {with_nul});
  CHECK(r.find(with_nul) == &a);
  CHECK(r.find(std::string("\x00\x01", 2)) == nullptr);
  CHECK(r.find(std::string()) == nullptr);
}

TEST_CASE("CidRouter::remove drops all of an owner's routes", "[cid_router]") {
  Router r;
  Owner a{1}, b{2};
  r.assign(&a, {"a1", "a2"});
  r.assign(&b, {"b1"});
  r.remove(&a);
  CHECK(r.size() == 1);
  CHECK(r.find("a1") == nullptr);
  CHECK(r.find("a2") == nullptr);
  CHECK(r.find("b1") == &b);
  r.remove(&a); // twice: no effect
  Owner unknown{3};
  r.remove(&unknown);
  CHECK(r.find("b1") == &b);

  // The owner can come back afterwards.
  r.assign(&a, {"a9"});
  CHECK(r.find("a9") == &a);
}

TEST_CASE("CidRouter: one owner never removes another owner's route", "[cid_router]") {
  Router r;
  Owner a{1}, b{2};
  r.assign(&a, {"shared", "a1"});
  // b claims an ID a still lists (e.g. an alias taken over by a new connection).
  r.assign(&b, {"shared"});
  CHECK(r.find("shared") == &b);

  SECTION("by remove") {
    r.remove(&a);
    CHECK(r.find("shared") == &b);
    CHECK(r.find("a1") == nullptr);
  }
  SECTION("by assigning a new set") {
    r.assign(&a, {"a2"});
    CHECK(r.find("shared") == &b);
    CHECK(r.find("a1") == nullptr);
    CHECK(r.find("a2") == &a);
  }
  SECTION("by assigning an empty set") {
    r.assign(&a, {});
    CHECK(r.find("shared") == &b);
    CHECK(r.size() == 1);
  }
  SECTION("and the new owner's removal frees it") {
    r.remove(&b);
    CHECK(r.find("shared") == nullptr);
    CHECK(r.find("a1") == &a);
  }
}
