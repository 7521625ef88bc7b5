#include <catch2/catch.hpp>

#include <algorithm>
#include <array>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "ice/check_list.hpp"

using namespace ztna;
using namespace ztna::ice;

namespace {

using Tid = std::array<uint8_t, 12>;
constexpr Timestamp kMs = 1'000'000;
constexpr Timestamp T0 = 5'000 * kMs; // an arbitrary non-zero start

Address addr(const std::string& text) {
  auto a = Address::parse(text);
  REQUIRE(a);
  return *a;
}

// Deterministic bytes (an LCG's top byte): every transaction ID differs.
std::function<void(std::span<uint8_t>)> lcg_random() {
  auto state = std::make_shared<uint64_t>(0x9e3779b97f4a7c15ull);
  return [state](std::span<uint8_t> out) {
    for (auto& b : out) {
      *state = *state * 6364136223846793005ull + 1442695040888963407ull;
      b = static_cast<uint8_t>(*state >> 56);
    }
  };
}

CheckListConfig config(bool controlling) {
  CheckListConfig c;
  c.controlling = controlling;
  c.random = lcg_random();
  return c;
}

CheckListConfig aggressive_config(bool controlling, bool aggressive = true) {
  CheckListConfig c = config(controlling);
  c.aggressive_nomination = aggressive;
  return c;
}

Candidate cand(CandidateType t, const std::string& a, uint16_t local_preference = 65535) {
  return {t, addr(a), candidate_priority(t, local_preference)};
}
Candidate host(const std::string& a, uint16_t lp = 65535) {
  return cand(CandidateType::Host, a, lp);
}
Candidate srflx(const std::string& a) {
  return cand(CandidateType::ServerReflexive, a);
}

const CandidatePair& pair_to(const CheckList& l, const std::string& remote) {
  for (const auto& p : l.pairs())
    if (p.remote.address == addr(remote)) return p;
  FAIL("no pair to " << remote);
  throw;
}

std::vector<Check> drain(CheckList& l, Timestamp now) {
  std::vector<Check> out;
  while (auto c = l.poll(now)) {
    out.push_back(*c);
    REQUIRE(out.size() < 1000);
  }
  return out;
}

struct Sent {
  Timestamp at;
  Check check;
};

// Runs `l` alone from `from` to `until`, waking only at next_timeout(), answering nothing.
std::vector<Sent> run_silent(CheckList& l, Timestamp from, Timestamp until) {
  std::vector<Sent> out;
  for (Timestamp now = from; now <= until;) {
    for (auto& c : drain(l, now))
      out.push_back({now, c});
    const Timestamp next = l.next_timeout();
    REQUIRE(next > now); // poll() left nothing due now
    now = next;
  }
  return out;
}

// A list with our IPv4 host and srflx candidates and the given remotes, started at T0.
CheckList started_list(bool controlling, const std::vector<Candidate>& remotes) {
  CheckList l(config(controlling));
  l.set_local_candidates({host("10.0.0.1:5000", 32767), srflx("203.0.113.1:6000")});
  l.add_remote_candidates(remotes);
  l.start(T0);
  return l;
}

// The peer answers `c` from where it was sent, having seen us as `mapped`.
bool answer(CheckList& l, const Check& c, const std::string& mapped, Timestamp now) {
  return l.on_success_response(c.transaction_id, c.to, addr(mapped), now);
}

} // namespace

namespace Catch {
template <> struct StringMaker<ztna::Address> {
  static std::string convert(const ztna::Address& a) { return a.to_string(); }
};
} // namespace Catch

// --- pairing ----------------------------------------------------------------------------------

TEST_CASE("Check list pairs each remote with our best candidate of its family", "[ice]") {
  CheckList l(config(true));
  const auto local6 = host("[2001:db8:a::1]:5000", 65535);
  const auto local4 = host("10.0.0.1:5000", 32767);
  const auto local4_srflx = srflx("203.0.113.1:6000");
  l.set_local_candidates({local4_srflx, local4, local6});
  const std::vector<Candidate> remotes = {
      host("10.1.0.1:7000", 32767),
      srflx("203.0.113.2:8000"),
      cand(CandidateType::Relay, "203.0.113.9:3478"), // never checked
      host("[2001:db8:b::1]:7000"),
      host("10.1.0.1:7000", 100), // same address again: ignored
  };
  l.add_remote_candidates(remotes);
  const auto& pairs = l.pairs();
  REQUIRE(pairs.size() == 3);
  CHECK(pairs[0].remote.address == addr("[2001:db8:b::1]:7000"));
  CHECK(pairs[0].local == local6);
  CHECK(pairs[1].remote.address == addr("10.1.0.1:7000"));
  CHECK(pairs[1].remote.priority == candidate_priority(CandidateType::Host, 32767));
  CHECK(pairs[1].local == local4); // host beats srflx: the srflx local is pruned to its base
  CHECK(pairs[2].remote.address == addr("203.0.113.2:8000"));
  CHECK(pairs[2].local == local4);
  for (const auto& p : pairs) {
    CHECK(p.priority == pair_priority(p.local.priority, p.remote.priority)); // we control
    CHECK(p.state == PairState::Frozen);
    CHECK_FALSE(p.nominated);
    CHECK(p.transmissions == 0);
  }
  CHECK_FALSE(l.started());
  CHECK(l.next_timeout() == kNever);
  CHECK_FALSE(l.poll(T0));
  l.start(T0);
  CHECK(l.started());
  for (const auto& p : l.pairs())
    CHECK(p.state == PairState::Waiting);

  // The controlled side puts the peer's candidate priority first in the formula (§6.1.2.3).
  CheckList controlled(config(false));
  controlled.set_local_candidates({local4});
  controlled.add_remote_candidates(remotes);
  REQUIRE(controlled.pairs().size() == 2);
  for (const auto& p : controlled.pairs())
    CHECK(p.priority == pair_priority(p.remote.priority, local4.priority));
}

TEST_CASE("Check list skips families we have no candidate of, until we do", "[ice]") {
  CheckList l(config(true));
  l.set_local_candidates({host("10.0.0.1:5000", 32767)});
  l.add_remote_candidates(
      std::vector<Candidate>{host("[2001:db8:b::1]:7000"), host("10.1.0.1:7000", 32767)});
  REQUIRE(l.pairs().size() == 1);
  CHECK(l.pairs()[0].remote.address == addr("10.1.0.1:7000"));
  l.set_local_candidates({host("[2001:db8:a::1]:5000"), host("10.0.0.1:5000", 32767)});
  REQUIRE(l.pairs().size() == 2);
  CHECK(l.pairs()[0].remote.address == addr("[2001:db8:b::1]:7000"));
}

TEST_CASE("Check list accepts trickled candidates after the start", "[ice]") {
  auto l = started_list(true, {srflx("203.0.113.2:8000")});
  l.add_remote_candidates(std::vector<Candidate>{host("10.1.0.1:7000", 32767)});
  REQUIRE(l.pairs().size() == 2);
  CHECK(l.pairs()[0].remote.address == addr("10.1.0.1:7000"));
  CHECK(l.pairs()[0].state == PairState::Waiting);
}

TEST_CASE("Check list bounds what untrusted signaling can make it check", "[ice]") {
  CheckList l(config(false));
  l.set_local_candidates({host("10.0.0.1:5000", 32767)});
  std::vector<Candidate> many;
  for (int i = 0; i < 40; ++i)
    many.push_back(host("198.51.100." + std::to_string(i + 1) + ":7000", 32767));
  l.add_remote_candidates(many);
  CHECK(l.pairs().size() == kMaxRemoteCandidates);
  l.add_remote_candidates(std::vector<Candidate>{host("192.0.2.1:7000")}); // a later batch too
  CHECK(l.pairs().size() == kMaxRemoteCandidates);

  // Learned peer-reflexive candidates have their own, smaller budget.
  l.start(T0);
  for (int i = 0; i < 20; ++i)
    l.on_request(addr("192.0.2." + std::to_string(i + 1) + ":9000"), 1000, false, T0);
  CHECK(l.pairs().size() == kMaxRemoteCandidates + kMaxPeerReflexive);
  const auto prflx = std::count_if(l.pairs().begin(), l.pairs().end(), [](const auto& p) {
    return p.remote.type == CandidateType::PeerReflexive;
  });
  CHECK(prflx == static_cast<long>(kMaxPeerReflexive));

  // Over a whole round, each pair costs at most max_transmissions requests.
  const auto sent = run_silent(l, T0, T0 + 20'000 * kMs);
  CHECK(sent.size() == l.pairs().size() * 7);
  CHECK(l.failed());
}

TEST_CASE("Check list ignores remote candidates no check may go to", "[ice][filter]") {
  CheckList l(config(true));
  l.set_local_candidates({host("10.0.0.1:5000", 32767), host("[2001:db8:a::1]:5000")});
  l.add_remote_candidates(std::vector<Candidate>{
      host("198.51.100.1:0"),                                        // port 0
      host("0.0.0.0:7000"),                                          // unspecified
      host("239.1.1.1:7000"),                                        // multicast
      host("255.255.255.255:7000"),                                  // broadcast
      host("[::]:7000"),                                             // unspecified
      host("[ff02::1]:7000"),                                        // multicast
      host("127.0.0.1:7000"),                                        // loopback
      host("[::1]:7000"),                                            // loopback
      host("[::ffff:127.0.0.1]:7000"),                               // loopback, IPv4-mapped
      host("169.254.9.9:7000"),                                      // link-local
      host("[fe80::1]:7000"),                                        // link-local
      host("169.254.169.254:80"),                                    // cloud metadata
      host("[fd00:ec2::254]:80"),                                    // cloud metadata
      {static_cast<CandidateType>(7), addr("198.51.100.2:7000"), 1}, // unknown type
      {CandidateType::Host, Address(), 1},                           // no address
  });
  CHECK(l.pairs().empty());
  // Nor does a request from such an address teach a peer-reflexive candidate.
  auto live = started_list(false, {host("198.51.100.3:7000")});
  for (const std::string from : {"127.0.0.1:7000", "[::1]:7000", "169.254.169.254:80",
                                 "224.0.0.251:5353", "[::ffff:127.0.0.1]:7000", "10.9.9.9:0"})
    live.on_request(addr(from), 1, false, T0);
  REQUIRE(live.pairs().size() == 1);
  for (const auto& c : drain(live, T0 + 1000 * kMs))
    CHECK(c.to == addr("198.51.100.3:7000"));
}

// --- pacing and retransmission ----------------------------------------------------------------

// First transmissions only: the first check sent to each destination.
std::vector<Sent> first_transmissions(const std::vector<Sent>& sent) {
  std::vector<Sent> fresh;
  for (const auto& s : sent)
    if (std::none_of(fresh.begin(), fresh.end(),
                     [&](const Sent& f) { return f.check.to == s.check.to; }))
      fresh.push_back(s);
  return fresh;
}

TEST_CASE("Check list paces new checks by Ta and sends them in priority order", "[ice]") {
  std::vector<Candidate> remotes;
  for (int i = 0; i < 6; ++i)
    remotes.push_back(
        host("198.51.100." + std::to_string(i + 1) + ":7000", static_cast<uint16_t>(30000 - i)));
  SECTION("several polls at one instant give one new check") {
    auto l = started_list(true, remotes);
    CHECK(drain(l, T0).size() == 1);
    CHECK(l.next_timeout() == T0 + 5 * kMs);
    CHECK(drain(l, T0 + 5 * kMs - 1).empty());
    CHECK(drain(l, T0 + 5 * kMs).size() == 1);
  }
  SECTION("over a round") {
    auto l = started_list(true, remotes);
    const auto fresh = first_transmissions(run_silent(l, T0, T0 + 400 * kMs));
    REQUIRE(fresh.size() == 6);
    CHECK(fresh[0].at == T0);
    for (size_t i = 0; i < fresh.size(); ++i) {
      CHECK(fresh[i].check.to == remotes[i].address); // remotes were listed best first
      CHECK_FALSE(fresh[i].check.use_candidate);
      if (i > 0) CHECK(fresh[i].at - fresh[i - 1].at >= 5 * kMs);
    }
  }
}

TEST_CASE("Check list paces triggered checks too", "[ice]") {
  auto l = started_list(false, {srflx("203.0.113.2:8000")});
  for (int i = 0; i < 7; ++i)
    l.on_request(addr("192.0.2." + std::to_string(i + 1) + ":9000"), 1000, false, T0);
  const auto sent = run_silent(l, T0, T0 + 400 * kMs);
  const auto fresh = first_transmissions(sent);
  REQUIRE(fresh.size() == 8);
  for (size_t i = 1; i < fresh.size(); ++i)
    CHECK(fresh[i].at - fresh[i - 1].at >= 5 * kMs);
  // The triggered ones went first; the signaled pair, though of higher priority, came last.
  CHECK(fresh[7].check.to == addr("203.0.113.2:8000"));
}

TEST_CASE("Check list retransmits with a doubling RTO, then fails the pair", "[ice]") {
  auto l = started_list(true, {srflx("203.0.113.2:8000")});
  const auto sent = run_silent(l, T0, T0 + 30'000 * kMs);
  std::vector<Timestamp> offsets_ms;
  for (const auto& s : sent)
    offsets_ms.push_back((s.at - T0) / kMs);
  CHECK(offsets_ms == std::vector<Timestamp>{0, 50, 150, 350, 750, 1550, 3150});
  // Each transmission has its own transaction ID.
  for (size_t i = 1; i < sent.size(); ++i)
    CHECK(sent[i].check.transaction_id != sent[i - 1].check.transaction_id);
  const auto& p = l.pairs()[0];
  CHECK(p.state == PairState::Failed);
  CHECK(p.transmissions == 7);
  CHECK(l.failed());
  CHECK(l.selected() == nullptr);
  CHECK(l.next_timeout() == kNever);
  CHECK_FALSE(l.poll(T0 + 60'000 * kMs));
}

TEST_CASE("Check list fails a pair exactly when the last RTO runs out", "[ice]") {
  CheckListConfig c = config(true);
  c.max_transmissions = 3; // 0, 50, 150; fails at 150 + 200
  CheckList l(c);
  l.set_local_candidates({host("10.0.0.1:5000", 32767)});
  l.add_remote_candidates(std::vector<Candidate>{srflx("203.0.113.2:8000")});
  l.start(T0);
  CHECK(drain(l, T0).size() == 1);
  CHECK(drain(l, T0 + 50 * kMs).size() == 1);
  CHECK(drain(l, T0 + 150 * kMs).size() == 1);
  CHECK(l.next_timeout() == T0 + 350 * kMs);
  CHECK(drain(l, T0 + 350 * kMs - 1).empty());
  CHECK_FALSE(l.failed());
  CHECK(drain(l, T0 + 350 * kMs).empty());
  CHECK(l.failed());
}

TEST_CASE("Check list with nothing to check fails at once", "[ice]") {
  auto l = started_list(true, {host("[2001:db8:b::1]:7000")}); // no IPv6 local
  CHECK(l.pairs().empty());
  CHECK(l.failed());
  CHECK(l.next_timeout() == kNever);
}

// --- answers --------------------------------------------------------------------------------

TEST_CASE("Check list counts an answer to any transmission and measures its RTT", "[ice]") {
  auto l = started_list(true, {srflx("203.0.113.2:8000")});
  const auto first = drain(l, T0);
  REQUIRE(first.size() == 1);
  const auto second = drain(l, T0 + 50 * kMs);
  REQUIRE(second.size() == 1);
  CHECK(l.pairs()[0].state == PairState::InProgress);
  // The answer to the first transmission arrives late, after the retransmission.
  REQUIRE(answer(l, first[0], "203.0.113.1:6001", T0 + 70 * kMs));
  const auto& p = l.pairs()[0];
  CHECK(p.state == PairState::Succeeded);
  REQUIRE(p.rtt);
  CHECK(*p.rtt == std::chrono::microseconds(70'000)); // from the transmission it answers
  REQUIRE(p.mapped);
  CHECK(*p.mapped == addr("203.0.113.1:6001"));
  // A duplicate, and the answer to the second transmission: known, no change.
  CHECK(answer(l, first[0], "203.0.113.1:6001", T0 + 71 * kMs));
  CHECK(answer(l, second[0], "203.0.113.1:6001", T0 + 72 * kMs));
  CHECK(*l.pairs()[0].rtt == std::chrono::microseconds(70'000));
  // No retransmission after success; the only pair is nominated at once.
  const auto after = drain(l, T0 + 150 * kMs);
  REQUIRE(after.size() == 1);
  CHECK(after[0].use_candidate);
}

TEST_CASE("Check list reports unknown transactions", "[ice]") {
  auto l = started_list(true, {srflx("203.0.113.2:8000")});
  drain(l, T0);
  const Tid stranger{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
  CHECK_FALSE(
      l.on_success_response(stranger, addr("203.0.113.2:8000"), addr("203.0.113.1:1"), T0 + kMs));
  CHECK_FALSE(l.on_error_response(stranger, T0 + kMs));
  CHECK(l.pairs()[0].state == PairState::InProgress);
}

TEST_CASE("Check list fails a pair whose answer comes from elsewhere (non-symmetric)", "[ice]") {
  auto l = started_list(true, {srflx("203.0.113.2:8000")});
  const auto c = drain(l, T0);
  REQUIRE(c.size() == 1);
  CHECK(c[0].to == addr("203.0.113.2:8000"));
  REQUIRE(l.on_success_response(c[0].transaction_id, addr("203.0.113.2:8001"),
                                addr("203.0.113.1:6001"), T0 + 20 * kMs));
  CHECK(l.pairs()[0].state == PairState::Failed);
  CHECK_FALSE(l.pairs()[0].mapped);
  CHECK(l.failed());
  CHECK(drain(l, T0 + 50 * kMs).empty()); // no retransmission
}

TEST_CASE("Check list fails a pair on an error response", "[ice]") {
  auto l = started_list(true, {srflx("203.0.113.2:8000"), host("10.1.0.1:7000", 32767)});
  const auto c = drain(l, T0);
  REQUIRE(c.size() == 1);
  REQUIRE(l.on_error_response(c[0].transaction_id, T0 + kMs));
  CHECK(pair_to(l, "10.1.0.1:7000").state == PairState::Failed);
  CHECK_FALSE(l.failed()); // the other pair is still Waiting
}

TEST_CASE("Check list reports our peer-reflexive addresses", "[ice]") {
  auto l = started_list(true, {srflx("203.0.113.2:8000"), srflx("203.0.113.3:8000")});
  const auto a = drain(l, T0);
  const auto b = drain(l, T0 + 5 * kMs);
  REQUIRE(a.size() == 1);
  REQUIRE(b.size() == 1);
  // One peer saw our srflx address (already a local candidate), the other a new mapping.
  answer(l, a[0], "203.0.113.1:6000", T0 + 10 * kMs);
  answer(l, b[0], "203.0.113.1:6001", T0 + 11 * kMs);
  const auto prflx = l.local_peer_reflexive();
  REQUIRE(prflx.size() == 1);
  CHECK(prflx[0].type == CandidateType::PeerReflexive);
  CHECK(prflx[0].address == addr("203.0.113.1:6001"));
  CHECK(prflx[0].priority == candidate_priority(CandidateType::PeerReflexive, 32767));
  CHECK(b[0].priority == prflx[0].priority); // what the request's PRIORITY said (§7.1.1)
}

// --- nomination ---------------------------------------------------------------------------------

TEST_CASE("Controlling side nominates the best succeeded pair, not the first", "[ice]") {
  auto l = started_list(true, {host("10.1.0.1:7000", 32767), srflx("203.0.113.2:8000")});
  const auto best = drain(l, T0);
  const auto worse = drain(l, T0 + 5 * kMs);
  REQUIRE(best.size() == 1);
  REQUIRE(worse.size() == 1);
  CHECK(best[0].to == addr("10.1.0.1:7000"));

  // The worse pair answers first: the better one is still in progress, so wait.
  answer(l, worse[0], "203.0.113.1:6001", T0 + 6 * kMs);
  CHECK(drain(l, T0 + 6 * kMs).empty());
  CHECK(l.next_timeout() == T0 + 31 * kMs); // first success + nomination_delay
  // The better pair answers within the delay: nominate it at once.
  answer(l, best[0], "10.0.0.1:5000", T0 + 20 * kMs);
  const auto nom = drain(l, T0 + 20 * kMs);
  REQUIRE(nom.size() == 1);
  CHECK(nom[0].to == addr("10.1.0.1:7000"));
  CHECK(nom[0].use_candidate);
  CHECK(l.selected() == nullptr); // not before the nomination check succeeds
  answer(l, nom[0], "10.0.0.1:5000", T0 + 21 * kMs);
  REQUIRE(l.selected());
  CHECK(l.selected()->remote.address == addr("10.1.0.1:7000"));
  CHECK(l.selected()->nominated);
  CHECK_FALSE(pair_to(l, "203.0.113.2:8000").nominated);
  CHECK(l.ended());
  CHECK(l.next_timeout() == kNever);
  CHECK(drain(l, T0 + 10'000 * kMs).empty());
}

TEST_CASE("Controlling side nominates after the delay when better pairs stay silent", "[ice]") {
  auto l = started_list(true, {host("10.1.0.1:7000", 32767), srflx("203.0.113.2:8000")});
  drain(l, T0);
  const auto worse = drain(l, T0 + 5 * kMs);
  answer(l, worse[0], "203.0.113.1:6001", T0 + 6 * kMs);
  CHECK(drain(l, T0 + 31 * kMs - 1).empty());
  const auto nom = drain(l, T0 + 31 * kMs);
  REQUIRE(nom.size() == 1);
  CHECK(nom[0].to == addr("203.0.113.2:8000"));
  CHECK(nom[0].use_candidate);
}

TEST_CASE("Controlling side falls back when a nomination goes unanswered", "[ice]") {
  auto l = started_list(true, {host("10.1.0.1:7000", 32767), srflx("203.0.113.2:8000")});
  const auto best = drain(l, T0);
  const auto worse = drain(l, T0 + 5 * kMs);
  answer(l, best[0], "10.0.0.1:5000", T0 + 7 * kMs);
  answer(l, worse[0], "203.0.113.1:6001", T0 + 8 * kMs);
  // Nominate the best; it never answers again.
  // Nomination at T0+10 (Ta after the last new check), 7 transmissions, Failed at T0+6360.
  const auto sent = run_silent(l, T0 + 8 * kMs, T0 + 6'400 * kMs);
  REQUIRE(sent.size() == 8);
  CHECK(sent[0].at == T0 + 10 * kMs);
  CHECK(sent[7].at == T0 + 6'360 * kMs);
  for (int i = 0; i < 7; ++i) {
    CHECK(sent[i].check.to == addr("10.1.0.1:7000"));
    CHECK(sent[i].check.use_candidate); // retransmissions keep USE-CANDIDATE
  }
  CHECK(pair_to(l, "10.1.0.1:7000").state == PairState::Failed);
  CHECK(sent[7].check.to == addr("203.0.113.2:8000"));
  CHECK(sent[7].check.use_candidate);
  CHECK(answer(l, sent[7].check, "203.0.113.1:6001", sent[7].at + kMs));
  REQUIRE(l.selected());
  CHECK(l.selected()->remote.address == addr("203.0.113.2:8000"));
}

TEST_CASE("Aggressive nomination: every check nominates, the first success is selected", "[ice]") {
  CheckList l(aggressive_config(true));
  l.set_local_candidates({host("10.0.0.1:5000", 32767), srflx("203.0.113.1:6000")});
  const std::vector<Candidate> remotes{host("10.1.0.1:7000", 32767), srflx("203.0.113.2:8000")};
  l.add_remote_candidates(remotes);
  l.start(T0);
  const auto best = drain(l, T0);
  const auto worse = drain(l, T0 + 5 * kMs);
  REQUIRE(best.size() == 1);
  REQUIRE(worse.size() == 1);
  CHECK(best[0].use_candidate);
  CHECK(worse[0].use_candidate);
  // The worse pair answers first: it is selected at once, with no nomination check and no wait
  // for the better pair.
  answer(l, worse[0], "203.0.113.1:6000", T0 + 6 * kMs);
  REQUIRE(l.selected());
  CHECK(l.selected()->remote.address == addr("203.0.113.2:8000"));
  CHECK(l.selected()->nominated);
  CHECK(l.ended());
  CHECK(drain(l, T0 + 10'000 * kMs).empty());
}

TEST_CASE("Aggressive nomination is the controlling side's alone", "[ice]") {
  CheckList l(aggressive_config(false));
  l.set_local_candidates({host("10.0.0.1:5000", 32767)});
  const std::vector<Candidate> remotes{host("10.1.0.1:7000", 32767)};
  l.add_remote_candidates(remotes);
  l.start(T0);
  const auto checks = drain(l, T0);
  REQUIRE(checks.size() == 1);
  CHECK_FALSE(checks[0].use_candidate);
  // Its own success selects nothing until the peer nominated the pair.
  answer(l, checks[0], "10.0.0.1:5000", T0 + 1 * kMs);
  CHECK(l.selected() == nullptr);
  l.on_request(addr("10.1.0.1:7000"), 1, true, T0 + 2 * kMs);
  REQUIRE(l.selected());
}

TEST_CASE("Check list changes nothing once it has ended", "[ice]") {
  auto l = started_list(true, {host("10.1.0.1:7000", 32767), srflx("203.0.113.2:8000")});
  const auto a = drain(l, T0);
  const auto b = drain(l, T0 + 5 * kMs);
  answer(l, a[0], "10.0.0.1:5000", T0 + 6 * kMs);
  const auto nom = drain(l, T0 + 10 * kMs);
  REQUIRE(nom.size() == 1);
  answer(l, nom[0], "10.0.0.1:5000", T0 + 11 * kMs);
  REQUIRE(l.selected());
  // A late answer for the other pair, an error, a request: all known or ignored, no change.
  CHECK(answer(l, b[0], "203.0.113.1:6001", T0 + 12 * kMs));
  CHECK(pair_to(l, "203.0.113.2:8000").state == PairState::InProgress);
  CHECK(l.on_error_response(a[0].transaction_id, T0 + 12 * kMs));
  CHECK(l.selected());
  l.on_request(addr("192.0.2.1:9000"), 1000, false, T0 + 12 * kMs);
  CHECK(l.pairs().size() == 2);
  CHECK(drain(l, T0 + 12 * kMs).empty());
}

// --- incoming requests ----------------------------------------------------------------------

TEST_CASE("An incoming request triggers a check on its pair before ordinary checks", "[ice]") {
  auto l = started_list(
      false, {host("10.1.0.1:7000", 32767), srflx("203.0.113.2:8000"), srflx("203.0.113.3:8000")});
  const auto first = drain(l, T0);
  REQUIRE(first.size() == 1);
  CHECK(first[0].to == addr("10.1.0.1:7000"));
  // Ordinary order would check 203.0.113.2 next; the peer's request makes .3 go first.
  l.on_request(addr("203.0.113.3:8000"), 1, false, T0 + kMs);
  const auto next = drain(l, T0 + 5 * kMs);
  REQUIRE(next.size() == 1);
  CHECK(next[0].to == addr("203.0.113.3:8000"));
  CHECK(drain(l, T0 + 10 * kMs)[0].to == addr("203.0.113.2:8000"));
}

TEST_CASE("An incoming request restarts a check in progress", "[ice]") {
  auto l = started_list(false, {srflx("203.0.113.2:8000")});
  const auto first = drain(l, T0);
  const auto second = drain(l, T0 + 50 * kMs); // retransmission; the next would be at +150
  REQUIRE(second.size() == 1);
  l.on_request(addr("203.0.113.2:8000"), 1, false, T0 + 60 * kMs);
  CHECK(l.pairs()[0].state == PairState::Waiting);
  const auto triggered = drain(l, T0 + 60 * kMs);
  REQUIRE(triggered.size() == 1);
  CHECK(l.pairs()[0].state == PairState::InProgress);
  CHECK(l.next_timeout() == T0 + 110 * kMs); // a fresh check: initial RTO again
  // The cancelled transmissions still count when their answer arrives.
  CHECK(answer(l, first[0], "203.0.113.1:6001", T0 + 61 * kMs));
  CHECK(l.pairs()[0].state == PairState::Succeeded);
}

TEST_CASE("An incoming request revives a failed pair", "[ice]") {
  auto l = started_list(false, {srflx("203.0.113.2:8000"), srflx("203.0.113.3:8000")});
  const auto c = drain(l, T0);
  l.on_error_response(c[0].transaction_id, T0 + kMs);
  REQUIRE(pair_to(l, c[0].to.to_string()).state == PairState::Failed);
  l.on_request(c[0].to, 1, false, T0 + 2 * kMs);
  CHECK(pair_to(l, c[0].to.to_string()).state == PairState::Waiting);
  CHECK(drain(l, T0 + 5 * kMs)[0].to == c[0].to);
}

TEST_CASE("A request from an unknown address teaches a peer-reflexive candidate", "[ice]") {
  auto l = started_list(false, {srflx("203.0.113.2:8000")});
  const uint32_t prio = candidate_priority(CandidateType::PeerReflexive, 65535);
  l.on_request(addr("203.0.113.2:8123"), prio, false, T0);
  REQUIRE(l.pairs().size() == 2);
  const auto& p = pair_to(l, "203.0.113.2:8123");
  CHECK(p.remote.type == CandidateType::PeerReflexive);
  CHECK(p.remote.priority == prio);
  CHECK(p.state == PairState::Waiting);
  // Triggered checks go before ordinary ones, whatever the priorities.
  const auto c = drain(l, T0);
  REQUIRE(c.size() == 1);
  CHECK(c[0].to == addr("203.0.113.2:8123"));
  // Known now: a second request adds nothing.
  l.on_request(addr("203.0.113.2:8123"), prio, false, T0 + kMs);
  CHECK(l.pairs().size() == 2);
  // A request from a signaled relay candidate's address is not a new candidate.
  l.add_remote_candidates(std::vector<Candidate>{cand(CandidateType::Relay, "203.0.113.9:3478")});
  l.on_request(addr("203.0.113.9:3478"), prio, false, T0 + kMs);
  CHECK(l.pairs().size() == 2);
}

TEST_CASE("Controlled side selects the nominated pair once its own check succeeds", "[ice]") {
  auto l = started_list(false, {srflx("203.0.113.2:8000"), srflx("203.0.113.3:8000")});
  // Nominated while our check is still in progress: not selected yet (§7.3.1.5).
  const auto c = drain(l, T0);
  REQUIRE(c.size() == 1);
  l.on_request(c[0].to, 1, true, T0 + kMs);
  CHECK(l.selected() == nullptr);
  CHECK_FALSE(pair_to(l, c[0].to.to_string()).nominated);
  const auto t = drain(l, T0 + 5 * kMs); // the triggered check
  REQUIRE(t.size() == 1);
  CHECK(t[0].to == c[0].to);
  CHECK_FALSE(t[0].use_candidate); // the controlled side never nominates
  answer(l, t[0], "203.0.113.1:6001", T0 + 6 * kMs);
  REQUIRE(l.selected());
  CHECK(l.selected()->remote.address == c[0].to);
  CHECK(l.selected()->nominated);
}

TEST_CASE("Controlled side selects at once when the nominated pair already succeeded", "[ice]") {
  auto l = started_list(false, {srflx("203.0.113.2:8000")});
  const auto c = drain(l, T0);
  answer(l, c[0], "203.0.113.1:6001", T0 + kMs);
  CHECK(l.selected() == nullptr); // succeeded but not nominated
  CHECK_FALSE(l.failed());
  l.on_request(c[0].to, 1, true, T0 + 2 * kMs);
  REQUIRE(l.selected());
  CHECK(drain(l, T0 + 2 * kMs).empty()); // no triggered check on a succeeded pair
}

TEST_CASE("Controlling side ignores USE-CANDIDATE from the peer", "[ice]") {
  auto l = started_list(true, {srflx("203.0.113.2:8000")});
  const auto c = drain(l, T0);
  answer(l, c[0], "203.0.113.1:6001", T0 + kMs);
  l.on_request(c[0].to, 1, true, T0 + 2 * kMs);
  CHECK(l.selected() == nullptr);
}

// --- simultaneous open through two NATs ---------------------------------------------------------

namespace {

// One host behind a NAT. Mapping is endpoint-independent or address-dependent (RFC 4787 §4.1),
// filtering address-dependent (§5): inbound passes only from an IP the mapping has sent to.
struct Site {
  Address inside;
  std::string public_ip;
  bool address_dependent_mapping;
  uint16_t first_port;
  std::map<std::string, uint16_t> ports;                // mapping key -> public port
  std::map<uint16_t, std::vector<std::string>> permits; // public port -> IPs sent to
  bool blocked = false;                                 // a firewall drops all inbound

  Address map_out(const Address& dst) {
    const std::string key = address_dependent_mapping ? dst.ip_string() : "*";
    auto it = ports.find(key);
    if (it == ports.end())
      it = ports.emplace(key, static_cast<uint16_t>(first_port + ports.size())).first;
    auto& p = permits[it->second];
    if (std::find(p.begin(), p.end(), dst.ip_string()) == p.end()) p.push_back(dst.ip_string());
    return addr(public_ip + ":" + std::to_string(it->second));
  }
  bool let_in(const Address& from, const Address& to) const {
    if (blocked || to.ip_string() != public_ip) return false;
    auto it = permits.find(to.port());
    return it != permits.end() &&
           std::find(it->second.begin(), it->second.end(), from.ip_string()) != it->second.end();
  }
};

struct Packet {
  Address src, dst; // on the wire between the NATs
  bool request;
  Tid tid;
  uint32_t priority;
  bool use_candidate;
  Address mapped;
  Timestamp arrive;
};

// Two check lists wired through two NATs, with a one-way delay of 10 ms. The caller's part
// (answering requests, STUN encoding) is played here. Optionally the first packet in each
// direction that would have got through is lost.
struct Sim {
  Sim(Site a, Site b, bool drop, bool aggressive)
      : lists{CheckList(aggressive_config(true, aggressive)), CheckList(config(false))},
        sites{std::move(a), std::move(b)}, drop_first(drop) {}

  CheckList lists[2];
  Site sites[2];
  bool drop_first;
  bool dropped[2] = {false, false};
  std::vector<std::pair<int, Packet>> wire; // (sender, packet), in arrival order
  int lost = 0, filtered = 0, unroutable = 0;

  void send(int from, const Address& dst, Packet p, Timestamp now) {
    const int to = 1 - from;
    if (dst.ip_string() != sites[to].public_ip) {
      ++unroutable; // a private or IPv6 address of the other LAN
      return;
    }
    p.src = sites[from].map_out(dst);
    p.dst = dst;
    p.arrive = now + 10 * kMs;
    wire.push_back({from, p});
  }

  void deliver_due(Timestamp now) {
    while (!wire.empty() && wire.front().second.arrive <= now) {
      auto [from, p] = wire.front();
      wire.erase(wire.begin());
      const int at = 1 - from;
      if (!sites[at].let_in(p.src, p.dst)) {
        ++filtered;
        continue;
      }
      if (drop_first && !dropped[from]) {
        dropped[from] = true;
        ++lost;
        continue;
      }
      if (p.request) {
        // RFC 8445 §7.3: answer from where it came, telling the sender what we saw.
        send(at, p.src, Packet{{}, {}, false, p.tid, 0, false, p.src, 0}, now);
        lists[at].on_request(p.src, p.priority, p.use_candidate, now);
      } else {
        lists[at].on_success_response(p.tid, p.src, p.mapped, now);
      }
    }
  }

  void flush(int i, Timestamp now) {
    while (auto c = lists[i].poll(now))
      send(i, c->to, Packet{{}, {}, true, c->transaction_id, c->priority, c->use_candidate, {}, 0},
           now);
  }

  // Runs until both lists select a pair; returns when, or kNever.
  Timestamp run(Timestamp start_a, Timestamp start_b, Timestamp limit) {
    const Timestamp starts[2] = {start_a, start_b};
    Timestamp now = std::min(start_a, start_b);
    for (int iter = 0; iter < 100'000; ++iter) {
      for (int i = 0; i < 2; ++i)
        if (now >= starts[i] && !lists[i].started()) lists[i].start(now);
      deliver_due(now);
      flush(0, now);
      flush(1, now);
      if (lists[0].selected() && lists[1].selected()) return now;
      Timestamp next = wire.empty() ? kNever : wire.front().second.arrive;
      for (int i = 0; i < 2; ++i) {
        if (!lists[i].started()) {
          next = std::min(next, starts[i]);
          continue;
        }
        REQUIRE(lists[i].next_timeout() > now); // poll() left nothing due
        next = std::min(next, lists[i].next_timeout());
      }
      if (next == kNever || next > limit) return kNever;
      now = next;
    }
    FAIL("simulation did not settle");
    return kNever;
  }
};

Sim make_sim(bool a_address_dependent, bool drop_first, bool aggressive) {
  Sim sim(Site{addr("10.0.0.1:5000"), "203.0.113.1", a_address_dependent, 6000, {}, {}},
          Site{addr("10.1.0.1:7000"), "203.0.113.2", false, 8000, {}, {}}, drop_first, aggressive);
  // Address discovery through the intermediate made each NAT's first mapping.
  const Address intermediate = addr("203.0.113.100:443");
  const Address a_srflx = sim.sites[0].map_out(intermediate);
  const Address b_srflx = sim.sites[1].map_out(intermediate);
  REQUIRE(a_srflx == addr("203.0.113.1:6000"));
  REQUIRE(b_srflx == addr("203.0.113.2:8000"));

  const std::vector<Address> a_if = {addr("10.0.0.1:0"), addr("[2001:db8:a::1]:0")};
  const std::vector<Address> b_if = {addr("10.1.0.1:0"), addr("[2001:db8:b::1]:0")};
  auto a_locals = host_candidates(a_if, 5000);
  a_locals.push_back(server_reflexive(a_srflx));
  auto b_locals = host_candidates(b_if, 7000);
  b_locals.push_back(server_reflexive(b_srflx));
  auto b_signaled = b_locals;
  b_signaled.push_back(cand(CandidateType::Relay, "203.0.113.100:443", 0));

  sim.lists[0].set_local_candidates(a_locals);
  sim.lists[1].set_local_candidates(b_locals);
  sim.lists[0].add_remote_candidates(b_signaled);
  sim.lists[1].add_remote_candidates(a_locals);
  return sim;
}

} // namespace

TEST_CASE("Simultaneous open through two NATs: both ends select the same path", "[ice]") {
  const bool drop_first = GENERATE(false, true);
  const Timestamp b_start = T0 + GENERATE(Timestamp{0}, 3 * kMs, 40 * kMs);
  const bool aggressive = GENERATE(false, true);
  INFO("drop first packets: " << drop_first << ", connector starts +" << (b_start - T0) / kMs
                              << " ms, aggressive nomination: " << aggressive);

  SECTION("address-dependent mapping at the agent: the connector learns a prflx candidate") {
    Sim sim = make_sim(true, drop_first, aggressive);
    const Timestamp done = sim.run(T0, b_start, T0 + 10'000 * kMs);
    REQUIRE(done != kNever);
    CHECK(done - T0 < 1'000 * kMs);
    const auto* a = sim.lists[0].selected();
    const auto* b = sim.lists[1].selected();
    REQUIRE(a);
    REQUIRE(b);
    // The agent's NAT gave its checks to the connector a new port; the connector learned it.
    CHECK(a->remote.address == addr("203.0.113.2:8000"));
    CHECK(a->remote.type == CandidateType::ServerReflexive);
    CHECK(b->remote.address == addr("203.0.113.1:6001"));
    CHECK(b->remote.type == CandidateType::PeerReflexive);
    // Each end's view of itself is the other's view of it: one path.
    REQUIRE(a->mapped);
    REQUIRE(b->mapped);
    CHECK(*a->mapped == b->remote.address);
    CHECK(*b->mapped == a->remote.address);
    CHECK(a->nominated);
    CHECK(b->nominated);
    CHECK(a->rtt == std::chrono::microseconds(20'000));
    const auto prflx = sim.lists[0].local_peer_reflexive();
    REQUIRE(prflx.size() == 1);
    CHECK(prflx[0].address == addr("203.0.113.1:6001"));
    CHECK(sim.lists[1].local_peer_reflexive().empty()); // it saw our srflx address
    CHECK(sim.lost == (drop_first ? 2 : 0));
    CHECK(sim.filtered > 0); // the connector's checks to the agent's srflx port
  }

  SECTION("endpoint-independent mapping on both sides: srflx to srflx") {
    Sim sim = make_sim(false, drop_first, aggressive);
    const Timestamp done = sim.run(T0, b_start, T0 + 10'000 * kMs);
    REQUIRE(done != kNever);
    CHECK(done - T0 < 1'000 * kMs);
    const auto* a = sim.lists[0].selected();
    const auto* b = sim.lists[1].selected();
    REQUIRE(a);
    REQUIRE(b);
    CHECK(a->remote.address == addr("203.0.113.2:8000"));
    CHECK(b->remote.address == addr("203.0.113.1:6000"));
    CHECK(b->remote.type == CandidateType::ServerReflexive);
    CHECK(*a->mapped == b->remote.address);
    CHECK(*b->mapped == a->remote.address);
    CHECK(sim.lists[0].local_peer_reflexive().empty());
    CHECK(sim.lost == (drop_first ? 2 : 0));
  }
}

TEST_CASE("Simultaneous open fails cleanly when nothing gets through", "[ice]") {
  Sim sim = make_sim(true, false, true);
  sim.sites[0].blocked = true;
  sim.sites[1].blocked = true;
  const Timestamp done = sim.run(T0, T0, T0 + 30'000 * kMs);
  CHECK(done == kNever);
  CHECK(sim.filtered > 0);
  CHECK(sim.lists[0].failed());
  CHECK(sim.lists[1].failed());
  // Every pair got its 7 transmissions, and no more: 6.35 s after its first check.
  for (const auto& l : sim.lists)
    for (const auto& p : l.pairs())
      CHECK(p.transmissions == 7);
}

TEST_CASE("Check list needs a random source", "[ice]") {
  CHECK_THROWS_AS(CheckList(CheckListConfig{}), std::invalid_argument);
}
