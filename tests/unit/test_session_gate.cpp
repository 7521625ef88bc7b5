// session::SessionGate, AllowList and ReplayGuard: the connector's checks before any backend.
#include <catch2/catch.hpp>

#include "auth/authorization.hpp"
#include "session/session_gate.hpp"
#include "test_keys.hpp"
#include "wire/datagram_frame.hpp"

using namespace ztna;
using namespace ztna::session;

namespace {

constexpr uint64_t kNowMs = 1'700'000'000'000;
constexpr uint64_t kSession = 0x1122334455667788ULL;

Identity agent_identity(std::string name = "alice", std::vector<std::string> groups = {"eng"}) {
  Identity id;
  id.role = Role::Agent;
  id.name = std::move(name);
  id.groups = std::move(groups);
  id.client_auth = true;
  id.cert_sha256.fill(0xA1);
  return id;
}

struct Fixture {
  std::unique_ptr<auth::AuthorizationSigner> signer, other_signer;
  std::shared_ptr<const auth::AuthorizationVerifier> verifier;
  std::map<std::string, ServiceSpec, std::less<>> services;
  AllowList allow;
  ReplayGuard replay;
  GateCounters counters;
  std::unique_ptr<SessionGate> gate;
  std::vector<GateAction> actions;

  explicit Fixture(const char* allow_spec = "web=alice,group:ops") {
    std::string error;
    signer = auth::AuthorizationSigner::from_pem(test::keys::kKeyA, "A", error);
    other_signer = auth::AuthorizationSigner::from_pem(test::keys::kKeyB, "B", error);
    verifier = auth::AuthorizationVerifier::from_pem(test::keys::kPubA, "A", error);
    REQUIRE(verifier);
    for (const char* spec : {"web=tcp://127.0.0.1:8080", "dns=udp://127.0.0.1:53",
                             "db=tcp://127.0.0.1:5432"}) {
      auto s = parse_service_spec(spec, error);
      REQUIRE(s);
      services[s->name] = *s;
    }
    REQUIRE(allow.add(allow_spec, error));
    REQUIRE(allow.add("dns=*", error));
    gate = std::make_unique<SessionGate>(config("web"));
  }
  GateConfig config(std::string service) {
    GateConfig c;
    c.session_id = kSession;
    c.connector = "dc1";
    c.agent = "alice";
    c.service = std::move(service);
    c.verifier = verifier;
    c.allow = &allow;
    c.services = &services;
    c.replay = &replay;
    c.counters = &counters;
    return c;
  }
  auth::Authorization authorization(std::string service = "web") const {
    auth::Authorization a;
    a.session_id = kSession;
    a.agent = "alice";
    a.agent_cert_sha256 = agent_identity().cert_sha256;
    a.service = std::move(service);
    a.connector = "dc1";
    a.issuer = "relay-1";
    a.issued_at_ms = kNowMs - 1000;
    a.expires_at_ms = kNowMs + 59'000;
    return a;
  }
  void take() {
    auto a = gate->take_actions();
    actions.insert(actions.end(), std::make_move_iterator(a.begin()),
                   std::make_move_iterator(a.end()));
  }
  void present(const std::vector<uint8_t>& token, uint64_t now = kNowMs) {
    gate->on_stream_data(0, wire::encode_authorization_stream(token), true, now);
    take();
  }
  template <typename A> std::vector<A> of() const {
    std::vector<A> out;
    for (const auto& a : actions)
      if (auto* x = std::get_if<A>(&a)) out.push_back(*x);
    return out;
  }
  std::string close_reason() const {
    auto c = of<CloseSession>();
    return c.empty() ? std::string() : c.back().reason;
  }
};

std::vector<uint8_t> stream(const std::string& service, const std::string& data) {
  auto out = wire::encode_stream_header(service);
  out.insert(out.end(), data.begin(), data.end());
  return out;
}

} // namespace

TEST_CASE("gate: streams wait for the authorization, then open their backend", "[gate]") {
  Fixture f;
  f.gate->on_handshake(agent_identity());
  f.gate->on_stream_data(4, stream("web", "GET /"), false, kNowMs);
  f.take();
  CHECK(f.of<OpenBackend>().empty()); // nothing before the authorization
  f.present(f.signer->issue(f.authorization()));
  REQUIRE(f.gate->authorized());
  auto open = f.of<OpenBackend>();
  REQUIRE(open.size() == 1);
  CHECK(open[0].stream == 4);
  CHECK(open[0].spec->name == "web");
  CHECK(f.of<Authorized>().size() == 1);
  CHECK(f.counters.authorizations_accepted == 1);
  // Bytes that arrive while the backend connects are held, with the early ones.
  f.gate->on_stream_data(4, std::vector<uint8_t>{'!'}, true, kNowMs);
  auto [early, fin] = f.gate->take_early(4);
  CHECK(std::string(early.begin(), early.end()) == "GET /!");
  CHECK(fin);
  // Stream 0 and the header were consumed (flow control given back), nothing else.
  size_t consumed = 0;
  for (auto& c : f.of<Consume>())
    consumed += c.bytes;
  CHECK(consumed == wire::encode_stream_header("web").size() +
                        wire::encode_authorization_stream(f.signer->issue(f.authorization())).size());
}

TEST_CASE("gate: forged, expired, mismatched and replayed authorizations close the session",
          "[gate]") {
  Fixture f;
  f.gate->on_handshake(agent_identity());
  auto token = f.signer->issue(f.authorization());
  SECTION("signature by another key") {
    f.present(f.other_signer->issue(f.authorization()));
    CHECK(f.counters.authorizations_forged == 1);
    CHECK(f.close_reason().find("not signed by a trusted intermediate key") != std::string::npos);
  }
  SECTION("a flipped bit") {
    token[20] ^= 1;
    f.present(token);
    CHECK(f.counters.authorizations_forged + f.counters.authorizations_malformed == 1);
  }
  SECTION("expired") {
    f.present(token, kNowMs + 60'000);
    CHECK(f.counters.authorizations_expired == 1);
    CHECK(f.close_reason().find("expired") != std::string::npos);
  }
  SECTION("issued for another agent") {
    auto a = f.authorization();
    a.agent = "bob";
    f.present(f.signer->issue(a));
    CHECK(f.counters.authorizations_mismatched == 1);
    CHECK(f.close_reason().find("'bob'") != std::string::npos);
  }
  SECTION("the same name, another certificate") {
    auto a = f.authorization();
    a.agent_cert_sha256.fill(0xB2);
    f.present(f.signer->issue(a));
    CHECK(f.counters.authorizations_mismatched == 1);
  }
  SECTION("another session's") {
    auto a = f.authorization();
    a.session_id = 99;
    f.present(f.signer->issue(a));
    CHECK(f.counters.authorizations_mismatched == 1);
  }
  SECTION("another service's") {
    f.present(f.signer->issue(f.authorization("db")));
    CHECK(f.counters.authorizations_mismatched == 1);
  }
  SECTION("garbage on stream 0") {
    f.gate->on_stream_data(0, std::vector<uint8_t>{9, 9, 9}, true, kNowMs);
    f.take();
    CHECK(f.counters.authorizations_malformed == 1);
  }
  CHECK(f.gate->refused());
  auto close = f.of<CloseSession>();
  REQUIRE(close.size() == 1);
  CHECK(close[0].code == wire::ErrorCode::NotAuthorized);
  // Nothing reaches a backend after a refusal.
  f.gate->on_stream_data(4, stream("web", "GET /"), true, kNowMs);
  f.take();
  CHECK(f.of<OpenBackend>().empty());
}

TEST_CASE("gate: an authorization is good for one session once", "[gate]") {
  Fixture f;
  f.gate->on_handshake(agent_identity());
  auto token = f.signer->issue(f.authorization());
  f.present(token);
  REQUIRE(f.gate->authorized());
  // The same token on another connection for the same session id (a replay).
  SessionGate again(f.config("web"));
  again.on_handshake(agent_identity());
  again.on_stream_data(0, wire::encode_authorization_stream(token), true, kNowMs);
  CHECK(again.refused());
  CHECK(f.counters.authorizations_replayed == 1);
  auto actions = again.take_actions();
  REQUIRE(actions.size() >= 1);
  auto* close = std::get_if<CloseSession>(&actions.back());
  REQUIRE(close);
  CHECK(close->reason.find("already used") != std::string::npos);
}

TEST_CASE("gate: the connector's allow list decides too", "[gate]") {
  Fixture f("web=bob,group:ops");
  f.gate->on_handshake(agent_identity("alice", {"eng"}));
  f.present(f.signer->issue(f.authorization()));
  CHECK(f.gate->refused());
  CHECK(f.counters.allow_list_denied == 1);
  CHECK(f.close_reason().find("allow list") != std::string::npos);
  CHECK(f.close_reason().find("bob, group:ops") != std::string::npos);
}

TEST_CASE("gate: one session, one service", "[gate]") {
  Fixture f;
  f.gate->on_handshake(agent_identity());
  f.present(f.signer->issue(f.authorization()));
  REQUIRE(f.gate->authorized());
  f.gate->on_stream_data(8, stream("db", "x"), false, kNowMs);
  f.gate->on_datagram(wire::encode_datagram(1, "dns", std::vector<uint8_t>{1}));
  f.gate->on_datagram(wire::encode_datagram(2, "dns", std::vector<uint8_t>{2}));
  f.take();
  auto refused = f.of<DatagramRefused>();
  REQUIRE(refused.size() == 1); // said once, counted each time
  CHECK(refused[0].why == "datagram names service 'dns', but the session is for 'web'");
  auto resets = f.of<ResetStream>();
  REQUIRE(resets.size() == 1);
  CHECK(resets[0].stream == 8);
  CHECK(resets[0].code == wire::StreamError::NotAuthorized);
  CHECK(f.counters.streams_wrong_service == 1);
  CHECK(f.counters.datagrams_wrong_service == 2);
  CHECK(f.of<DeliverDatagram>().empty());
  CHECK(f.of<OpenBackend>().empty());
  // The session itself goes on.
  f.gate->on_stream_data(12, stream("web", "GET /"), false, kNowMs);
  f.take();
  CHECK(f.of<OpenBackend>().size() == 1);
}

TEST_CASE("gate: datagrams wait (bounded) for the authorization", "[gate]") {
  Fixture f;
  f.gate = std::make_unique<SessionGate>(f.config("dns"));
  f.gate->on_handshake(agent_identity());
  for (uint32_t i = 0; i < SessionGate::kMaxQueuedDatagrams + 10; ++i)
    f.gate->on_datagram(wire::encode_datagram(i, "dns", std::vector<uint8_t>{1, 2}));
  f.gate->on_datagram(wire::encode_ping(false, 5));
  f.take();
  CHECK(f.of<DeliverDatagram>().empty());
  CHECK(f.counters.datagrams_dropped == 11);
  f.present(f.signer->issue(f.authorization("dns")));
  CHECK(f.of<DeliverDatagram>().size() == SessionGate::kMaxQueuedDatagrams);
  f.gate->on_datagram(wire::encode_ping(false, 6));
  f.take();
  auto pings = f.of<AnswerPing>();
  REQUIRE(pings.size() == 1);
  CHECK(pings[0].id == 6);
}

TEST_CASE("gate: malformed streams and unknown services", "[gate]") {
  Fixture f;
  f.gate->on_handshake(agent_identity());
  f.present(f.signer->issue(f.authorization()));
  f.gate->on_stream_data(4, std::vector<uint8_t>{7, 1, 'x'}, false, kNowMs); // bad version
  f.gate->on_stream_data(8, std::vector<uint8_t>{1, 3, 'w'}, true, kNowMs);  // ends in header
  f.take();
  CHECK(f.counters.streams_malformed == 2);
  CHECK(f.of<ResetStream>().size() == 2);
  f.gate->on_datagram(std::vector<uint8_t>{0x7f});
  f.take();
  CHECK(f.counters.datagrams_malformed == 1);
}

TEST_CASE("allow list: agents, groups, any", "[gate][allow_list]") {
  AllowList a;
  std::string error;
  REQUIRE(a.add("web=alice,group:eng", error));
  REQUIRE(a.add("web=bob", error));
  REQUIRE(a.add("ssh=*", error));
  CHECK(a.allows("web", agent_identity("alice", {})));
  CHECK(a.allows("web", agent_identity("bob", {})));
  CHECK(a.allows("web", agent_identity("carol", {"eng"})));
  CHECK_FALSE(a.allows("web", agent_identity("carol", {"ops"})));
  CHECK(a.allows("ssh", agent_identity("anyone", {})));
  CHECK_FALSE(a.allows("db", agent_identity("alice", {})));
  auto connector = agent_identity("alice", {});
  connector.role = Role::Connector;
  CHECK_FALSE(a.allows("web", connector));
  CHECK(a.describe("web") == "alice, bob, group:eng");
  CHECK(a.describe("ssh") == "*");
  CHECK(a.may_allow("web", "zed")); // a group might let zed in
  REQUIRE(a.add("db=alice", error));
  CHECK_FALSE(a.may_allow("db", "zed"));
  for (const char* bad : {"web", "=alice", "web=", "web=group:", "web=a b", "web=al,,ice",
                          "we b=alice", "web=-x"}) {
    INFO(bad);
    CHECK_FALSE(a.add(bad, error));
    CHECK_FALSE(error.empty());
  }
}

TEST_CASE("replay guard forgets only what has expired", "[gate]") {
  ReplayGuard g;
  CHECK(g.first_use(1, 1000, 0));
  CHECK_FALSE(g.first_use(1, 1000, 500));
  CHECK(g.first_use(2, 2000, 500));
  CHECK(g.size() == 2);
  CHECK(g.first_use(3, 3000, 1500)); // 1 expired and is forgotten
  CHECK(g.size() == 2);
}
