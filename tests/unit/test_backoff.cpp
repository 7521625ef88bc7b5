#include <catch2/catch.hpp>

#include <cstdint>
#include <vector>

#include "control/backoff.hpp"

using ztna::Backoff;
using ms = std::chrono::milliseconds;

namespace {

// The random inputs that hit the edges of the jitter range, plus a few in between.
const std::vector<uint32_t> kRandoms = {
    0u, 1u, 2u, 124u, 125u, 126u, 1000u, 123456789u, 0x7fffffffu, 0xfffffffeu, 0xffffffffu};

} // namespace

TEST_CASE("Backoff delays stay within [base/2, base]", "[backoff]") {
  for (uint32_t r : kRandoms) {
    INFO("random " << r);
    Backoff b(ms(250), ms(30000));
    ms base(250);
    for (int attempt = 0; attempt < 12; ++attempt) {
      INFO("attempt " << attempt);
      CHECK(b.upcoming_base() == base);
      auto d = b.next(r);
      CHECK(d >= base / 2);
      CHECK(d <= base);
      base = std::min(base * 2, ms(30000));
    }
  }
}

TEST_CASE("Backoff jitter reaches both ends of the range", "[backoff]") {
  Backoff lo(ms(1000), ms(8000));
  CHECK(lo.next(0) == ms(500));
  Backoff hi(ms(1000), ms(8000));
  CHECK(hi.next(500) == ms(1000)); // random % (half + 1) == half
  Backoff mid(ms(1000), ms(8000));
  CHECK(mid.next(501) == ms(500)); // wraps around
}

TEST_CASE("Backoff base doubles up to the cap and stays there", "[backoff]") {
  Backoff b(ms(250), ms(3000));
  std::vector<ms> bases;
  for (int i = 0; i < 8; ++i) {
    bases.push_back(b.upcoming_base());
    b.next(0);
  }
  CHECK(bases == std::vector<ms>{ms(250), ms(500), ms(1000), ms(2000), ms(3000), ms(3000), ms(3000),
                                 ms(3000)});
  // At the cap the delay is still jittered within [cap/2, cap].
  CHECK(b.next(0) == ms(1500));
  CHECK(b.next(0xffffffffu) >= ms(1500));
  CHECK(b.next(1500) == ms(3000));
}

TEST_CASE("Backoff::reset starts over from the initial delay", "[backoff]") {
  Backoff b(ms(100), ms(10000));
  for (int i = 0; i < 5; ++i)
    b.next(7);
  CHECK(b.upcoming_base() == ms(3200));
  b.reset();
  CHECK(b.upcoming_base() == ms(100));
  auto d = b.next(0xffffffffu);
  CHECK(d >= ms(50));
  CHECK(d <= ms(100));
  CHECK(b.upcoming_base() == ms(200));
}

TEST_CASE("Backoff defaults: 250 ms doubling to 30 s", "[backoff]") {
  Backoff b;
  CHECK(b.upcoming_base() == ms(250));
  for (int i = 0; i < 20; ++i)
    b.next(0);
  CHECK(b.upcoming_base() == ms(30000));
}

TEST_CASE("Backoff with tiny delays never returns a negative or oversized delay", "[backoff]") {
  Backoff b(ms(1), ms(1));
  for (uint32_t r : kRandoms) {
    auto d = b.next(r);
    CHECK(d >= ms(0));
    CHECK(d <= ms(1));
  }
  Backoff zero(ms(0), ms(0));
  CHECK(zero.next(12345) == ms(0));
}
