// quic::HandshakeGate and Retry: the budget of unauthenticated handshakes.
#include <catch2/catch.hpp>

#include "quic/handshake_gate.hpp"
#include "quic/retry.hpp"

#include <ngtcp2/ngtcp2_crypto.h>

using namespace ztna;
using namespace ztna::quic;
using Verdict = HandshakeGate::Verdict;

namespace {
Address addr(const char* s) { return *Address::parse(s); }
constexpr uint64_t kSec = 1'000'000'000;
} // namespace

TEST_CASE("handshake gate: a half-open budget and a per-source limit", "[handshake_gate]") {
  HandshakeGate::Config c;
  c.retry = HandshakeGate::RetryMode::Never;
  c.max_half_open = 4;
  c.max_per_source = 2;
  HandshakeGate g(c);
  const auto a1 = addr("198.51.100.1:1000"), a2 = addr("198.51.100.1:1001");
  REQUIRE(g.admit(a1, false, 0) == Verdict::Accept);
  g.started(a1);
  REQUIRE(g.admit(a2, false, 0) == Verdict::Accept);
  g.started(a2);
  // A third from the same address (any port) is refused; other sources are not.
  CHECK(g.admit(addr("198.51.100.1:1002"), false, 0) == Verdict::OverSourceLimit);
  for (const char* other : {"198.51.100.2:1", "198.51.100.3:1"}) {
    REQUIRE(g.admit(addr(other), false, 0) == Verdict::Accept);
    g.started(addr(other));
  }
  CHECK(g.half_open() == 4);
  CHECK(g.admit(addr("198.51.100.9:1"), false, 0) == Verdict::OverBudget);
  // A finished handshake frees its slot and its source's.
  g.finished(a1);
  CHECK(g.admit(addr("198.51.100.1:1003"), false, 0) == Verdict::Accept);
  CHECK(g.counters().dropped_source == 1);
  CHECK(g.counters().dropped_budget == 1);
  // IPv6: one /64 is one source.
  g.started(addr("[2001:db8:1:2::1]:1"));
  g.finished(addr("198.51.100.2:1"));
  g.started(addr("[2001:db8:1:2::ffff]:1"));
  g.finished(addr("198.51.100.3:1"));
  CHECK(g.admit(addr("[2001:db8:1:2:aaaa::1]:9"), false, 0) == Verdict::OverSourceLimit);
  CHECK(g.admit(addr("[2001:db8:1:3::1]:9"), false, 0) == Verdict::Accept);
}

TEST_CASE("handshake gate: Retry under load in auto mode", "[handshake_gate]") {
  HandshakeGate::Config c;
  c.retry_above = 3;
  c.retry_rate = 10;
  HandshakeGate g(c);
  // Few and slow: no Retry.
  for (int i = 0; i < 3; ++i) {
    auto a = addr(("198.51.100." + std::to_string(i + 1) + ":1").c_str());
    REQUIRE(g.admit(a, false, i * kSec) == Verdict::Accept);
    g.started(a);
  }
  // Three in progress: the next one must prove its address; a validated one gets in.
  CHECK(g.admit(addr("198.51.100.9:1"), false, 4 * kSec) == Verdict::Retry);
  CHECK(g.admit(addr("198.51.100.9:1"), true, 4 * kSec) == Verdict::Accept);
  CHECK(g.retry_required(4 * kSec));
  // A burst of new handshakes (over the rate) turns Retry on even with nothing half open.
  HandshakeGate h(c);
  size_t retries = 0;
  for (int i = 0; i < 30; ++i)
    retries += h.admit(addr("203.0.113.1:1"), false, 100 * kSec) == Verdict::Retry;
  CHECK(retries == 20);
  CHECK(h.counters().retries_sent == 20);
  c.retry = HandshakeGate::RetryMode::Always;
  HandshakeGate always(c);
  CHECK(always.admit(addr("203.0.113.1:1"), false, 0) == Verdict::Retry);
}

TEST_CASE("Retry tokens bind the client's address and expire", "[handshake_gate][retry]") {
  RetrySecret secret{};
  secret.fill(7);
  ngtcp2_pkt_hd hd{};
  hd.version = NGTCP2_PROTO_VER_V1;
  hd.dcid.datalen = 18;
  for (size_t i = 0; i < 18; ++i)
    hd.dcid.data[i] = static_cast<uint8_t>(i);
  hd.scid.datalen = 16;
  const auto client = addr("198.51.100.7:4433");
  const uint64_t t = 1'700'000'000ull * kSec;
  auto retry = make_retry(hd, client, secret, t, 1200);
  REQUIRE_FALSE(retry.empty());
  CHECK(retry.size() <= 1200);
  // Decode the Retry as the client would: after the long header, the token and a 16-byte
  // integrity tag (RFC 9000 §17.2.5).
  ngtcp2_pkt_hd rhd{};
  const auto header = ngtcp2_pkt_decode_hd_long(&rhd, retry.data(), retry.size());
  REQUIRE(header > 0);
  REQUIRE(rhd.type == NGTCP2_PKT_RETRY);
  std::vector<uint8_t> token(retry.begin() + header, retry.end() - 16);
  REQUIRE_FALSE(token.empty());
  ngtcp2_pkt_hd second{};
  second.version = hd.version;
  second.dcid = rhd.scid; // the new connection ID the Retry gave
  second.token.base = token.data();
  second.token.len = token.size();
  CHECK(has_retry_token(second));
  auto odcid = verify_retry(second, client, secret, t + kSec);
  REQUIRE(odcid);
  CHECK(ngtcp2_cid_eq(&*odcid, &hd.dcid));
  // Another address, a later time, another secret: refused.
  CHECK_FALSE(verify_retry(second, addr("198.51.100.8:4433"), secret, t + kSec));
  CHECK_FALSE(verify_retry(second, client, secret, t + 11 * kSec));
  RetrySecret other{};
  CHECK_FALSE(verify_retry(second, client, other, t + kSec));
  // A Retry is never larger than what it answers.
  CHECK(make_retry(hd, client, secret, t, 50).empty());
}
