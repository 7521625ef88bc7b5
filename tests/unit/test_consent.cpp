#include <catch2/catch.hpp>

#include <algorithm>
#include <array>
#include <memory>
#include <optional>
#include <stdexcept>
#include <vector>

#include "ice/consent.hpp"

using namespace ztna::ice;

namespace {

using Tid = std::array<uint8_t, 12>;
constexpr Timestamp kMs = 1'000'000;
constexpr Timestamp T0 = 7'000 * kMs;

std::function<void(std::span<uint8_t>)> lcg_random(uint64_t seed) {
  auto state = std::make_shared<uint64_t>(seed);
  return [state](std::span<uint8_t> out) {
    for (auto& b : out) {
      *state = *state * 6364136223846793005ull + 1442695040888963407ull;
      b = static_cast<uint8_t>(*state >> 56);
    }
  };
}

// Every byte the same: the jitter lands on a fixed point of its range.
std::function<void(std::span<uint8_t>)> constant_random(uint8_t v) {
  return [v](std::span<uint8_t> out) { std::fill(out.begin(), out.end(), v); };
}

ConsentConfig config(std::function<void(std::span<uint8_t>)> random) {
  ConsentConfig c; // 1000 ms interval, 4000 ms timeout
  c.random = std::move(random);
  return c;
}

// Polls at next_timeout() until `until`, answering nothing; returns the request times.
std::vector<Timestamp> run_silent(Consent& c, Timestamp from, Timestamp until) {
  std::vector<Timestamp> out;
  for (Timestamp now = from; now <= until;) {
    while (c.poll(now)) {
      out.push_back(now);
      REQUIRE(out.size() < 100'000);
    }
    const Timestamp next = c.next_timeout();
    REQUIRE(next > now);
    now = next;
  }
  return out;
}

} // namespace

TEST_CASE("Consent requests are spaced by the interval +/- 20%", "[ice]") {
  Timestamp shortest = kNever, longest = 0;
  for (uint64_t seed = 1; seed <= 50; ++seed) {
    Consent c(config(lcg_random(seed)), T0);
    // Answer every request at once, so consent never lapses and only the spacing is measured.
    Timestamp previous = T0;
    Timestamp now = T0;
    for (int i = 0; i < 20; ++i) {
      now = c.next_timeout();
      auto tid = c.poll(now);
      REQUIRE(tid);
      CHECK_FALSE(c.poll(now)); // one request per deadline
      const Timestamp gap = now - previous;
      CHECK(gap >= 800 * kMs);
      CHECK(gap <= 1200 * kMs);
      shortest = std::min(shortest, gap);
      longest = std::max(longest, gap);
      previous = now;
      REQUIRE(c.on_response(*tid, now + kMs));
    }
    CHECK(c.requests_sent() == 20);
    CHECK(c.responses() == 20);
  }
  // Jitter really spreads the requests over the range.
  CHECK(shortest < 850 * kMs);
  CHECK(longest > 1150 * kMs);
}

TEST_CASE("Consent jitter reaches exactly the ends of its range", "[ice]") {
  Consent low(config(constant_random(0)), T0);
  CHECK(low.next_timeout() == T0 + 800 * kMs);
  CHECK_FALSE(low.poll(T0 + 800 * kMs - 1));
  CHECK(low.poll(T0 + 800 * kMs));
  // 0x0101...01 % (400 ms + 1 ns) lands inside the range too.
  Consent mid(config(constant_random(1)), T0);
  CHECK(mid.next_timeout() >= T0 + 800 * kMs);
  CHECK(mid.next_timeout() <= T0 + 1200 * kMs);
}

TEST_CASE("Consent expires after the timeout without answers", "[ice]") {
  Consent c(config(lcg_random(3)), T0);
  CHECK_FALSE(c.expired(T0));
  const auto sent = run_silent(c, T0, T0 + 3'999 * kMs);
  CHECK(sent.size() >= 3); // 4 s of requests at 0.8..1.2 s
  CHECK(sent.size() <= 5);
  CHECK_FALSE(c.expired(T0 + 4'000 * kMs - 1));
  CHECK(c.expired(T0 + 4'000 * kMs));
  CHECK(c.responses() == 0);
  CHECK_FALSE(c.last_rtt());
}

TEST_CASE("Consent wakes its owner at the expiry, once", "[ice]") {
  ConsentConfig cfg = config(constant_random(0)); // requests every 800 ms
  cfg.timeout = std::chrono::milliseconds(1000);
  Consent c(cfg, T0);
  CHECK(c.poll(T0 + 800 * kMs));
  CHECK(c.next_timeout() == T0 + 1000 * kMs); // expiry before the next request at 1600
  CHECK_FALSE(c.poll(T0 + 1000 * kMs));
  CHECK(c.expired(T0 + 1000 * kMs));
  CHECK(c.next_timeout() == T0 + 1600 * kMs); // seen: no more wake-ups for it
}

TEST_CASE("Consent is refreshed by an answer and records its RTT", "[ice]") {
  Consent c(config(constant_random(0)), T0);
  auto tid = c.poll(T0 + 800 * kMs);
  REQUIRE(tid);
  CHECK(c.requests_sent() == 1);
  REQUIRE(c.on_response(*tid, T0 + 830 * kMs));
  REQUIRE(c.last_rtt());
  CHECK(*c.last_rtt() == std::chrono::microseconds(30'000));
  CHECK(c.responses() == 1);
  // Fresh as of the answer: it now expires 4 s after it, not after the construction.
  CHECK_FALSE(c.expired(T0 + 4'000 * kMs));
  CHECK_FALSE(c.expired(T0 + 4'830 * kMs - 1));
  CHECK(c.expired(T0 + 4'830 * kMs));
  // A repeated answer counts once.
  CHECK_FALSE(c.on_response(*tid, T0 + 900 * kMs));
  CHECK(c.responses() == 1);
}

TEST_CASE("Consent ignores unknown transaction IDs", "[ice]") {
  Consent c(config(lcg_random(9)), T0);
  auto tid = c.poll(c.next_timeout());
  REQUIRE(tid);
  Tid other = *tid;
  other[11] ^= 1;
  CHECK_FALSE(c.on_response(other, T0 + 3'000 * kMs));
  CHECK(c.responses() == 0);
  CHECK_FALSE(c.last_rtt());
  CHECK(c.expired(T0 + 4'000 * kMs)); // not refreshed
}

TEST_CASE("Consent remembers only its latest requests", "[ice]") {
  Consent c(config(lcg_random(11)), T0);
  std::vector<Tid> tids;
  Timestamp now = T0;
  for (size_t i = 0; i < kMaxConsentOutstanding + 1; ++i) {
    std::optional<Tid> tid;
    while (!tid) { // past the expiry too: an expired Consent still sends
      now = c.next_timeout();
      tid = c.poll(now);
    }
    tids.push_back(*tid);
  }
  CHECK_FALSE(c.on_response(tids.front(), now)); // forgotten
  CHECK(c.on_response(tids[1], now));
  CHECK(c.on_response(tids.back(), now));
  CHECK(c.responses() == 2);
  CHECK_FALSE(c.expired(now + 4'000 * kMs - 1));
}

TEST_CASE("Consent needs a random source", "[ice]") {
  CHECK_THROWS_AS(Consent(ConsentConfig{}, T0), std::invalid_argument);
}
