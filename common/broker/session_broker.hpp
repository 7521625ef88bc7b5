// The intermediate's session broker (DESIGN D2, D6), sans-IO: it knows who is registered, which
// connector serves what, which sessions exist and who may have them, and decides every control
// message. The daemon feeds it (peer, message, now) and carries out the actions it asks for:
// messages to send, peers to disconnect, log lines.
//
// Policy lives here, deny by default (common/policy): a connector registers only the services
// it may serve, an agent gets a session only to a service it may reach, and a policy change
// closes exactly the sessions it no longer allows. For every session it issues a signed, short-
// lived authorization (common/auth) that the connector checks again on its own (enforced twice).
//
// Untrusted input is bounded: a peer that authenticates but never registers is dropped, control
// messages are rate limited per peer, pending session requests and candidate rounds are capped,
// and relay frames are forwarded only between a session's two ends within their quotas.
#pragma once

#include "control/check_coordinator.hpp"
#include "control/service_directory.hpp"
#include "identity/identity.hpp"
#include "net/address.hpp"
#include "net/rate_limiter.hpp"
#include "policy/policy.hpp"
#include "relay/relay_table.hpp"
#include "wire/control_message.hpp"

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <unordered_map>
#include <variant>
#include <vector>

namespace ztna::auth {
class AuthorizationSigner;
}

namespace ztna::broker {

using PeerId = uint64_t;
using Timestamp = uint64_t; // nanoseconds, monotonic
constexpr Timestamp kNever = UINT64_MAX;

// Time as the broker sees it: a monotonic clock for timers and rates, and the wall clock for the
// authorizations it signs (the connector that checks them is another machine).
struct Now {
  Timestamp mono = 0;
  uint64_t unix_ms = 0;
};

struct BrokerConfig {
  std::string name;                                  // ours: the issuer of authorizations
  const auth::AuthorizationSigner* signer = nullptr; // required
  std::function<void(std::span<uint8_t>)> random;    // required: a cryptographic RNG
  std::chrono::milliseconds authorization_lifetime{60000};
  std::chrono::milliseconds offer_timeout{5000}; // a connector that does not accept
  std::chrono::milliseconds hello_timeout{5000}; // authenticated, but never registered
  // A live session one of whose ends lost its control connection (DESIGN D10) waits this long
  // for that end to come back and announce it (ResumeSession); so does a session announced by
  // one end only (after a restart of ours). Then the other end hears SessionClosed. As long as
  // a session's own QUIC idle timeout, so that the intermediate never gives up first.
  std::chrono::milliseconds resume_timeout{30000};
  size_t max_unmatched_resumes =
      4096;                          // per peer: sessions it announced that wait for the other end
  size_t max_pending_per_agent = 16; // sessions asked for and not ready yet
  size_t max_sessions_per_agent = 256;
  double messages_per_second = 50; // control messages per peer
  double message_burst = 200;
  double candidates_per_second = 4; // Candidates per session and end
  double candidates_burst = 16;
  RelayQuota relay_per_session;
  RelayQuota relay_per_identity;
};

enum class LogLevel { Info, Warn };

// Members are initialised: GCC 12 otherwise warns (wrongly) that moving the variant reads them.
struct Send {
  PeerId to = 0;
  wire::ControlMessage message;
};
// Close the peer's control connection with `code` and `reason`.
struct Disconnect {
  PeerId peer = 0;
  wire::ErrorCode code = wire::ErrorCode::None;
  std::string reason;
};
struct Log {
  LogLevel level = LogLevel::Info;
  std::string line;
};
// A peer registered here (again, or with new services or a new address), or its registration is
// gone: what the deployment's shared record of homes says (DESIGN D11). A connector's carries
// the services it serves here.
struct Homed {
  Role role = Role::Agent;
  std::string name;
  Address address;
  std::vector<std::string> services;
};
struct Unhomed {
  Role role = Role::Agent;
  std::string name;
};
using Action = std::variant<Send, Disconnect, Log, Homed, Unhomed>;

struct BrokerCounters {
  uint64_t sessions_opened = 0;
  uint64_t sessions_rejected = 0;         // no connector, connector refused or never answered
  uint64_t sessions_denied = 0;           // the policy does not let the agent reach the service
  uint64_t sessions_closed_by_policy = 0; // closed because a new policy no longer allows them
  uint64_t services_refused = 0;          // a connector announced a service it may not serve
  uint64_t hello_role_mismatch = 0;       // Hello's role is not its certificate's
  uint64_t peers_replaced = 0;
  uint64_t peers_unregistered = 0; // authenticated, never sent Hello in time
  uint64_t control_messages_unexpected = 0;
  uint64_t control_rate_limited = 0; // messages over a peer's rate, dropped
  uint64_t requests_over_limit = 0;  // OpenSession refused: too many pending or open
  uint64_t candidates_forwarded = 0;
  uint64_t candidates_unauthorized = 0; // for a session the sender is not an end of
  uint64_t candidates_rate_limited = 0;
  uint64_t check_rounds_started = 0;
  uint64_t relay_frames_forwarded = 0;
  uint64_t relay_bytes_forwarded = 0;
  uint64_t relay_frames_unauthorized = 0;        // not from an end of a bound session
  uint64_t relay_frames_over_quota = 0;          // the session's quota was spent
  uint64_t relay_frames_over_identity_quota = 0; // the sending identity's quota was spent
  uint64_t sessions_resumed = 0;  // both ends announced a live session again: relay bound
  uint64_t sessions_orphaned = 0; // an end's control connection went; the session waited for it
  uint64_t resumes_refused = 0;   // ResumeSession that does not match the session, or over limit
  uint64_t resumes_denied = 0;    // ResumeSession for a session policy no longer allows
  uint64_t resumes_expired = 0;   // the other end never came back within resume_timeout
};

class SessionBroker {
public:
  struct PeerView {
    PeerId id;
    const Identity* identity;
    Address address;
    bool registered;
    std::vector<std::string> services; // served (allowed) services, for connectors
  };
  struct SessionView {
    uint64_t id;
    std::string agent, connector, service;
    bool accepted;
    uint64_t relayed_bytes;
    // "offered", "relaying", or "waiting" (an end is not connected: relay unbound).
    const char* state;
  };

  SessionBroker(BrokerConfig config, policy::PolicyPtr policy);

  // A control connection finished its TLS handshake: `identity` is what its certificate proved.
  void on_authenticated(PeerId peer, Identity identity, const Address& address, Now now);
  void on_message(PeerId peer, const wire::ControlMessage& m, Now now);
  // The peer's QUIC connection moved and proved its new address (RFC 9000 §9).
  void on_address_change(PeerId peer, const Address& now_seen);
  // The control connection is gone. Sessions still being offered end; live sessions do not
  // (DESIGN D10): their relay is unbound, the other end hears PeerLost, and the session waits
  // resume_timeout for this end to announce it again from a new connection.
  void on_disconnected(PeerId peer, Now now);
  // A new policy: re-evaluates every registration and session against it.
  void set_policy(policy::PolicyPtr policy, Now now);
  const policy::Policy& policy() const { return *policy_; }
  // A reloaded authorization key (the caller keeps it alive).
  void set_signer(const auth::AuthorizationSigner* signer) { config_.signer = signer; }

  // A relay frame of `bytes` for `session_id` from `from`: where it goes, or nullopt (dropped and
  // counted: not a session's end, or over quota).
  std::optional<Address> on_relay(uint64_t session_id, const Address& from, size_t bytes,
                                  Timestamp now);

  void handle_timeout(Now now);
  Timestamp next_timeout() const;

  // What the daemon must do, in order. Empties the queue.
  std::vector<Action> take_actions();

  const BrokerCounters& counters() const { return counters_; }
  std::vector<PeerView> peers() const;
  std::vector<SessionView> sessions() const;
  size_t peer_count() const { return peers_.size(); }
  size_t session_count() const { return sessions_.size(); }

private:
  struct Peer {
    PeerId id = 0;
    Identity identity;
    Address address;
    Timestamp authenticated_at = 0;
    bool registered = false;
    std::vector<std::string> announced; // a connector's Hello
    std::set<std::string> served;       // the announced services policy lets it serve
    RateLimiter messages;
    size_t sessions = 0; // sessions it is an end of (a connector's load)
  };
  // A live session may lack an end (0) while that end reconnects: "waiting" since `orphaned_at`.
  struct Session {
    uint64_t id = 0;
    PeerId agent = 0, connector = 0;
    std::string agent_name, connector_name; // the ends' identities, kept while an end is away
    uint32_t request_id = 0;
    bool accepted = false;
    std::string service;
    Timestamp offered_at = 0;
    uint64_t relayed_bytes = 0;
    RateLimiter agent_candidates, connector_candidates;
    Timestamp orphaned_at = kNever;
    bool waiting() const { return agent == 0 || connector == 0; }
  };

  void on_hello(Peer& peer, const wire::Hello& m, Now now);
  void on_open_session(Peer& agent, const wire::OpenSession& m, Now now);
  void on_session_accept(Peer& connector, const wire::SessionAccept& m, Now now);
  void on_session_closed(Peer& peer, const wire::SessionClosed& m);
  void on_candidates(Peer& peer, const wire::Candidates& m, Now now);
  void on_resume(Peer& peer, const wire::ResumeSession& m, Now now);
  // Both ends are back: policy again, then the relay binding and SessionResumed to both.
  void rejoin(Session& s);
  void ask_other_end(const Session& s);
  // Policy for a session's agent reaching its service and its connector serving it (either may
  // be null: not judged); empty if allowed, else why not ("<who> <may> reach ...").
  std::string denial(const Peer* agent, const Peer* connector, const std::string& service,
                     const char* may = "may not") const;
  void register_services(Peer& connector, bool policy_changed);
  void homed(const Peer& peer);
  void end_session(uint64_t id, wire::ErrorCode code, const std::string& why, PeerId notify_not);
  void reject(Peer& agent, uint32_t request_id, wire::ErrorCode code, const std::string& reason);
  Peer* find(PeerId id);
  uint64_t new_session_id();
  Session new_session(uint64_t id, const std::string& service, Now now) const;
  static policy::Principal principal(const Peer& p);
  void send(PeerId to, wire::ControlMessage m);
  void log(LogLevel level, std::string line);

  BrokerConfig config_;
  policy::PolicyPtr policy_;
  std::unordered_map<PeerId, Peer> peers_;
  std::unordered_map<uint64_t, Session> sessions_;
  RelayTable relay_;
  CheckCoordinator checks_;
  ServiceDirectory directory_;
  BrokerCounters counters_;
  std::vector<Action> actions_;
};

} // namespace ztna::broker
