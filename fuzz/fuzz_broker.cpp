// SessionBroker fed sequences of events from several peers: authentications with assorted
// identities, control messages decoded from the input, disconnects, address changes, relay
// frames, policy changes and the passing of time. Checks that
//  - every message the broker asks to send encodes (it never produces what the wire refuses),
//  - it only ever addresses peers that are connected,
//  - relay frames only ever go to a connected peer's current address, never back to the sender,
//  - sessions, pending requests and peers stay within their bounds.
#include "auth/authorization.hpp"
#include "broker/session_broker.hpp"
#include "fuzz_check.hpp"
#include "wire/control_message.hpp"

#include <map>
#include <set>

using namespace ztna;
using namespace ztna::broker;

namespace {

// TEST-ONLY key (the one tests/unit/test_keys.hpp calls kKeyA); it protects nothing.
const char* const kKey = "-----BEGIN PRIVATE KEY-----\n"
                         "MC4CAQAwBQYDK2VwBCIEID/Vs0mSJAaC1YmUWP0ZLFBRRvv2YKCsiNnZg0V9qtye\n"
                         "-----END PRIVATE KEY-----\n";

const char* const kPolicies[] = {
    R"(version = 1
[[access]]
agents = ["*"]
services = ["*"]
[[serve]]
connectors = ["*"]
services = ["*"]
)",
    R"(version = 1
[[access]]
groups = ["eng"]
services = ["web", "ssh"]
[[access]]
agents = ["a1"]
services = ["*"]
effect = "deny"
[[serve]]
connectors = ["c1"]
services = ["web"]
[[serve]]
groups = ["dc"]
services = ["*"]
)",
    R"(version = 1
[[serve]]
connectors = ["*"]
services = ["*"]
)",
};

class Input {
public:
  Input(const uint8_t* d, size_t n) : d_(d), n_(n) {}
  bool empty() const { return i_ >= n_; }
  uint8_t u8() { return i_ < n_ ? d_[i_++] : 0; }
  uint16_t u16() { return static_cast<uint16_t>(u8() << 8 | u8()); }
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

policy::PolicyPtr policy_of(size_t i) {
  static std::vector<policy::PolicyPtr> cache;
  if (cache.empty())
    for (const char* text : kPolicies) {
      auto r = policy::Policy::parse(text, "fuzz.toml");
      FUZZ_CHECK(r.policy);
      cache.push_back(r.policy);
    }
  return cache[i % cache.size()];
}

Identity identity_of(uint8_t b) {
  static const char* names[] = {"a1", "a2", "c1", "c2"};
  Identity id;
  id.role = (b & 1) ? Role::Connector : Role::Agent;
  id.name = names[(b >> 1) & 3];
  if (b & 8) id.groups.push_back("eng");
  if (b & 16) id.groups.push_back("dc");
  id.cert_sha256.fill(b);
  id.serial = "01";
  return id;
}

Address address_of(uint8_t b) {
  return Address::ipv4(0xC0000200u | (b & 7), static_cast<uint16_t>(1000 + (b >> 3)));
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static std::unique_ptr<auth::AuthorizationSigner> signer = [] {
    std::string error;
    auto s = auth::AuthorizationSigner::from_pem(kKey, "fuzz key", error);
    FUZZ_CHECK(s);
    return s;
  }();
  BrokerConfig cfg;
  cfg.name = "fuzz-relay";
  cfg.signer = signer.get();
  uint64_t counter = 1;
  cfg.random = [&](std::span<uint8_t> out) {
    for (auto& b : out) b = static_cast<uint8_t>(counter++ * 131);
  };
  cfg.max_pending_per_agent = 4;
  cfg.max_sessions_per_agent = 8;
  cfg.max_unmatched_resumes = 8;
  cfg.relay_per_session = RelayQuota{100000, 10000};
  SessionBroker broker(cfg, policy_of(0));
  Now now{1'000'000'000, 1'700'000'000'000};
  std::map<PeerId, Address> connected;

  auto check_actions = [&] {
    for (const auto& a : broker.take_actions()) {
      if (auto* s = std::get_if<Send>(&a)) {
        FUZZ_CHECK(connected.count(s->to));
        (void)wire::encode_control(s->message); // throws (and so aborts) if not encodable
      } else if (auto* d = std::get_if<Disconnect>(&a)) {
        FUZZ_CHECK(connected.count(d->peer));
        FUZZ_CHECK(wire::is_known_error_code(static_cast<uint16_t>(d->code)));
      }
    }
  };

  Input in(data, size);
  while (!in.empty()) {
    const uint8_t op = in.u8();
    const PeerId peer = 1 + (in.u8() & 7);
    switch (op % 8) {
    case 0: { // a control connection authenticates
      if (connected.count(peer)) break;
      const auto a = address_of(in.u8());
      connected[peer] = a;
      broker.on_authenticated(peer, identity_of(in.u8()), a, now);
      break;
    }
    case 1:
    case 2: { // a control message, from its payload bytes
      if (!connected.count(peer)) break;
      const uint8_t type = in.u8() % (wire::kMaxControlType + 1);
      auto payload = in.bytes(in.u8());
      std::string error;
      if (auto m = wire::decode_control_payload(type, payload, error))
        broker.on_message(peer, *m, now);
      break;
    }
    case 3: { // a well-formed request or answer, so that sessions really happen
      if (!connected.count(peer)) break;
      static const char* services[] = {"web", "ssh", "db"};
      const uint8_t k = in.u8();
      switch (k % 4) {
      case 0:
        broker.on_message(peer, wire::Hello{(k & 4) ? wire::Role::Connector : wire::Role::Agent,
                                            (k & 4) ? std::vector<std::string>{"web", "ssh", "db"}
                                                    : std::vector<std::string>{}},
                          now);
        break;
      case 1:
        broker.on_message(peer, wire::OpenSession{k, services[(k >> 2) % 3]}, now);
        break;
      default:
        for (const auto& s : broker.sessions())
          if ((s.id & 3) == (k >> 6)) {
            if (k % 4 == 2)
              broker.on_message(peer, wire::SessionAccept{s.id}, now);
            else if (k & 0x20) // resumed by either end, named right or wrong
              broker.on_message(peer,
                                wire::ResumeSession{s.id ^ (k & 0x10), (k & 8) ? s.agent : s.connector,
                                                    s.service},
                                now);
            else
              broker.on_message(peer,
                                wire::Candidates{s.id, k, "abcd", std::string(22, 'p'),
                                                 {{1, 1, address_of(k)}}},
                                now);
          }
      }
      break;
    }
    case 4: // the connection goes away
      if (!connected.count(peer)) break;
      broker.on_disconnected(peer, now);
      connected.erase(peer);
      break;
    case 5: { // NAT rebinding
      if (!connected.count(peer)) break;
      const auto a = address_of(in.u8());
      connected[peer] = a;
      broker.on_address_change(peer, a);
      break;
    }
    case 6: { // a relay frame
      const auto from = address_of(in.u8());
      uint64_t session = in.u8();
      for (const auto& s : broker.sessions())
        if ((s.id & 0xff) == session) session = s.id;
      if (auto to = broker.on_relay(session, from, in.u16() % 1500, now.mono)) {
        FUZZ_CHECK(!(*to == from));
        bool known = false;
        for (auto& [id, a] : connected)
          known = known || a == *to;
        FUZZ_CHECK(known);
      }
      break;
    }
    case 7: { // time passes, timers run, maybe a new policy
      const uint8_t k = in.u8();
      now.mono += static_cast<Timestamp>(k) * 50'000'000;
      now.unix_ms += static_cast<uint64_t>(k) * 50;
      broker.handle_timeout(now);
      if (k % 16 == 0) broker.set_policy(policy_of(k / 16), now);
      break;
    }
    }
    check_actions();
    FUZZ_CHECK(broker.peer_count() <= connected.size());
    // Opened (8 per agent) plus resumed ones waiting for their other end (8 per peer).
    FUZZ_CHECK(broker.session_count() <= 8 * 8 + 8 * 8);
  }
  return 0;
}
