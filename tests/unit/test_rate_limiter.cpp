#include <catch2/catch.hpp>

#include <cstdint>

#include "net/rate_limiter.hpp"

using ztna::RateLimiter;

namespace {

constexpr uint64_t kSecond = 1'000'000'000;

int allowed(RateLimiter& r, uint64_t now, int attempts) {
  int n = 0;
  for (int i = 0; i < attempts; ++i)
    n += r.allow(now) ? 1 : 0;
  return n;
}

} // namespace

TEST_CASE("RateLimiter allows a burst, then nothing at the same instant", "[rate_limiter]") {
  RateLimiter r(10, 5);
  uint64_t t = 42 * kSecond;
  CHECK(allowed(r, t, 5) == 5);
  CHECK_FALSE(r.allow(t));
  CHECK(allowed(r, t, 100) == 0);
}

TEST_CASE("RateLimiter refills at its rate over explicit time", "[rate_limiter]") {
  RateLimiter r(10, 5); // one token per 100 ms
  uint64_t t = 7 * kSecond;
  CHECK(allowed(r, t, 5) == 5);

  t += kSecond / 20; // 50 ms: half a token
  CHECK_FALSE(r.allow(t));
  t += kSecond / 20; // 100 ms in all: one token
  CHECK(r.allow(t));
  CHECK_FALSE(r.allow(t));

  t += 3 * kSecond / 10; // 300 ms: three tokens
  CHECK(allowed(r, t, 10) == 3);
}

TEST_CASE("RateLimiter saves up no more than the burst", "[rate_limiter]") {
  RateLimiter r(100, 3);
  uint64_t t = kSecond;
  CHECK(allowed(r, t, 3) == 3);
  t += 3600 * kSecond; // an hour idle
  CHECK(allowed(r, t, 1000) == 3);
}

TEST_CASE("RateLimiter sustains its rate over a long run", "[rate_limiter]") {
  RateLimiter r(50, 1);
  uint64_t t = kSecond;
  int n = 0;
  // 10 s in 1 ms steps, trying 3 times per step.
  for (int i = 0; i < 10000; ++i) {
    t += kSecond / 1000;
    n += allowed(r, t, 3);
  }
  CHECK(n >= 499); // 50/s for 10 s, plus at most the initial burst
  CHECK(n <= 501);
}

TEST_CASE("RateLimiter gives no tokens when time goes backwards", "[rate_limiter]") {
  RateLimiter r(10, 2);
  uint64_t t = 100 * kSecond;
  CHECK(allowed(r, t, 2) == 2);
  CHECK(allowed(r, t - 50 * kSecond, 10) == 0);
  // Coming back to the old time is no gain either: the clock only counts forward.
  CHECK(allowed(r, t, 10) == 0);
  CHECK(r.allow(t + kSecond / 10));
  CHECK_FALSE(r.allow(t + kSecond / 10));
}

TEST_CASE("RateLimiter works with a clock that starts at zero", "[rate_limiter]") {
  RateLimiter r(10, 1);
  CHECK(r.allow(0));
  CHECK_FALSE(r.allow(0));
  CHECK(r.allow(kSecond / 10)); // 100 ms after t=0 one token is back
  CHECK_FALSE(r.allow(kSecond / 10));
}

TEST_CASE("RateLimiter with a zero rate only ever allows the burst", "[rate_limiter]") {
  RateLimiter r(0, 2);
  CHECK(allowed(r, kSecond, 5) == 2);
  CHECK(allowed(r, 1000 * kSecond, 5) == 0);
}
