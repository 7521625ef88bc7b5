// Probes go only where they should (docs/security.md): ice::PathManager with hostile signaling.
// One manager, a scripted peer that signals what it likes and answers (or not) with valid
// credentials, and explicit time: no sockets, no sleeps.
#include <catch2/catch.hpp>

#include "ice/path_manager.hpp"
#include "wire/control_message.hpp"
#include "wire/stun_message.hpp"

#include <algorithm>
#include <string>
#include <vector>

using namespace ztna;
using namespace ztna::ice;

namespace {

constexpr Timestamp kMs = 1'000'000;
constexpr Timestamp kSec = 1000 * kMs;
constexpr uint64_t kSession = 0x5e55;
const std::string kPeerUfrag = "peer";
const std::string kPeerPassword = "peerpasswordpeerpassword";

Address addr(const std::string& text) {
  auto a = Address::parse(text);
  REQUIRE(a);
  return *a;
}

std::span<const uint8_t> bytes_of(const std::string& s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

struct Sent {
  Timestamp at;
  Address to;
  std::vector<uint8_t> bytes;
  wire::StunMessage m;
};

struct Recorder : PathEvents {
  Timestamp* now = nullptr;
  std::vector<Sent> stun;
  std::vector<wire::Candidates> signals;
  std::vector<Timestamp> signal_times;
  std::vector<std::string> notes;
  std::vector<Address> directs;
  int relays = 0;

  void send_stun(const Address& to, std::span<const uint8_t> d) override {
    std::string error;
    auto m = wire::parse_stun(d, error);
    REQUIRE(m);
    stun.push_back({*now, to, {d.begin(), d.end()}, *m});
  }
  void send_candidates(const wire::Candidates& m) override {
    signals.push_back(m);
    signal_times.push_back(*now);
  }
  void use_direct(const Address& remote, const std::string&) override { directs.push_back(remote); }
  void use_relay(const std::string&) override { relays++; }
  void note(const std::string& line) override { notes.push_back(line); }
};

// Our manager and a peer we script by hand.
struct Solo {
  Timestamp now = 1000 * kSec;
  Recorder ev;
  std::unique_ptr<PathManager> pm;
  uint64_t rng = 0x9e3779b97f4a7c15ull;

  explicit Solo(bool controlling) {
    ev.now = &now;
    PathManagerConfig c;
    c.controlling = controlling;
    c.session_id = kSession;
    c.random = [this](std::span<uint8_t> out) {
      for (auto& b : out) {
        rng = rng * 6364136223846793005ull + 1442695040888963407ull;
        b = static_cast<uint8_t>(rng >> 56);
      }
    };
    pm = std::make_unique<PathManager>(c, ev, now);
    pm->set_local_candidates({{CandidateType::Host, addr("192.0.2.20:6000"),
                               candidate_priority(CandidateType::Host, 32767)},
                              {CandidateType::Host, addr("[2001:db8::20]:6000"),
                               candidate_priority(CandidateType::Host, 65535)}},
                             now);
  }

  static wire::Candidates peer(uint32_t generation, const std::vector<std::string>& addresses,
                               uint16_t padding = 0) {
    wire::Candidates m{kSession, generation, kPeerUfrag, kPeerPassword, {}, padding};
    for (const auto& a : addresses)
      m.candidates.push_back({1, candidate_priority(CandidateType::Host, 100), addr(a)});
    return m;
  }

  // Runs the manager's timers until `until`, as the I/O shell does.
  void run_until(Timestamp until) {
    for (int guard = 0; guard < 1'000'000; ++guard) {
      const Timestamp next = pm->next_timeout();
      if (next > until) {
        now = until;
        return;
      }
      now = std::max(now, next);
      pm->handle_timeout(now);
    }
    FAIL("timers do not advance");
  }
  void run_for(Timestamp d) { run_until(now + d); }

  // An authentic request from the peer, arriving from `from`.
  PathManager::StunResult request_from(const Address& from, bool use_candidate = false) {
    wire::StunMessage req;
    req.cls = wire::StunClass::Request;
    for (size_t i = 0; i < req.transaction_id.size(); ++i)
      req.transaction_id[i] = static_cast<uint8_t>(0xa0 + i + (rng & 0x0f));
    rng++;
    req.username = pm->local_ufrag() + ":" + kPeerUfrag;
    req.priority = candidate_priority(CandidateType::PeerReflexive, 100);
    req.use_candidate = use_candidate;
    req.ice_controlling = 1;
    const auto bytes = wire::encode_stun(req, bytes_of(pm->local_password()));
    std::string error;
    auto m = wire::parse_stun(bytes, error);
    REQUIRE(m);
    return pm->on_stun(from, bytes, *m, now);
  }

  // The peer answers check `s` (authentically) from where it went.
  PathManager::StunResult answer(const Sent& s) {
    wire::StunMessage resp;
    resp.cls = wire::StunClass::SuccessResponse;
    resp.transaction_id = s.m.transaction_id;
    resp.xor_mapped_address = addr("192.0.2.20:6000");
    const auto bytes = wire::encode_stun(resp, bytes_of(kPeerPassword));
    std::string error;
    auto m = wire::parse_stun(bytes, error);
    REQUIRE(m);
    return pm->on_stun(s.to, bytes, *m, now);
  }

  // Requests we sent (checks and consent), not answers.
  std::vector<const Sent*> requests() const {
    std::vector<const Sent*> out;
    for (const auto& s : ev.stun)
      if (s.m.cls == wire::StunClass::Request) out.push_back(&s);
    return out;
  }
};

const std::vector<std::string> kForbidden = {
    "127.0.0.1:5000", "169.254.169.254:80",      "224.0.0.251:5353",
    "[::1]:5000",     "[fe80::1]:5000",          "[ff02::1]:5000",
    "0.0.0.0:5000",   "[::ffff:127.0.0.1]:5000", "198.51.100.7:0",
};
const std::string kLegit = "198.51.100.7:5000";

} // namespace

namespace Catch {
template <> struct StringMaker<ztna::Address> {
  static std::string convert(const ztna::Address& a) { return a.to_string(); }
};
} // namespace Catch

TEST_CASE("Forbidden candidates never reach send_stun, and are counted and noted once",
          "[path][filter]") {
  const bool controlling = GENERATE(false, true);
  INFO("controlling " << controlling);
  Solo solo(controlling);
  auto mine = controlling ? 1u : 0u; // the agent opened round 1 itself
  REQUIRE(solo.ev.signals.size() == mine);

  auto hostile = kForbidden;
  hostile.push_back(kLegit);
  solo.pm->on_candidates(Solo::peer(1, hostile, 2000), solo.now);
  REQUIRE(solo.ev.notes.size() == 1);
  // Only the candidate that passed is a remote candidate (and shows in status).
  REQUIRE(solo.pm->remote_candidates().size() == 1);
  CHECK(solo.pm->remote_candidates()[0].address == addr(kLegit));
  // More of the same round (trickle): counted, but no second note.
  solo.pm->on_candidates(Solo::peer(1, {"127.0.0.2:1"}), solo.now);
  CHECK(solo.ev.notes.size() == 1);
  solo.pm->on_start_checks(1, solo.now);
  solo.run_for(10 * kSec);

  const auto& c = solo.pm->counters();
  CHECK(c.candidates_refused == kForbidden.size() + 1);
  CHECK(c.refused_by_reason[static_cast<size_t>(ProbeRefusal::Loopback)] == 4);
  CHECK(c.refused_by_reason[static_cast<size_t>(ProbeRefusal::Metadata)] == 1);
  CHECK(c.refused_by_reason[static_cast<size_t>(ProbeRefusal::Multicast)] == 2);
  CHECK(c.refused_by_reason[static_cast<size_t>(ProbeRefusal::LinkLocal)] == 1);
  CHECK(c.refused_by_reason[static_cast<size_t>(ProbeRefusal::Unspecified)] == 1);
  CHECK(c.refused_by_reason[static_cast<size_t>(ProbeRefusal::PortZero)] == 1);
  // The legitimate candidate was checked, six times, and nothing else was.
  REQUIRE_FALSE(solo.ev.stun.empty());
  CHECK(solo.ev.stun.size() == 6);
  for (const auto& s : solo.ev.stun) {
    CHECK(s.to == addr(kLegit));
    CHECK(may_probe(s.to));
  }
  // One note, three addresses at most.
  REQUIRE(solo.ev.notes.size() >= 1);
  const auto& note = solo.ev.notes[0];
  CHECK(note.find("round 1: refused 9 of the peer's 10 candidates") != std::string::npos);
  CHECK(note.find("loopback 127.0.0.1:5000") != std::string::npos);
  CHECK(note.find("metadata 169.254.169.254:80") != std::string::npos);
  CHECK(note.find("multicast 224.0.0.251:5353") != std::string::npos);
  CHECK(note.find("and 6 more") != std::string::npos);
  CHECK(note.find("[::1]") == std::string::npos);
}

TEST_CASE("Authentic requests from forbidden sources get no answer and teach nothing",
          "[path][filter]") {
  Solo solo(false);
  solo.pm->on_candidates(Solo::peer(1, {kLegit}, 2000), solo.now);
  solo.pm->on_start_checks(1, solo.now);
  solo.ev.stun.clear();
  for (const std::string from : {"127.0.0.1:5000", "[::ffff:127.0.0.1]:5000", "[::1]:5000",
                                 "169.254.169.254:80", "224.0.0.251:5353", "[fe80::1]:5000"}) {
    INFO(from);
    CHECK(solo.request_from(addr(from)) == PathManager::StunResult::Handled);
    CHECK_FALSE(solo.pm->is_validated(addr(from)));
  }
  solo.run_for(10 * kSec);
  for (const auto& s : solo.ev.stun)
    CHECK(s.to == addr(kLegit));
  CHECK(solo.pm->counters().candidates_refused == 6);
  CHECK(solo.pm->counters().checks_answered == 0);
  for (const auto& p : solo.pm->checks()->pairs())
    CHECK(p.remote.address == addr(kLegit)); // no peer-reflexive pair
  // A legitimate source is answered, validated, and learned (peer-reflexive).
  CHECK(solo.request_from(addr("198.51.100.8:7000")) == PathManager::StunResult::Handled);
  CHECK(solo.pm->counters().checks_answered == 1);
  CHECK(solo.pm->is_validated(addr("198.51.100.8:7000")));
}

TEST_CASE("Checks go only to the current round's candidates", "[path][filter]") {
  Solo solo(false);
  solo.pm->on_candidates(Solo::peer(1, {"198.51.100.1:5000"}, 2000), solo.now);
  solo.pm->on_start_checks(1, solo.now);
  solo.run_for(2 * kSec);
  // Round 2 names another candidate: the first one gets nothing more, not even retransmissions.
  solo.pm->on_candidates(Solo::peer(2, {"198.51.100.2:5000"}, 2000), solo.now);
  REQUIRE(solo.pm->generation() == 2);
  solo.pm->on_start_checks(2, solo.now);
  const Timestamp switched = solo.now;
  solo.run_for(10 * kSec);
  for (const auto& s : solo.ev.stun)
    if (s.at >= switched) CHECK(s.to == addr("198.51.100.2:5000"));
}

TEST_CASE("Checks toward unvalidated addresses spend at most 3x the peer's signaling",
          "[path][budget]") {
  Solo solo(false);
  // Little padding: the frame buys a few checks, not the six a candidate needs.
  const auto m = Solo::peer(1, {kLegit}, 100);
  const size_t frame = wire::encoded_size(m);
  CHECK(frame == wire::encode_control(m).size());
  solo.pm->on_candidates(m, solo.now);
  solo.pm->on_start_checks(1, solo.now);
  solo.run_for(10 * kSec);

  const auto sent = solo.requests();
  REQUIRE_FALSE(sent.empty());
  const size_t check = sent[0]->bytes.size();
  for (const auto* s : sent)
    CHECK(s->bytes.size() == check);
  const auto& c = solo.pm->counters();
  CHECK(c.signaling_bytes == frame);
  CHECK(sent.size() == 3 * frame / check);
  CHECK(c.unvalidated_bytes == sent.size() * check);
  CHECK(c.unvalidated_bytes <= 3 * frame);
  CHECK(sent.size() < 6);
  CHECK(c.checks_over_budget == 6 - sent.size());
  CHECK(solo.pm->budget_left() == 3 * frame - sent.size() * check);
  INFO("frame " << frame << ", check " << check << ", sent " << sent.size());
}

TEST_CASE("Padding buys exactly the checks a sender's candidates need", "[path][budget]") {
  SECTION("arithmetic") {
    auto m = Solo::peer(7, {"198.51.100.1:1"});
    // One candidate: 1 x 6 x 100 bytes of checks need a 200-byte frame.
    m.padding = candidate_padding(m, 6);
    CHECK(wire::encoded_size(m) == 200);
    // Three: 1800 bytes of checks, a 600-byte frame.
    m = Solo::peer(7, {"198.51.100.1:1", "198.51.100.2:1", "[2001:db8::1]:1"});
    m.padding = candidate_padding(m, 6);
    CHECK(wire::encoded_size(m) == 600);
    // Sixteen IPv6 ones (the most a message holds): 9600 bytes, a 3200-byte frame.
    std::vector<std::string> many;
    for (int i = 0; i < 16; ++i)
      many.push_back("[2001:db8::" + std::to_string(i + 1) + "]:5000");
    m = Solo::peer(7, many);
    m.padding = candidate_padding(m, 6);
    CHECK(wire::encoded_size(m) == 3200);
    CHECK(wire::encode_control(m).size() == 3200);
    // Capped so the payload stays within 4096 bytes: the frame is then exactly the largest.
    m.padding = candidate_padding(m, 100);
    CHECK(wire::encoded_size(m) == wire::kMaxControlFrame);
    CHECK(wire::encode_control(m).size() == wire::kMaxControlFrame);
    // Nothing to check, nothing to buy; a message bigger than its need is not padded.
    m = Solo::peer(7, {});
    CHECK(candidate_padding(m, 6) == 0);
    m = Solo::peer(7, {"198.51.100.1:1"});
    CHECK(candidate_padding(m, 0) == 0);
  }
  SECTION("the largest check we send is kLargestCheck bytes") {
    wire::StunMessage req;
    req.cls = wire::StunClass::Request;
    req.username = "abcdefgh:ABCDEFGH"; // our ufrags have 8 characters
    req.priority = 0xffffffff;
    req.use_candidate = true;
    req.ice_controlling = ~0ull;
    const std::string password(24, 'p');
    CHECK(wire::encode_stun(req, bytes_of(password)).size() == kLargestCheck);
  }
  SECTION("our own Candidates are padded so the peer can send every check") {
    Solo agent(true);
    REQUIRE(agent.ev.signals.size() == 1);
    const auto& ours = agent.ev.signals[0];
    CHECK(ours.candidates.size() == 2);
    CHECK(wire::encoded_size(ours) == 2 * 6 * kLargestCheck / 3);
    // A peer of ours receiving it: both candidates get all six checks, nothing over budget.
    Solo peer(false);
    auto relayed = ours;
    relayed.candidates[0].address = addr("198.51.100.1:5000");   // documentation addresses,
    relayed.candidates[1].address = addr("[2001:db8::99]:5000"); // same sizes
    peer.pm->on_candidates(relayed, peer.now);
    peer.pm->on_start_checks(1, peer.now);
    peer.run_for(10 * kSec);
    CHECK(peer.requests().size() == 12);
    CHECK(peer.pm->counters().checks_over_budget == 0);
    CHECK(peer.pm->counters().unvalidated_bytes <= 3 * wire::encoded_size(ours));
  }
}

TEST_CASE("Validated addresses do not spend the budget", "[path][budget]") {
  Solo solo(true); // the agent: it nominates and, once direct, runs consent
  solo.pm->on_handshake_confirmed(solo.now);
  solo.pm->on_candidates(Solo::peer(1, {kLegit}), solo.now); // no padding: a tiny budget
  solo.pm->on_start_checks(1, solo.now);
  solo.run_for(1 * kMs);
  auto sent = solo.requests();
  REQUIRE(sent.size() == 1);
  const uint64_t spent = solo.pm->counters().unvalidated_bytes;
  CHECK(spent == sent[0]->bytes.size());
  CHECK_FALSE(solo.pm->is_validated(addr(kLegit)));
  // The authentic answer validates the address, and selects the pair: the check carried
  // USE-CANDIDATE (aggressive nomination).
  CHECK(sent[0]->m.use_candidate);
  CHECK(solo.answer(*sent[0]) == PathManager::StunResult::Handled);
  CHECK(solo.pm->is_validated(addr(kLegit)));
  REQUIRE(solo.ev.directs.size() == 1);
  solo.pm->on_path_validated(true, true, solo.now);
  CHECK(solo.pm->active() == ActivePath::Direct);
  CHECK(solo.pm->counters().unvalidated_bytes == spent);

  // Consent for a minute, each request answered: many requests, not one byte of budget.
  const uint64_t left = solo.pm->budget_left();
  for (int i = 0; i < 60; ++i) {
    const size_t before = solo.ev.stun.size();
    solo.run_for(1 * kSec);
    for (size_t k = before; k < solo.ev.stun.size(); ++k)
      solo.answer(solo.ev.stun[k]);
  }
  CHECK(solo.pm->counters().consent_requests >= 45);
  CHECK(solo.pm->counters().unvalidated_bytes == spent);
  CHECK(solo.pm->budget_left() == left);
  CHECK(solo.pm->active() == ActivePath::Direct);

  // An authentic request validates its source too: the triggered check back is free.
  Solo other(false);
  other.pm->on_candidates(Solo::peer(1, {kLegit}), other.now);
  other.pm->on_start_checks(1, other.now);
  other.run_for(1 * kMs);
  const uint64_t before = other.pm->counters().unvalidated_bytes;
  CHECK(other.request_from(addr("198.51.100.50:9000")) == PathManager::StunResult::Handled);
  other.run_for(20 * kMs);
  bool triggered = false;
  for (const auto* s : other.requests())
    triggered = triggered || s->to == addr("198.51.100.50:9000");
  CHECK(triggered);
  CHECK(other.pm->counters().unvalidated_bytes == before);
}

TEST_CASE("Consent loss makes the dead address spend again", "[path][budget]") {
  Solo solo(true);
  solo.pm->on_handshake_confirmed(solo.now);
  solo.pm->on_candidates(Solo::peer(1, {kLegit}, 500), solo.now);
  solo.pm->on_start_checks(1, solo.now);
  solo.run_for(1 * kMs);
  solo.answer(*solo.requests().at(0));
  REQUIRE(solo.ev.directs.size() == 1);
  solo.pm->on_path_validated(true, true, solo.now);
  REQUIRE(solo.pm->is_validated(addr(kLegit)));
  solo.run_for(10 * kSec); // nothing answers: consent is lost
  REQUIRE(solo.ev.relays == 1);
  CHECK_FALSE(solo.pm->is_validated(addr(kLegit)));
}

TEST_CASE("Rounds are rate-limited under a flood of new generations", "[path][rounds]") {
  Solo solo(false);
  const Timestamp t0 = solo.now;
  // A hostile peer opens a new round every 10 ms for three minutes, padded to the maximum, and
  // the intermediate starts each one (as if we had joined it at once).
  uint32_t g = 0;
  uint64_t signalled = 0;
  for (Timestamp t = t0; t < t0 + 180 * kSec; t += 10 * kMs) {
    solo.run_until(t);
    auto m = Solo::peer(++g, {"198.51.100." + std::to_string(g % 200 + 1) + ":5000"}, 3000);
    signalled += wire::encoded_size(m);
    solo.pm->on_candidates(m, solo.now);
    // StartChecks for whatever round we joined (the intermediate's coordinator would wait for
    // both ends; starting every round we joined is the worst case for us).
    solo.pm->on_start_checks(solo.pm->generation(), solo.now);
  }
  solo.run_until(t0 + 180 * kSec);

  // We joined a round at once, then at most once a second and 20 times a minute.
  const auto& times = solo.ev.signal_times;
  REQUIRE(times.size() >= 3);
  CHECK(times[0] == t0);
  for (size_t i = 1; i < times.size(); ++i)
    CHECK(times[i] - times[i - 1] >= kMinRoundInterval.count() * kMs);
  for (size_t i = 0; i < times.size(); ++i) {
    size_t in_window = 0;
    for (size_t k = i; k < times.size() && times[k] < times[i] + 60 * kSec; ++k)
      in_window++;
    CHECK(in_window <= kMaxRoundsPerMinute);
  }
  CHECK(times.size() <= 3 * kMaxRoundsPerMinute + 1); // the last at exactly 180 s
  CHECK(solo.pm->counters().rounds == times.size());
  CHECK(solo.pm->counters().rounds_deferred >= times.size() - 1);
  // Each round we joined is the newest the peer had sent when the limit allowed it.
  CHECK(solo.ev.signals.back().generation > times.size());
  // Probes: one candidate per round, six transmissions at most, within the budget.
  CHECK(solo.ev.stun.size() <= times.size() * 6);
  CHECK(solo.pm->counters().signaling_bytes == signalled);
  CHECK(solo.pm->counters().unvalidated_bytes <= 3 * signalled);
}

TEST_CASE("Our own rounds wait for the limit; the very first starts at once", "[path][rounds]") {
  Solo solo(true);
  const Timestamp t0 = solo.now;
  REQUIRE(solo.ev.signals.size() == 1); // round 1 at once
  CHECK(solo.ev.signal_times[0] == t0);
  // Our candidates change three times within the second: one round, with the last set, when
  // the second is up.
  for (int i = 1; i <= 3; ++i) {
    solo.now = t0 + static_cast<Timestamp>(i) * 100 * kMs;
    solo.pm->set_local_candidates(
        {{CandidateType::Host, addr("192.0.2." + std::to_string(i) + ":6000"),
          candidate_priority(CandidateType::Host, 1)}},
        solo.now);
  }
  CHECK(solo.ev.signals.size() == 1);
  CHECK(solo.pm->next_timeout() == t0 + 1 * kSec);
  solo.run_until(t0 + 1 * kSec);
  REQUIRE(solo.ev.signals.size() == 2);
  CHECK(solo.ev.signal_times[1] == t0 + 1 * kSec);
  CHECK(solo.ev.signals[1].generation == 2);
  REQUIRE(solo.ev.signals[1].candidates.size() == 1);
  CHECK(solo.ev.signals[1].candidates[0].address == addr("192.0.2.3:6000"));
  CHECK(solo.pm->counters().rounds_deferred == 1);

  // Changes in a loop for two minutes: never more than 20 rounds in a minute.
  for (int i = 0; i < 12'000; ++i) {
    solo.run_until(solo.now + 10 * kMs);
    solo.pm->set_local_candidates(
        {{CandidateType::Host, addr(i % 2 ? "192.0.2.1:6000" : "192.0.2.2:6000"),
          candidate_priority(CandidateType::Host, 1)}},
        solo.now);
  }
  const auto& times = solo.ev.signal_times;
  for (size_t i = 1; i < times.size(); ++i)
    CHECK(times[i] - times[i - 1] >= 1 * kSec);
  for (size_t i = 0; i < times.size(); ++i) {
    size_t in_window = 0;
    for (size_t k = i; k < times.size() && times[k] < times[i] + 60 * kSec; ++k)
      in_window++;
    CHECK(in_window <= kMaxRoundsPerMinute);
  }
}

TEST_CASE("A round sends at most kMaxChecksPerRound checks", "[path][rounds]") {
  Solo solo(false);
  // 32 candidates (two messages of 16), generously padded: every first check fits the budget.
  std::vector<std::string> a, b;
  for (int i = 0; i < 16; ++i) {
    a.push_back("198.51.100." + std::to_string(i + 1) + ":5000");
    b.push_back("203.0.113." + std::to_string(i + 1) + ":5000");
  }
  solo.pm->on_candidates(Solo::peer(1, a, 3800), solo.now);
  solo.pm->on_candidates(Solo::peer(1, b, 3800), solo.now);
  solo.pm->on_start_checks(1, solo.now);
  solo.run_for(1 * kSec); // five transmissions to each pair so far
  CHECK(solo.requests().size() == 32 * 5);
  // The peer restarts every check with a request from its address: six more each (free: the
  // source is validated now), 352 in all, over the cap.
  for (const auto& x : a)
    solo.request_from(addr(x));
  for (const auto& x : b)
    solo.request_from(addr(x));
  solo.run_for(10 * kSec);
  CHECK(solo.requests().size() == kMaxChecksPerRound);
  CHECK(solo.pm->counters().checks_sent == kMaxChecksPerRound);
  CHECK(solo.pm->counters().checks_over_round_cap > 0);
}
