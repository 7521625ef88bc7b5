// session::Liveness: when silence from the peer means it is dead (DESIGN D10), with explicit time.
#include <catch2/catch.hpp>

#include "session/liveness.hpp"

using namespace ztna::session;

namespace {
constexpr Timestamp kMs = 1'000'000;
constexpr Timestamp kT0 = 1000 * kMs;
} // namespace

TEST_CASE("liveness: a busy session on the relay is dead after keepalive + grace of silence",
          "[liveness]") {
  Liveness l({}, kT0);
  l.set_busy(true);
  CHECK(l.keepalive() == std::chrono::milliseconds(1000));
  CHECK(l.next_timeout() == kT0 + 4000 * kMs);
  l.on_relay_heard(kT0 + 3900 * kMs);
  CHECK_FALSE(l.verdict(kT0 + 3999 * kMs));
  l.on_received(kT0 + 3000 * kMs); // an ACK of our keepalive PING: the clock starts again
  l.on_relay_heard(kT0 + 6000 * kMs);
  CHECK_FALSE(l.verdict(kT0 + 6999 * kMs));
  auto v = l.verdict(kT0 + 7000 * kMs);
  REQUIRE(v);
  CHECK(*v == "nothing from the peer for 4.0 s over the relay");
}

TEST_CASE("liveness: a silent relay is no evidence against the peer", "[liveness]") {
  Liveness l({}, kT0);
  l.set_busy(true);
  // The intermediate was last heard 2.5 s before: it may be the one that died.
  l.on_relay_heard(kT0 + 2500 * kMs);
  CHECK_FALSE(l.verdict(kT0 + 5000 * kMs));
  CHECK_FALSE(l.verdict(kT0 + 60'000 * kMs));
  // It answers our control keepalive again, and the peer still says nothing: dead.
  l.on_relay_heard(kT0 + 60'000 * kMs);
  CHECK(l.verdict(kT0 + 60'000 * kMs));
}

TEST_CASE("liveness: an idle session waits for its slow keepalive", "[liveness]") {
  Liveness l({}, kT0);
  l.on_relay_heard(kT0 + 13'000 * kMs);
  CHECK(l.keepalive() == std::chrono::milliseconds(10000));
  CHECK_FALSE(l.verdict(kT0 + 12999 * kMs));
  CHECK(l.verdict(kT0 + 13000 * kMs));
  l.set_busy(true); // a stream opens: the shorter limit applies at once
  CHECK(l.verdict(kT0 + 13000 * kMs));
}

TEST_CASE("liveness: on a direct path the grace outlasts the consent timeout", "[liveness]") {
  Liveness l({}, kT0);
  l.set_busy(true);
  l.set_direct(true, kT0);
  CHECK_FALSE(l.verdict(kT0 + 8999 * kMs));
  auto v = l.verdict(kT0 + 9000 * kMs);
  REQUIRE(v);
  CHECK(v->find("on the direct path") != std::string::npos);
}

TEST_CASE("liveness: a fallback to the relay gets its own grace", "[liveness]") {
  Liveness l({}, kT0);
  l.set_busy(true);
  l.set_direct(true, kT0);
  l.on_relay_heard(kT0 + 8000 * kMs);
  // Consent on the direct path lost after 4 s of silence: the session falls back.
  l.set_direct(false, kT0 + 4000 * kMs);
  CHECK_FALSE(l.verdict(kT0 + 7999 * kMs));
  auto v = l.verdict(kT0 + 8000 * kMs);
  REQUIRE(v);
  CHECK(*v == "nothing from the peer for 8.0 s over the relay");
}

TEST_CASE("liveness: no verdict while the relay is unbound", "[liveness]") {
  Liveness l({}, kT0);
  l.set_busy(true);
  l.set_relay(RelayState::Unbound, kT0 + 500 * kMs);
  CHECK(l.next_timeout() == UINT64_MAX);
  CHECK_FALSE(l.verdict(kT0 + 600'000 * kMs));
  // Bound again (SessionResumed): silence counts from then, not from the last packet.
  l.set_relay(RelayState::Bound, kT0 + 20'000 * kMs);
  l.on_relay_heard(kT0 + 23'000 * kMs);
  CHECK_FALSE(l.verdict(kT0 + 23'999 * kMs));
  CHECK(l.verdict(kT0 + 24'000 * kMs));
}

TEST_CASE("liveness: a lost peer has a limited time to come back", "[liveness]") {
  Liveness l({}, kT0);
  l.set_relay(RelayState::PeerLost, kT0 + 1000 * kMs);
  CHECK_FALSE(l.verdict(kT0 + 10'999 * kMs));
  auto v = l.verdict(kT0 + 11'000 * kMs);
  REQUIRE(v);
  CHECK(*v == "nothing from the peer for 11.0 s, and its control connection did not come back "
              "within 10.0 s");
  // On a direct path the peer's control connection does not matter.
  l.set_direct(true, kT0 + 11'000 * kMs);
  CHECK_FALSE(l.verdict(kT0 + 11'000 * kMs));
}

TEST_CASE("liveness: state changes that change nothing do not reset the clock", "[liveness]") {
  Liveness l({}, kT0);
  l.set_busy(true);
  l.set_relay(RelayState::Bound, kT0 + 3000 * kMs);
  l.set_direct(false, kT0 + 3000 * kMs);
  l.on_relay_heard(kT0 + 4000 * kMs);
  CHECK(l.verdict(kT0 + 4000 * kMs));
  CHECK(std::string(to_string(RelayState::PeerLost)) == "peer lost");
}

TEST_CASE("liveness: when to ask whether the intermediate is still there", "[liveness]") {
  Liveness l({}, kT0);
  l.set_busy(true);
  l.on_sample(0, kT0);
  // Packets streaming in (8 or more since the last sample), then nothing: 300 ms is enough.
  l.on_received(kT0 + 250 * kMs);
  l.on_sample(40, kT0 + 250 * kMs);
  CHECK_FALSE(l.should_probe(kT0 + 500 * kMs));
  CHECK(l.should_probe(kT0 + 551 * kMs));
  // A quiet session (a keepalive now and then) waits keepalive + 500 ms.
  Liveness q({}, kT0);
  q.set_busy(true);
  q.on_sample(2, kT0);
  q.on_sample(3, kT0 + 250 * kMs);
  CHECK_FALSE(q.should_probe(kT0 + 1500 * kMs));
  CHECK(q.should_probe(kT0 + 1501 * kMs));
  // Never on a direct path: consent watches that one.
  q.set_direct(true, kT0);
  CHECK_FALSE(q.should_probe(kT0 + 60'000 * kMs));
}
