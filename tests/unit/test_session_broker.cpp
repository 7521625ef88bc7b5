// broker::SessionBroker: registration, policy, sessions, authorizations, signaling, relay and the
// bounds on untrusted input, driven with explicit time and no sockets.
#include <catch2/catch.hpp>

#include "auth/authorization.hpp"
#include "broker/session_broker.hpp"
#include "test_keys.hpp"

#include <algorithm>

using namespace ztna;
using namespace ztna::broker;

namespace {

constexpr Timestamp kSec = 1'000'000'000;

policy::PolicyPtr make_policy(const std::string& text) {
  auto r = policy::Policy::parse(text, "test.toml");
  INFO(r.error);
  REQUIRE(r.policy);
  return r.policy;
}

const char* const kPolicy = R"(version = 1
[[access]]
name = "eng-web"
groups = ["eng"]
services = ["web"]
[[access]]
name = "bob-db"
agents = ["bob"]
services = ["db"]
[[access]]
name = "no-mallory"
agents = ["mallory"]
services = ["*"]
effect = "deny"
[[access]]
name = "all-ssh"
agents = ["*"]
services = ["ssh"]
[[serve]]
connectors = ["dc1", "dc2"]
services = ["web", "db", "ssh"]
)";

Identity identity(Role role, std::string name, std::vector<std::string> groups = {}) {
  Identity id;
  id.role = role;
  id.name = std::move(name);
  id.groups = std::move(groups);
  id.client_auth = true;
  id.server_auth = role == Role::Connector;
  id.cert_sha256.fill(static_cast<uint8_t>(id.name.size()));
  id.serial = "01";
  return id;
}

Address addr(const char* s) {
  return *Address::parse(s);
}

struct Fixture {
  std::unique_ptr<auth::AuthorizationSigner> signer;
  std::unique_ptr<auth::AuthorizationVerifier> verifier;
  uint64_t next_random = 0x1000;
  Now now{100 * kSec, 1'700'000'000'000};
  std::unique_ptr<SessionBroker> broker;
  std::vector<Action> actions;

  explicit Fixture(const std::string& policy = kPolicy, BrokerConfig cfg = {}) {
    std::string error;
    signer = auth::AuthorizationSigner::from_pem(test::keys::kKeyA, "key A", error);
    verifier = auth::AuthorizationVerifier::from_pem(test::keys::kPubA, "pub A", error);
    REQUIRE(signer);
    REQUIRE(verifier);
    cfg.name = "relay-1";
    cfg.signer = signer.get();
    cfg.random = [this](std::span<uint8_t> out) {
      // Deterministic here; the daemon passes the system's CSPRNG.
      for (auto& b : out)
        b = static_cast<uint8_t>(next_random++);
    };
    broker = std::make_unique<SessionBroker>(cfg, make_policy(policy));
  }

  void take() {
    auto a = broker->take_actions();
    actions.insert(actions.end(), std::make_move_iterator(a.begin()),
                   std::make_move_iterator(a.end()));
  }
  void msg(PeerId p, wire::ControlMessage m) {
    broker->on_message(p, m, now);
    take();
  }
  // Authenticates and registers a peer.
  void join(PeerId p, const Identity& id, const char* address,
            std::vector<std::string> services = {}) {
    broker->on_authenticated(p, id, addr(address), now);
    msg(p, wire::Hello{id.role == Role::Agent ? wire::Role::Agent : wire::Role::Connector,
                       std::move(services)});
  }
  template <typename M> std::vector<M> sent_to(PeerId p) const {
    std::vector<M> out;
    for (const auto& a : actions)
      if (auto* s = std::get_if<Send>(&a); s && s->to == p)
        if (auto* m = std::get_if<M>(&s->message)) out.push_back(*m);
    return out;
  }
  std::vector<Disconnect> disconnects() const {
    std::vector<Disconnect> out;
    for (const auto& a : actions)
      if (auto* d = std::get_if<Disconnect>(&a)) out.push_back(*d);
    return out;
  }
  bool logged(const std::string& needle) const {
    return std::any_of(actions.begin(), actions.end(), [&](const Action& a) {
      auto* l = std::get_if<Log>(&a);
      return l && l->line.find(needle) != std::string::npos;
    });
  }
  // agent 1 (alice, group eng), connector 2 (dc1 serving web, db, ssh).
  void standard() {
    join(2, identity(Role::Connector, "dc1"), "203.0.113.2:4000", {"web", "db", "ssh"});
    join(1, identity(Role::Agent, "alice", {"eng"}), "198.51.100.1:5000");
  }
  // Opens a session for `service` from agent `a` through connector `c`; returns its id.
  uint64_t open(PeerId a, PeerId c, const std::string& service, uint32_t request = 7) {
    msg(a, wire::OpenSession{request, service});
    auto offers = sent_to<wire::SessionOffer>(c);
    REQUIRE_FALSE(offers.empty());
    msg(c, wire::SessionAccept{offers.back().session_id});
    return offers.back().session_id;
  }
};

} // namespace

TEST_CASE("broker: registration tells the observed address, serves only allowed services",
          "[broker]") {
  Fixture f;
  f.join(2, identity(Role::Connector, "dc1"), "203.0.113.2:4000", {"web", "wiki"});
  auto observed = f.sent_to<wire::ObservedAddress>(2);
  REQUIRE(observed.size() == 1);
  CHECK(observed[0].address == addr("203.0.113.2:4000"));
  // "wiki" is not in any [[serve]] rule: refused, counted, said, and not in the directory.
  CHECK(f.broker->counters().services_refused == 1);
  auto errors = f.sent_to<wire::ErrorMessage>(2);
  REQUIRE(errors.size() == 1);
  CHECK(errors[0].code == wire::ErrorCode::NotAuthorized);
  CHECK(f.logged("connector 'dc1' may not serve 'wiki'"));
  auto peers = f.broker->peers();
  REQUIRE(peers.size() == 1);
  CHECK(peers[0].services == std::vector<std::string>{"web"});
}

TEST_CASE("broker: a service refused at registration is served once a new policy allows it",
          "[broker]") {
  Fixture f;
  f.join(2, identity(Role::Connector, "dc1"), "203.0.113.2:4000", {"web", "wiki"});
  f.join(1, identity(Role::Agent, "alice", {"eng"}), "198.51.100.1:5000");
  f.msg(1, wire::OpenSession{1, "wiki"});
  CHECK(f.sent_to<wire::SessionReject>(1).back().code == wire::ErrorCode::NotAuthorized);
  std::string text = kPolicy;
  text += "[[serve]]\nconnectors = [\"dc1\"]\nservices = [\"wiki\"]\n"
          "[[access]]\nagents = [\"alice\"]\nservices = [\"wiki\"]\n";
  f.broker->set_policy(make_policy(text), f.now);
  f.take();
  CHECK(f.logged("connector 'dc1' now serves 'wiki'"));
  CHECK_FALSE(f.logged("now serves 'web'"));
  REQUIRE(f.broker->peers()[1].id == 2);
  CHECK(f.broker->peers()[1].services == std::vector<std::string>{"web", "wiki"});
  f.open(1, 2, "wiki", 2);
  CHECK(f.broker->session_count() == 1);
}

TEST_CASE("broker: a Hello must match the certificate's role", "[broker]") {
  Fixture f;
  f.broker->on_authenticated(1, identity(Role::Agent, "alice"), addr("198.51.100.1:5000"), f.now);
  f.msg(1, wire::Hello{wire::Role::Connector, {"web"}});
  auto d = f.disconnects();
  REQUIRE(d.size() == 1);
  CHECK(d[0].peer == 1);
  CHECK(d[0].code == wire::ErrorCode::NotAuthorized);
  CHECK(d[0].reason.find("certificate is for agent 'alice'") != std::string::npos);
  CHECK(f.broker->counters().hello_role_mismatch == 1);
  CHECK(f.broker->peers()[0].registered == false);
}

TEST_CASE("broker: an allowed session gets an offer, then a signed authorization", "[broker]") {
  Fixture f;
  f.standard();
  f.msg(1, wire::OpenSession{7, "web"});
  auto offers = f.sent_to<wire::SessionOffer>(2);
  REQUIRE(offers.size() == 1);
  CHECK(offers[0].agent == "alice");
  CHECK(offers[0].service == "web");
  CHECK(offers[0].session_id != 0);
  CHECK(f.logged("rule [[access]] #1 \"eng-web\""));
  f.msg(2, wire::SessionAccept{offers[0].session_id});
  auto ready = f.sent_to<wire::SessionReady>(1);
  REQUIRE(ready.size() == 1);
  CHECK(ready[0].request_id == 7);
  CHECK(ready[0].session_id == offers[0].session_id);
  CHECK(ready[0].connector == "dc1");
  auth::Authorization a;
  std::string why;
  REQUIRE(f.verifier->verify(ready[0].authorization, f.now.unix_ms, a, why) ==
          auth::AuthorizationVerifier::Result::Ok);
  CHECK(a.session_id == offers[0].session_id);
  CHECK(a.agent == "alice");
  CHECK(a.agent_cert_sha256 == identity(Role::Agent, "alice").cert_sha256);
  CHECK(a.service == "web");
  CHECK(a.connector == "dc1");
  CHECK(a.issuer == "relay-1");
  CHECK(a.issued_at_ms == f.now.unix_ms);
  CHECK(a.expires_at_ms == f.now.unix_ms + 60'000);
  CHECK(f.broker->counters().sessions_opened == 1);
}

TEST_CASE("broker: deny by default, deny rules win, and the agent hears a clear refusal",
          "[broker]") {
  Fixture f;
  f.standard();
  f.join(3, identity(Role::Agent, "mallory", {"eng"}), "198.51.100.3:5000");
  f.msg(1, wire::OpenSession{1, "db"});  // alice: no rule lets her reach db
  f.msg(3, wire::OpenSession{2, "web"}); // mallory: in eng, but a deny rule names her
  auto r1 = f.sent_to<wire::SessionReject>(1);
  auto r3 = f.sent_to<wire::SessionReject>(3);
  REQUIRE(r1.size() == 1);
  REQUIRE(r3.size() == 1);
  CHECK(r1[0].code == wire::ErrorCode::NotAuthorized);
  CHECK(r3[0].code == wire::ErrorCode::NotAuthorized);
  CHECK(f.broker->counters().sessions_denied == 2);
  CHECK(f.logged("(default deny)"));
  CHECK(f.logged("\"no-mallory\""));
  CHECK(f.sent_to<wire::SessionOffer>(2).empty());
}

TEST_CASE("broker: no connector, a refusing connector, and one that never answers", "[broker]") {
  Fixture f;
  f.join(1, identity(Role::Agent, "alice", {"eng"}), "198.51.100.1:5000");
  f.msg(1, wire::OpenSession{1, "web"});
  auto r = f.sent_to<wire::SessionReject>(1);
  REQUIRE(r.size() == 1);
  CHECK(r[0].code == wire::ErrorCode::NoConnector);

  f.join(2, identity(Role::Connector, "dc1"), "203.0.113.2:4000", {"web"});
  f.msg(1, wire::OpenSession{2, "web"});
  auto offer = f.sent_to<wire::SessionOffer>(2).back();
  // The connector's own allow list refuses: the agent learns it at once.
  f.msg(2, wire::SessionClosed{offer.session_id, wire::ErrorCode::NotAuthorized});
  r = f.sent_to<wire::SessionReject>(1);
  REQUIRE(r.size() == 2);
  CHECK(r[1].request_id == 2);
  CHECK(r[1].code == wire::ErrorCode::NotAuthorized);
  CHECK(r[1].reason.find("connector refused") != std::string::npos);

  f.msg(1, wire::OpenSession{3, "web"});
  CHECK(f.broker->next_timeout() == f.now.mono + 5 * kSec);
  f.now.mono += 5 * kSec;
  f.broker->handle_timeout(f.now);
  f.take();
  r = f.sent_to<wire::SessionReject>(1);
  REQUIRE(r.size() == 3);
  CHECK(r[2].request_id == 3);
  CHECK(f.broker->session_count() == 0);
}

TEST_CASE("broker: pending session requests are capped per agent", "[broker]") {
  BrokerConfig cfg;
  cfg.max_pending_per_agent = 3;
  Fixture f(kPolicy, cfg);
  f.standard();
  for (uint32_t i = 0; i < 5; ++i)
    f.msg(1, wire::OpenSession{i, "web"});
  CHECK(f.sent_to<wire::SessionOffer>(2).size() == 3);
  auto r = f.sent_to<wire::SessionReject>(1);
  REQUIRE(r.size() == 2);
  CHECK(r[0].code == wire::ErrorCode::Limited);
  CHECK(f.broker->counters().requests_over_limit == 2);
}

TEST_CASE("broker: control messages are rate limited per peer", "[broker]") {
  BrokerConfig cfg;
  cfg.messages_per_second = 10;
  cfg.message_burst = 20;
  cfg.max_pending_per_agent = 1000;
  Fixture f(kPolicy, cfg);
  f.standard();
  for (uint32_t i = 0; i < 100; ++i)
    f.msg(1, wire::OpenSession{i, "ssh"});
  // Hello took one token: 19 requests pass, 81 are answered "rate limited".
  CHECK(f.sent_to<wire::SessionOffer>(2).size() == 19);
  CHECK(f.broker->counters().control_rate_limited == 81);
  auto r = f.sent_to<wire::SessionReject>(1);
  REQUIRE(r.size() == 81);
  CHECK(r[0].code == wire::ErrorCode::Limited);
  // A second later, ten more tokens.
  f.now.mono += kSec;
  for (uint32_t i = 0; i < 12; ++i)
    f.msg(1, wire::OpenSession{1000 + i, "ssh"});
  CHECK(f.sent_to<wire::SessionOffer>(2).size() == 29);
}

TEST_CASE("broker: candidates go only between a session's two ends, at a bounded rate",
          "[broker]") {
  Fixture f;
  f.standard();
  f.join(3, identity(Role::Agent, "eve", {"eng"}), "198.51.100.3:5000");
  const auto id = f.open(1, 2, "web");
  wire::Candidates c{id, 1, "abcd", std::string(22, 'p'), {{1, 1, addr("10.0.0.1:1")}}};
  f.msg(3, c); // not an end of this session
  CHECK(f.broker->counters().candidates_unauthorized == 1);
  CHECK(f.sent_to<wire::Candidates>(2).empty());
  f.msg(1, c);
  CHECK(f.sent_to<wire::Candidates>(2).size() == 1);
  CHECK(f.sent_to<wire::StartChecks>(1).empty());
  c.generation = 1;
  f.msg(2, c);
  CHECK(f.sent_to<wire::StartChecks>(1).size() == 1);
  CHECK(f.sent_to<wire::StartChecks>(2).size() == 1);
  // A flood of rounds from one end: forwarded up to the burst, then dropped.
  for (uint32_t g = 2; g < 40; ++g) {
    c.generation = g;
    f.msg(1, c);
  }
  CHECK(f.broker->counters().candidates_rate_limited > 0);
  CHECK(f.sent_to<wire::Candidates>(2).size() < 20);
}

TEST_CASE("broker: a new policy closes exactly the sessions it no longer allows", "[broker]") {
  Fixture f;
  f.standard();
  f.join(3, identity(Role::Agent, "bob"), "198.51.100.3:5000");
  const auto web = f.open(1, 2, "web", 1);
  const auto ssh = f.open(1, 2, "ssh", 2);
  const auto db = f.open(3, 2, "db", 3);
  REQUIRE(f.broker->session_count() == 3);
  // eng loses web; bob keeps db; ssh stays open to all.
  std::string text = kPolicy;
  text.replace(text.find("groups = [\"eng\"]"), 16, "groups = [\"ops\"]");
  f.broker->set_policy(make_policy(text), f.now);
  f.take();
  CHECK(f.broker->session_count() == 2);
  CHECK(f.broker->counters().sessions_closed_by_policy == 1);
  auto to_agent = f.sent_to<wire::SessionClosed>(1);
  auto to_connector = f.sent_to<wire::SessionClosed>(2);
  REQUIRE(to_agent.size() == 1);
  REQUIRE(to_connector.size() == 1);
  CHECK(to_agent[0].session_id == web);
  CHECK(to_agent[0].code == wire::ErrorCode::NotAuthorized);
  CHECK(to_connector[0].session_id == web);
  CHECK(f.logged("closed by the new policy"));
  // Its relay binding went with it.
  CHECK_FALSE(f.broker->on_relay(web, addr("198.51.100.1:5000"), 100, f.now.mono));
  CHECK(f.broker->on_relay(ssh, addr("198.51.100.1:5000"), 100, f.now.mono));
  CHECK(f.broker->on_relay(db, addr("203.0.113.2:4000"), 100, f.now.mono));

  SECTION("a connector no longer allowed to serve loses its sessions and its services") {
    f.actions.clear();
    f.broker->set_policy(make_policy(R"(version = 1
[[access]]
agents = ["*"]
services = ["*"]
[[serve]]
connectors = ["dc2"]
services = ["*"]
)"),
                         f.now);
    f.take();
    CHECK(f.broker->session_count() == 0);
    REQUIRE(f.broker->peers()[1].id == 2); // peers() is sorted by id: 1 alice, 2 dc1, 3 bob
    CHECK(f.broker->peers()[1].services.empty());
    f.msg(1, wire::OpenSession{9, "ssh"});
    CHECK(f.sent_to<wire::SessionReject>(1).back().code == wire::ErrorCode::NoConnector);
  }
}

TEST_CASE("broker: relay frames only between a session's ends, within quota", "[broker]") {
  BrokerConfig cfg;
  cfg.relay_per_session = RelayQuota{10'000, 10'000};
  Fixture f(kPolicy, cfg);
  f.standard();
  const auto id = f.open(1, 2, "web");
  const auto agent = addr("198.51.100.1:5000");
  const auto connector = addr("203.0.113.2:4000");
  CHECK(f.broker->on_relay(id, agent, 1200, f.now.mono) == connector);
  CHECK(f.broker->on_relay(id, connector, 1200, f.now.mono) == agent);
  CHECK_FALSE(f.broker->on_relay(id, addr("192.0.2.9:5000"), 1200, f.now.mono));
  CHECK_FALSE(f.broker->on_relay(id + 1, agent, 1200, f.now.mono));
  CHECK(f.broker->counters().relay_frames_unauthorized == 2);
  for (int i = 0; i < 10; ++i)
    f.broker->on_relay(id, agent, 1200, f.now.mono);
  CHECK(f.broker->counters().relay_frames_over_quota > 0);
  f.take();
  CHECK(f.logged("relay quota spent"));
  // The peer's NAT rebinds: the relay follows the proven address.
  const auto moved = addr("198.51.100.1:6000");
  f.broker->on_address_change(1, moved);
  f.now.mono += 2 * kSec;
  CHECK(f.broker->on_relay(id, moved, 100, f.now.mono) == connector);
  CHECK_FALSE(f.broker->on_relay(id, agent, 100, f.now.mono));
}

TEST_CASE("broker: a peer that never says Hello is dropped", "[broker]") {
  Fixture f;
  f.broker->on_authenticated(1, identity(Role::Agent, "quiet"), addr("198.51.100.1:5000"), f.now);
  CHECK(f.broker->next_timeout() == f.now.mono + 5 * kSec);
  f.now.mono += 5 * kSec;
  f.broker->handle_timeout(f.now);
  f.take();
  auto d = f.disconnects();
  REQUIRE(d.size() == 1);
  CHECK(d[0].peer == 1);
  CHECK(f.broker->counters().peers_unregistered == 1);
  // Said once: the next sweep does not disconnect it again.
  f.now.mono += kSec;
  f.broker->handle_timeout(f.now);
  f.take();
  CHECK(f.disconnects().size() == 1);
  CHECK(f.broker->next_timeout() == kNever);
}

TEST_CASE("broker: names live in one namespace per role", "[broker]") {
  Fixture f;
  f.join(1, identity(Role::Agent, "dc1"), "198.51.100.1:5000");
  f.join(2, identity(Role::Connector, "dc1"), "203.0.113.2:4000", {"ssh"});
  CHECK(f.disconnects().empty());
  CHECK(f.broker->counters().peers_replaced == 0);
  // The same connector identity again replaces the old connection.
  f.join(3, identity(Role::Connector, "dc1"), "203.0.113.3:4000", {"ssh"});
  auto d = f.disconnects();
  REQUIRE(d.size() == 1);
  CHECK(d[0].peer == 2);
  CHECK(d[0].code == wire::ErrorCode::Replaced);
}

TEST_CASE("broker: a session being offered ends with an end's control connection", "[broker]") {
  Fixture f;
  f.standard();
  f.msg(1, wire::OpenSession{7, "web"});
  REQUIRE(f.sent_to<wire::SessionOffer>(2).size() == 1);
  f.broker->on_disconnected(2, f.now);
  f.take();
  auto rejects = f.sent_to<wire::SessionReject>(1);
  REQUIRE(rejects.size() == 1);
  CHECK(rejects[0].code == wire::ErrorCode::SessionGone);
  CHECK(f.broker->session_count() == 0);
  CHECK(f.broker->peer_count() == 1);
}

TEST_CASE("broker: a live session outlives an end's control connection and resumes", "[broker]") {
  Fixture f;
  f.standard();
  const auto id = f.open(1, 2, "web");
  const Address agent_at = addr("198.51.100.1:5000");
  CHECK(f.broker->on_relay(id, agent_at, 100, f.now.mono));
  f.broker->on_disconnected(2, f.now);
  f.take();
  // Not closed: the agent hears that its peer is away; the relay no longer forwards.
  CHECK(f.sent_to<wire::SessionClosed>(1).empty());
  auto lost = f.sent_to<wire::PeerLost>(1);
  REQUIRE(lost.size() == 1);
  CHECK(lost[0].session_id == id);
  CHECK(f.broker->session_count() == 1);
  CHECK(f.broker->sessions()[0].state == std::string("waiting"));
  CHECK_FALSE(f.broker->on_relay(id, agent_at, 100, f.now.mono));
  CHECK(f.broker->counters().sessions_orphaned == 1);

  // The connector comes back from another address and announces the session.
  f.now.mono += 2 * kSec;
  f.join(3, identity(Role::Connector, "dc1"), "203.0.113.9:4000", {"web", "db", "ssh"});
  f.msg(3, wire::ResumeSession{id, "alice", "web"});
  REQUIRE(f.sent_to<wire::SessionResumed>(1).size() == 1);
  REQUIRE(f.sent_to<wire::SessionResumed>(3).size() == 1);
  CHECK(f.broker->counters().sessions_resumed == 1);
  CHECK(f.broker->sessions()[0].state == std::string("relaying"));
  // Bound to where the connector is now.
  CHECK(f.broker->on_relay(id, agent_at, 100, f.now.mono) == addr("203.0.113.9:4000"));
  CHECK(f.broker->on_relay(id, addr("203.0.113.9:4000"), 100, f.now.mono) == agent_at);
  CHECK_FALSE(f.broker->on_relay(id, addr("203.0.113.2:4000"), 100, f.now.mono));
}

TEST_CASE("broker: after a restart both ends announce the session and the relay binds",
          "[broker]") {
  Fixture f;
  f.standard();
  const uint64_t id = 0xABCDEF0123456789ULL;
  f.msg(1, wire::ResumeSession{id, "dc1", "web"});
  // One end only: nothing is bound yet; it waits.
  CHECK(f.sent_to<wire::SessionResumed>(1).empty());
  CHECK(f.broker->sessions()[0].state == std::string("waiting"));
  CHECK_FALSE(f.broker->on_relay(id, addr("198.51.100.1:5000"), 10, f.now.mono));
  // Candidates for a waiting session go nowhere.
  f.msg(1, wire::Candidates{id, 1, "abcd", std::string(22, 'p'), {}});
  CHECK(f.broker->counters().candidates_unauthorized == 1);
  // A claim that does not match (another agent's name) is refused, and changes nothing.
  f.msg(2, wire::ResumeSession{id, "mallory", "web"});
  auto refused = f.sent_to<wire::SessionClosed>(2);
  REQUIRE(refused.size() == 1);
  CHECK(refused[0].session_id == id);
  CHECK(f.broker->counters().resumes_refused == 1);
  CHECK(f.sent_to<wire::SessionClosed>(1).empty());
  f.msg(2, wire::ResumeSession{id, "alice", "web"});
  CHECK(f.sent_to<wire::SessionResumed>(1).size() == 1);
  CHECK(f.sent_to<wire::SessionResumed>(2).size() == 1);
  CHECK(f.broker->on_relay(id, addr("198.51.100.1:5000"), 10, f.now.mono) ==
        addr("203.0.113.2:4000"));
  // Said again: the answer again, nothing else.
  f.msg(2, wire::ResumeSession{id, "alice", "web"});
  CHECK(f.sent_to<wire::SessionResumed>(2).size() == 2);
  CHECK(f.broker->counters().sessions_resumed == 1);
  // A new session never takes a resumed one's id, and closing works as for any session.
  f.msg(1, wire::SessionClosed{id, wire::ErrorCode::None});
  CHECK(f.sent_to<wire::SessionClosed>(2).size() == 2);
  CHECK(f.broker->session_count() == 0);
}

TEST_CASE("broker: a resumed session is judged by the policy of now", "[broker]") {
  Fixture f;
  f.standard();
  // alice may reach web (group eng) but not db.
  f.msg(1, wire::ResumeSession{5, "dc1", "db"});
  auto closed = f.sent_to<wire::SessionClosed>(1);
  REQUIRE(closed.size() == 1);
  CHECK(closed[0].code == wire::ErrorCode::NotAuthorized);
  CHECK(f.broker->counters().resumes_denied == 1);
  CHECK(f.broker->session_count() == 0);
  // The connector's claim passes its own check (it serves web), then the agent's end is
  // judged when alice is back, under the policy in force then.
  f.msg(2, wire::ResumeSession{6, "alice", "web"});
  f.broker->set_policy(make_policy(R"(version = 1
[[access]]
agents = ["bob"]
services = ["web"]
[[serve]]
connectors = ["dc1"]
services = ["web"]
)"),
                       f.now);
  f.take();
  f.msg(1, wire::ResumeSession{6, "dc1", "web"});
  CHECK(f.sent_to<wire::SessionResumed>(1).empty());
  CHECK(f.sent_to<wire::SessionClosed>(1).back().session_id == 6);
  CHECK(f.sent_to<wire::SessionClosed>(2).back().session_id == 6);
  CHECK(f.broker->session_count() == 0);
}

TEST_CASE("broker: an end that never comes back closes the session at the other", "[broker]") {
  BrokerConfig cfg;
  cfg.resume_timeout = std::chrono::seconds(30);
  Fixture f(kPolicy, cfg);
  f.standard();
  const auto id = f.open(1, 2, "web");
  f.broker->on_disconnected(2, f.now);
  f.take();
  CHECK(f.broker->next_timeout() == f.now.mono + 30 * kSec);
  f.now.mono += 30 * kSec - 1;
  f.broker->handle_timeout(f.now);
  f.take();
  CHECK(f.sent_to<wire::SessionClosed>(1).empty());
  f.now.mono += 1;
  f.broker->handle_timeout(f.now);
  f.take();
  auto closed = f.sent_to<wire::SessionClosed>(1);
  REQUIRE(closed.size() == 1);
  CHECK(closed[0].session_id == id);
  CHECK(closed[0].code == wire::ErrorCode::SessionGone);
  CHECK(f.broker->counters().resumes_expired == 1);
  CHECK(f.broker->session_count() == 0);
}

TEST_CASE("broker: an agent that moved here finds its connector asked for the session",
          "[broker]") {
  // Intermediate B: the connector is registered here (it registers everywhere); the agent comes
  // from intermediate A, which died, and resumes its session.
  Fixture f;
  f.standard();
  f.msg(1, wire::ResumeSession{77, "dc1", "web"});
  auto asked = f.sent_to<wire::ResumeSession>(2);
  REQUIRE(asked.size() == 1);
  CHECK(asked[0] == wire::ResumeSession{77, "alice", "web"});
  // The connector still holds it and claims it: bound.
  f.msg(2, wire::ResumeSession{77, "alice", "web"});
  CHECK(f.sent_to<wire::SessionResumed>(1).size() == 1);
  CHECK(f.sent_to<wire::SessionResumed>(2).size() == 1);
  // A connector that is not registered here is not asked.
  f.msg(1, wire::ResumeSession{78, "dc2", "web"});
  CHECK(f.sent_to<wire::ResumeSession>(2).size() == 1);
}

TEST_CASE("broker: a session both of whose ends are gone is forgotten", "[broker]") {
  Fixture f;
  f.standard();
  f.open(1, 2, "web");
  f.broker->on_disconnected(1, f.now);
  f.broker->on_disconnected(2, f.now);
  f.take();
  CHECK(f.broker->session_count() == 0);
  CHECK(f.broker->next_timeout() == kNever);
}

TEST_CASE("broker: a replacing connection takes its sessions over at once", "[broker]") {
  Fixture f;
  f.standard();
  const auto id = f.open(1, 2, "web");
  // alice again from a new address, before her old connection is reported gone.
  f.join(5, identity(Role::Agent, "alice", {"eng"}), "198.51.100.7:5000");
  f.msg(5, wire::ResumeSession{id, "dc1", "web"});
  CHECK(f.sent_to<wire::SessionResumed>(5).size() == 1);
  CHECK(f.sent_to<wire::SessionResumed>(2).size() == 1);
  CHECK(f.broker->on_relay(id, addr("198.51.100.7:5000"), 10, f.now.mono) ==
        addr("203.0.113.2:4000"));
  // The old connection goes: the session is no longer its, so nothing changes.
  f.broker->on_disconnected(1, f.now);
  f.take();
  CHECK(f.sent_to<wire::PeerLost>(2).empty());
  CHECK(f.broker->sessions()[0].state == std::string("relaying"));
}

TEST_CASE("broker: unmatched resumes per peer are capped", "[broker]") {
  BrokerConfig cfg;
  cfg.max_unmatched_resumes = 3;
  Fixture f(kPolicy, cfg);
  f.standard();
  for (uint64_t id = 1; id <= 4; ++id)
    f.msg(2, wire::ResumeSession{id, "alice", "web"});
  CHECK(f.broker->session_count() == 3);
  CHECK(f.broker->counters().resumes_refused == 1);
  REQUIRE(f.sent_to<wire::SessionClosed>(2).size() == 1);
  CHECK(f.sent_to<wire::SessionClosed>(2)[0].session_id == 4);
}

TEST_CASE("broker: messages only from registered peers, in the right role", "[broker]") {
  Fixture f;
  f.broker->on_authenticated(1, identity(Role::Agent, "alice", {"eng"}), addr("198.51.100.1:1"),
                             f.now);
  f.msg(1, wire::OpenSession{1, "web"});
  CHECK(f.sent_to<wire::ErrorMessage>(1).size() == 1);
  CHECK(f.broker->counters().control_messages_unexpected == 1);
  f.standard();
  f.msg(1, wire::SessionAccept{123});    // an agent accepting: not its message
  f.msg(2, wire::OpenSession{2, "web"}); // a connector asking: not its message
  CHECK(f.broker->counters().control_messages_unexpected == 3);
  f.msg(1, wire::SessionClosed{999, wire::ErrorCode::None}); // unknown session: ignored
  CHECK(f.broker->session_count() == 0);
}

TEST_CASE("broker: homes: registration, new services, and the last connection's end", "[broker]") {
  Fixture f;
  auto homed = [&] {
    std::vector<Homed> out;
    for (const auto& a : f.actions)
      if (auto* h = std::get_if<Homed>(&a)) out.push_back(*h);
    return out;
  };
  auto unhomed = [&] {
    std::vector<Unhomed> out;
    for (const auto& a : f.actions)
      if (auto* u = std::get_if<Unhomed>(&a)) out.push_back(*u);
    return out;
  };
  f.join(2, identity(Role::Connector, "dc1"), "203.0.113.2:4000", {"web", "wiki"});
  REQUIRE(homed().size() == 1);
  CHECK(homed()[0].role == Role::Connector);
  CHECK(homed()[0].name == "dc1");
  CHECK(homed()[0].address == addr("203.0.113.2:4000"));
  CHECK(homed()[0].services == std::vector<std::string>{"web"}); // what it may serve
  // A policy change re-announces the connector's services.
  f.broker->set_policy(make_policy(std::string(kPolicy) + R"(
[[serve]]
connectors = ["dc1"]
services = ["wiki"]
)"),
                       f.now);
  f.take();
  REQUIRE(homed().size() == 2);
  CHECK(homed()[1].services == std::vector<std::string>{"web", "wiki"});
  // A replacing connection: the old one's end leaves the home in place.
  f.join(3, identity(Role::Connector, "dc1"), "203.0.113.2:4001", {"web"});
  f.broker->on_disconnected(2, f.now);
  f.take();
  CHECK(unhomed().empty());
  f.broker->on_disconnected(3, f.now);
  f.take();
  REQUIRE(unhomed().size() == 1);
  CHECK(unhomed()[0].name == "dc1");
  // An agent that never registered has no home to leave.
  f.broker->on_authenticated(4, identity(Role::Agent, "alice", {"eng"}), addr("198.51.100.1:5000"),
                             f.now);
  f.broker->on_disconnected(4, f.now);
  f.take();
  CHECK(unhomed().size() == 1);
}
