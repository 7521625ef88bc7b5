// ice::PathManager on both ends of a session, wired through an in-memory signaling channel (the
// intermediate's CheckCoordinator) and an in-memory network that can be cut and restored.
// Simulated time: no sockets, no sleeps.
#include <catch2/catch.hpp>

#include "control/check_coordinator.hpp"
#include "ice/path_manager.hpp"

#include <map>
#include <random>

using namespace ztna;
using namespace ztna::ice;

namespace {

constexpr Timestamp kMs = 1'000'000;
constexpr uint64_t kSession = 0xABCDEF;

struct Datagram {
  Address from, to;
  std::vector<uint8_t> bytes;
};

struct Side : PathEvents {
  Address host;
  std::unique_ptr<PathManager> pm;
  std::vector<wire::Candidates> signals;
  std::vector<Address> directs;
  int relays = 0;
  std::vector<std::string> notes;
  std::vector<Datagram>* wire = nullptr;

  void send_stun(const Address& to, std::span<const uint8_t> d) override {
    wire->push_back({host, to, {d.begin(), d.end()}});
  }
  void send_candidates(const wire::Candidates& m) override { signals.push_back(m); }
  void use_direct(const Address& remote, const std::string&) override { directs.push_back(remote); }
  void use_relay(const std::string&) override { relays++; }
  void note(const std::string& line) override { notes.push_back(line); }
};

struct Lab {
  std::mt19937 rng{42};
  Timestamp now = 1000 * kMs;
  std::vector<Datagram> in_flight;
  bool cut = false;
  uint64_t delivered = 0;
  CheckCoordinator coordinator;
  Side agent, connector;

  explicit Lab(bool immediate_migration = true, uint8_t agent_nat = 0, uint8_t connector_nat = 0) {
    agent.host = *Address::parse("192.0.2.10:5000");
    connector.host = *Address::parse("192.0.2.20:6000");
    for (auto* s : {&agent, &connector}) {
      s->wire = &in_flight;
      PathManagerConfig c;
      c.controlling = s == &agent;
      c.session_id = kSession;
      c.immediate_migration = immediate_migration;
      c.local_nat = s == &agent ? agent_nat : connector_nat;
      c.random = [this](std::span<uint8_t> out) {
        for (auto& b : out)
          b = static_cast<uint8_t>(rng());
      };
      s->pm = std::make_unique<PathManager>(c, *s, now);
    }
  }

  // What the intermediate does with Candidates: forward to the other end, start rounds.
  void signal() {
    for (bool progress = true; progress;) {
      progress = false;
      for (auto* s : {&agent, &connector}) {
        auto* other = s == &agent ? &connector : &agent;
        auto msgs = std::move(s->signals);
        s->signals.clear();
        for (auto& m : msgs) {
          progress = true;
          other->pm->on_candidates(m, now);
          auto end = s == &agent ? CheckCoordinator::End::Agent : CheckCoordinator::End::Connector;
          if (coordinator.on_candidates(kSession, end, m.generation)) {
            agent.pm->on_start_checks(m.generation, now);
            connector.pm->on_start_checks(m.generation, now);
          }
        }
      }
    }
  }

  void deliver() {
    auto batch = std::move(in_flight);
    in_flight.clear();
    for (auto& d : batch) {
      if (cut) continue;
      Side* to = d.to == agent.host ? &agent : d.to == connector.host ? &connector : nullptr;
      if (!to) continue;
      std::string error;
      auto m = wire::parse_stun(d.bytes, error);
      REQUIRE(m);
      delivered++;
      to->pm->on_stun(d.from, d.bytes, *m, now);
    }
  }

  // Advances in 1 ms steps (the one-way delay), firing timers on the way.
  void run_for(Timestamp duration, const std::function<bool()>& until = nullptr) {
    const Timestamp end = now + duration;
    while (now < end) {
      signal();
      deliver();
      if (until && until()) return;
      now += kMs;
      for (auto* s : {&agent, &connector})
        if (s->pm->next_timeout() <= now) s->pm->handle_timeout(now);
    }
  }

  void start() {
    agent.pm->set_local_candidates(
        {{CandidateType::Host, agent.host, candidate_priority(CandidateType::Host, 65535)}}, now);
    connector.pm->set_local_candidates(
        {{CandidateType::Host, connector.host, candidate_priority(CandidateType::Host, 65535)}},
        now);
    agent.pm->on_handshake_confirmed(now);
  }
};

} // namespace

TEST_CASE("path manager: relay -> direct after one round", "[path]") {
  Lab lab;
  lab.start();
  lab.run_for(2000 * kMs, [&] { return !lab.agent.directs.empty(); });
  REQUIRE(lab.agent.directs.size() == 1);
  CHECK(lab.agent.directs[0] == lab.connector.host);
  CHECK(lab.connector.directs.empty());               // the controlled side never migrates
  CHECK(lab.agent.pm->active() == ActivePath::Relay); // until QUIC validates the path
  const Timestamp moved = lab.now;
  lab.run_for(2 * kMs); // the validation takes a round trip
  lab.agent.pm->on_path_validated(true, true, lab.now);
  CHECK(lab.agent.pm->active() == ActivePath::Direct);
  CHECK(lab.agent.pm->counters().upgrades == 1);
  // Immediate migration (the default): data went direct at the move, validated a round later.
  REQUIRE(lab.agent.pm->time_to_direct());
  REQUIRE(lab.agent.pm->time_to_validated());
  CHECK(lab.agent.pm->time_to_direct()->count() > 0);
  CHECK(*lab.agent.pm->time_to_validated() - *lab.agent.pm->time_to_direct() ==
        std::chrono::microseconds((lab.now - moved) / 1000));
  CHECK(lab.agent.pm->generation() == 1);
  CHECK(lab.connector.pm->generation() == 1);
  // The connector saw the nomination.
  REQUIRE(lab.connector.pm->checks());
  REQUIRE(lab.connector.pm->checks()->selected());
  CHECK(lab.connector.pm->checks()->selected()->remote.address == lab.agent.host);
}

TEST_CASE("path manager: without immediate migration, data goes direct once validated", "[path]") {
  Lab lab(false);
  lab.start();
  lab.run_for(2000 * kMs, [&] { return !lab.agent.directs.empty(); });
  REQUIRE(lab.agent.directs.size() == 1);
  lab.run_for(2 * kMs);
  lab.agent.pm->on_path_validated(true, true, lab.now);
  REQUIRE(lab.agent.pm->time_to_direct());
  CHECK(lab.agent.pm->time_to_direct() == lab.agent.pm->time_to_validated());
}

TEST_CASE("path manager: two hard NATs settle on the relay at once, without checks", "[path]") {
  // Address-and-port-dependent mapping with random ports (nat::to_wire): 4 << 4 | 3 << 2 | 3.
  constexpr uint8_t kHard = 0x4F;
  // The same with a sequential allocator: predictable, so not hard.
  constexpr uint8_t kSequential = 0x4B;
  SECTION("both hard") {
    Lab lab(true, kHard, kHard);
    lab.start();
    lab.run_for(20 * kMs);
    for (auto* s : {&lab.agent, &lab.connector}) {
      INFO((s == &lab.agent ? "agent" : "connector"));
      CHECK(s->pm->counters().checks_sent == 0);
      CHECK(s->pm->counters().candidates_unreachable == 1);
      CHECK(std::string(s->pm->phase()) == "relay");
      CHECK(s->pm->next_timeout() == kNever); // no retry: nothing could work
      REQUIRE_FALSE(s->notes.empty());
      CHECK(s->notes.back() == "no direct path can exist in round 1; staying on the relay "
                               "without checks");
    }
    CHECK(lab.agent.directs.empty());
  }
  SECTION("one side sequential: checks as usual") {
    Lab lab(true, kHard, kSequential);
    lab.start();
    lab.run_for(2000 * kMs, [&] { return !lab.agent.directs.empty(); });
    CHECK(lab.agent.directs.size() == 1);
    CHECK(lab.agent.pm->counters().candidates_unreachable == 0);
  }
}

TEST_CASE("path manager: no migration before the handshake is confirmed", "[path]") {
  Lab lab;
  lab.agent.pm->set_local_candidates(
      {{CandidateType::Host, lab.agent.host, candidate_priority(CandidateType::Host, 1)}}, lab.now);
  lab.connector.pm->set_local_candidates(
      {{CandidateType::Host, lab.connector.host, candidate_priority(CandidateType::Host, 1)}},
      lab.now);
  lab.run_for(500 * kMs);
  CHECK(lab.agent.directs.empty());
  lab.agent.pm->on_handshake_confirmed(lab.now);
  CHECK(lab.agent.directs.size() == 1);
}

TEST_CASE("path manager: consent loss falls back, recovery upgrades again", "[path]") {
  Lab lab;
  lab.start();
  lab.run_for(2000 * kMs, [&] { return !lab.agent.directs.empty(); });
  REQUIRE(lab.agent.directs.size() == 1);
  lab.agent.pm->on_path_validated(true, true, lab.now);

  // Consent keeps flowing while the path is up.
  lab.run_for(10'000 * kMs);
  CHECK(lab.agent.relays == 0);
  CHECK(lab.agent.pm->counters().consent_requests >= 8);
  CHECK(lab.agent.pm->direct_rtt());

  // Cut: consent expires within its timeout (4 s) plus one interval.
  lab.cut = true;
  const Timestamp cut_at = lab.now;
  lab.run_for(10'000 * kMs, [&] { return lab.agent.relays > 0; });
  REQUIRE(lab.agent.relays == 1);
  CHECK(lab.now - cut_at <= 5'500 * kMs);
  CHECK(lab.agent.pm->active() == ActivePath::Relay);
  CHECK(lab.agent.pm->counters().fallbacks == 1);

  // While cut, retries fail and back off; once restored, a retry finds the path again.
  lab.run_for(5'000 * kMs);
  CHECK(lab.agent.directs.size() == 1);
  lab.cut = false;
  lab.run_for(30'000 * kMs, [&] { return lab.agent.directs.size() == 2; });
  REQUIRE(lab.agent.directs.size() == 2);
  CHECK(lab.agent.pm->generation() >= 2);
  lab.agent.pm->on_path_validated(true, true, lab.now);
  CHECK(lab.agent.pm->counters().upgrades == 2);
}

TEST_CASE("path manager: failed path validation stays on relay and retries", "[path]") {
  Lab lab;
  lab.start();
  lab.run_for(2000 * kMs, [&] { return !lab.agent.directs.empty(); });
  REQUIRE(lab.agent.directs.size() == 1);
  lab.agent.pm->on_path_validated(true, false, lab.now);
  CHECK(lab.agent.pm->active() == ActivePath::Relay);
  lab.run_for(20'000 * kMs, [&] { return lab.agent.directs.size() == 2; });
  CHECK(lab.agent.directs.size() == 2);
}

TEST_CASE("path manager: new local candidates restart the checks", "[path]") {
  Lab lab;
  lab.start();
  lab.run_for(2000 * kMs, [&] { return !lab.agent.directs.empty(); });
  lab.agent.pm->on_path_validated(true, true, lab.now);
  // The connector's reflexive address appears (it learned it late): a new round, opened by it.
  lab.connector.pm->set_local_candidates(
      {{CandidateType::Host, lab.connector.host, candidate_priority(CandidateType::Host, 65535)},
       {CandidateType::ServerReflexive, *Address::parse("203.0.113.9:7000"),
        candidate_priority(CandidateType::ServerReflexive, 65535)}},
      lab.now);
  lab.run_for(2000 * kMs);
  CHECK(lab.agent.pm->generation() == 2);
  CHECK(lab.connector.pm->generation() == 2);
  // Same best pair: the session stays where it is, no second migration.
  CHECK(lab.agent.directs.size() == 1);
  CHECK(lab.agent.pm->active() == ActivePath::Direct);
}

TEST_CASE("path manager: unauthenticated checks are dropped and counted", "[path]") {
  Lab lab;
  lab.start();
  lab.run_for(2000 * kMs, [&] { return !lab.agent.directs.empty(); });
  wire::StunMessage forged;
  forged.cls = wire::StunClass::Request;
  forged.transaction_id = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
  forged.username = lab.connector.pm->local_ufrag() + ":attacker";
  forged.priority = 1;
  const std::string wrong = "not-the-password-at-all";
  const auto bytes = wire::encode_stun(
      forged, std::span(reinterpret_cast<const uint8_t*>(wrong.data()), wrong.size()));
  std::string error;
  auto m = wire::parse_stun(bytes, error);
  REQUIRE(m);
  const auto before = lab.in_flight.size();
  CHECK(lab.connector.pm->on_stun(*Address::parse("198.51.100.66:1"), bytes, *m, lab.now) ==
        PathManager::StunResult::Unauthenticated);
  CHECK(lab.connector.pm->counters().stun_unauthenticated == 1);
  CHECK(lab.in_flight.size() == before); // no answer: no reflection, no amplification
  // A response for a transaction we never sent is not ours at all.
  forged.cls = wire::StunClass::SuccessResponse;
  forged.xor_mapped_address = lab.agent.host;
  const auto resp = wire::encode_stun(forged, {});
  auto r = wire::parse_stun(resp, error);
  REQUIRE(r);
  CHECK(lab.agent.pm->on_stun(lab.connector.host, resp, *r, lab.now) ==
        PathManager::StunResult::NotMine);
}
