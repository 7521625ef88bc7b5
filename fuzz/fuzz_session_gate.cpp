// The connector's stream and datagram handling (session::SessionGate) fed what an agent can
// send: stream data on any stream with any bytes and FIN, stream resets, datagrams, and stream 0
// with either arbitrary bytes or a correctly signed authorization whose fields come from the
// input (right or wrong session, agent, service, connector, times). Checks that
//  - no backend opens and no datagram is delivered before an authorization for exactly this
//    session, agent, service and connector has been accepted, nor after a refusal,
//  - everything that passes names the session's one service,
//  - a refusal closes the session with NotAuthorized, once.
#include "auth/authorization.hpp"
#include "fuzz_check.hpp"
#include "session/session_gate.hpp"
#include "wire/datagram_frame.hpp"

using namespace ztna;
using namespace ztna::session;

namespace {

// TEST-ONLY key pair (tests/unit/test_keys.hpp: kKeyA, kPubA); it protects nothing.
const char* const kKey = "-----BEGIN PRIVATE KEY-----\n"
                         "MC4CAQAwBQYDK2VwBCIEID/Vs0mSJAaC1YmUWP0ZLFBRRvv2YKCsiNnZg0V9qtye\n"
                         "-----END PRIVATE KEY-----\n";
const char* const kPub = "-----BEGIN PUBLIC KEY-----\n"
                         "MCowBQYDK2VwAyEArlEbWTN0FYNouJhdTqDdzq5V9PwMJr132nx4IvMJauU=\n"
                         "-----END PUBLIC KEY-----\n";
constexpr uint64_t kSession = 42;
constexpr uint64_t kNowMs = 1'700'000'000'000;

class Input {
public:
  Input(const uint8_t* d, size_t n) : d_(d), n_(n) {}
  bool empty() const { return i_ >= n_; }
  uint8_t u8() { return i_ < n_ ? d_[i_++] : 0; }
  std::span<const uint8_t> bytes(size_t len) {
    len = std::min(len, n_ - std::min(i_, n_));
    std::span<const uint8_t> out(d_ + i_, len);
    i_ += len;
    return out;
  }

private:
  const uint8_t* d_;
  size_t n_;
  size_t i_ = 0;
};

const char* pick(uint8_t b, std::initializer_list<const char*> names) {
  return names.begin()[b % names.size()];
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static auto signer = [] {
    std::string e;
    return auth::AuthorizationSigner::from_pem(kKey, "key", e);
  }();
  static std::shared_ptr<const auth::AuthorizationVerifier> verifier = [] {
    std::string e;
    return std::shared_ptr<const auth::AuthorizationVerifier>(
        auth::AuthorizationVerifier::from_pem(kPub, "pub", e));
  }();
  static const auto services = [] {
    std::map<std::string, ServiceSpec, std::less<>> m;
    std::string e;
    for (const char* s : {"web=tcp://127.0.0.1:80", "dns=udp://127.0.0.1:53",
                          "db=tcp://127.0.0.1:5432"})
      if (auto spec = parse_service_spec(s, e)) m[spec->name] = *spec;
    return m;
  }();
  static const auto allow = [] {
    AllowList a;
    std::string e;
    a.add("web=alice,group:eng", e);
    a.add("dns=*", e);
    return a;
  }();
  FUZZ_CHECK(signer && verifier);
  if (size == 0) return 0;
  Input in(data, size);
  const char* service = pick(in.u8(), {"web", "dns", "db"});
  ReplayGuard replay;
  GateCounters counters;
  GateConfig cfg{kSession, "dc1", "alice", service, verifier, &allow, &services, &replay,
                 &counters};
  SessionGate gate(cfg);
  Identity agent;
  agent.role = Role::Agent;
  agent.name = "alice";
  agent.cert_sha256.fill(0xA1);
  if (in.u8() & 1) agent.groups.push_back("eng");
  gate.on_handshake(agent);

  bool accepted = false, closed = false, datagram_refused = false;
  auto check = [&] {
    for (auto& a : gate.take_actions()) {
      if (auto* o = std::get_if<OpenBackend>(&a)) {
        FUZZ_CHECK(accepted && !closed);
        FUZZ_CHECK(o->spec->name == service);
      } else if (auto* d = std::get_if<DeliverDatagram>(&a)) {
        FUZZ_CHECK(accepted && !closed);
        FUZZ_CHECK(d->spec->name == service);
      } else if (auto* c = std::get_if<CloseSession>(&a)) {
        FUZZ_CHECK(!closed);
        FUZZ_CHECK(c->code == wire::ErrorCode::NotAuthorized);
        closed = true;
      } else if (std::holds_alternative<Authorized>(a)) {
        FUZZ_CHECK(!accepted && !closed);
        accepted = true;
      } else if (std::holds_alternative<AnswerPing>(a)) {
        FUZZ_CHECK(accepted && !closed);
      } else if (std::holds_alternative<DatagramRefused>(a)) {
        FUZZ_CHECK(accepted && !closed && !datagram_refused);
        datagram_refused = true;
      }
    }
    FUZZ_CHECK(gate.authorized() == (accepted && !closed));
  };

  while (!in.empty()) {
    const uint8_t op = in.u8();
    switch (op % 6) {
    case 0: { // a signed authorization, right or wrong in any field
      const uint8_t k = in.u8();
      auth::Authorization a;
      a.session_id = (k & 1) ? kSession : kSession + 1;
      a.agent = pick(k >> 1, {"alice", "alice", "bob"});
      a.agent_cert_sha256.fill((k & 8) ? 0xA1 : 0xB2);
      a.service = pick(k >> 4, {service, service, "web", "db"});
      a.connector = (k & 64) ? "dc1" : "dc2";
      a.issuer = "relay";
      a.issued_at_ms = kNowMs - 1000;
      a.expires_at_ms = (k & 128) ? kNowMs + 60'000 : kNowMs - 1;
      auto token = signer->issue(a);
      gate.on_stream_data(0, wire::encode_authorization_stream(token), in.u8() & 1, kNowMs);
      break;
    }
    case 1: // stream 0 with whatever bytes
      gate.on_stream_data(0, in.bytes(in.u8()), in.u8() & 1, kNowMs);
      break;
    case 2: { // another stream: a header for some service, or raw bytes
      const int64_t stream = 4 * (1 + (in.u8() & 7));
      const uint8_t k = in.u8();
      if (k & 1) {
        auto h = wire::encode_stream_header(pick(k >> 1, {"web", "dns", "db", "x"}));
        gate.on_stream_data(stream, h, false, kNowMs);
      }
      gate.on_stream_data(stream, in.bytes(in.u8()), k & 2, kNowMs);
      break;
    }
    case 3: // the agent resets a stream, or its backend connected
      if (op & 8)
        gate.on_stream_gone(4 * (1 + (in.u8() & 7)));
      else
        (void)gate.take_early(4 * (1 + (in.u8() & 7)));
      break;
    case 4: { // a datagram for some service
      const uint8_t k = in.u8();
      auto payload = in.bytes(in.u8());
      gate.on_datagram(wire::encode_datagram(k, pick(k >> 4, {"web", "dns", "db"}), payload));
      break;
    }
    case 5: // raw datagram bytes
      gate.on_datagram(in.bytes(in.u8()));
      break;
    }
    check();
  }
  return 0;
}
