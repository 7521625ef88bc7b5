// The connector's door of one end-to-end session (DESIGN D5, D6), sans-IO: everything the agent
// sends on the session passes here before it may reach a backend.
//
// Nothing is served before three checks pass, in this order:
//   1. the authorization on stream 0 carries the intermediate's signature and has not expired
//      (auth::AuthorizationVerifier);
//   2. it is for exactly this session: the agent whose certificate made the end-to-end
//      handshake (name and certificate hash), this session id, this connector, the service the
//      session was offered for, and it was not used before (ReplayGuard);
//   3. the connector's own allow list lets that agent reach that service.
// A failure closes the session. After that, one session carries one service: a stream or
// datagram naming another is refused and counted.
//
// The owner (connector/BackendSession) feeds stream data, stream ends and datagrams, and carries
// out the actions: open a backend, reset a stream, deliver a datagram, answer a ping, close.
#pragma once

#include "auth/authorization.hpp"
#include "control/service_spec.hpp"
#include "identity/identity.hpp"
#include "session/allow_list.hpp"
#include "wire/control_message.hpp"
#include "wire/stream_header.hpp"

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <unordered_map>
#include <variant>
#include <vector>

namespace ztna::session {

// Authorizations already used, until they expire: a token is good for one session once.
class ReplayGuard {
public:
  // True if (session id) was not seen before; remembers it until `expires_at_ms`.
  bool first_use(uint64_t session_id, uint64_t expires_at_ms, uint64_t now_ms);
  size_t size() const { return used_.size(); }

private:
  std::unordered_map<uint64_t, uint64_t> used_; // session id -> expiry
};

struct GateCounters {
  uint64_t authorizations_accepted = 0;
  uint64_t authorizations_malformed = 0;  // stream 0 or the token does not parse
  uint64_t authorizations_forged = 0;     // signature does not verify with a trusted key
  uint64_t authorizations_expired = 0;    // expired or not yet valid
  uint64_t authorizations_mismatched = 0; // another agent, session, service, connector
  uint64_t authorizations_replayed = 0;
  uint64_t allow_list_denied = 0;
  uint64_t streams_wrong_service = 0; // a stream naming another service than the session's
  uint64_t datagrams_wrong_service = 0;
  uint64_t streams_malformed = 0;
  uint64_t datagrams_malformed = 0;
  uint64_t datagrams_dropped = 0; // before authorization, over the queue
  uint64_t unknown_service = 0;
};

struct GateConfig {
  uint64_t session_id = 0;
  std::string connector; // our own name
  std::string agent;     // the agent the intermediate offered the session for
  std::string service;   // the one service the session may carry
  std::shared_ptr<const auth::AuthorizationVerifier> verifier; // survives a reload

  const AllowList* allow = nullptr;
  const std::map<std::string, ServiceSpec, std::less<>>* services = nullptr;
  ReplayGuard* replay = nullptr;
  GateCounters* counters = nullptr;
};

// --- what the owner is asked to do ---
// Connect stream `stream` to the backend of `spec`; `early` holds the bytes that came after the
// header (more may follow: take_early() once the backend is connected).
struct OpenBackend {
  int64_t stream;
  const ServiceSpec* spec;
};
struct ResetStream {
  int64_t stream;
  wire::StreamError code;
  std::string why; // for the log
};
// The application consumed `bytes` of `stream` (headers, stream 0): extend its flow control.
struct Consume {
  int64_t stream;
  size_t bytes;
};
struct DeliverDatagram {
  uint32_t flow;
  const ServiceSpec* spec;
  std::vector<uint8_t> payload;
};
struct AnswerPing {
  uint64_t id;
};
struct CloseSession {
  wire::ErrorCode code;
  std::string reason; // sent to the agent and logged
};
struct Authorized {
  std::string line; // for the log: who, what, until when
};
// A datagram for another service than the session's was dropped. Said once per session (the
// counter counts each): an agent that keeps sending gets counters, not a log line per datagram.
struct DatagramRefused {
  std::string why; // for the log
};
using GateAction = std::variant<OpenBackend, ResetStream, Consume, DeliverDatagram, AnswerPing,
                                CloseSession, Authorized, DatagramRefused>;

class SessionGate {
public:
  static constexpr size_t kMaxQueuedDatagrams = 64; // before authorization

  explicit SessionGate(GateConfig config) : config_(std::move(config)) {}

  // The end-to-end handshake completed with this (verified) agent certificate.
  void on_handshake(const Identity& agent) { agent_ = agent; }
  void on_stream_data(int64_t stream, std::span<const uint8_t> data, bool fin, uint64_t now_ms);
  // The agent reset the stream, or it closed: forget it.
  void on_stream_gone(int64_t stream);
  void on_datagram(std::span<const uint8_t> data);
  // The backend of `stream` is connected: the bytes held for it (and whether FIN came). The
  // stream leaves the gate; its data goes straight to the backend from now on.
  std::pair<std::vector<uint8_t>, bool> take_early(int64_t stream);

  std::vector<GateAction> take_actions();
  bool authorized() const { return state_ == State::Authorized; }
  bool refused() const { return state_ == State::Refused; }
  const GateConfig& config() const { return config_; }

private:
  enum class State { WaitingForAuthorization, Authorized, Refused };
  enum class StreamState { Header, WaitingForAuthorization, Connecting };
  struct PendingStream {
    StreamState state = StreamState::Header;
    wire::StreamHeaderDecoder header;
    const ServiceSpec* spec = nullptr;
    std::vector<uint8_t> early;
    bool fin = false;
  };

  void on_authorization_stream(std::span<const uint8_t> data, bool fin, uint64_t now_ms);
  void check_authorization(std::span<const uint8_t> token, uint64_t now_ms);
  void refuse(std::string reason);
  void on_header(int64_t stream, PendingStream& p);
  void serve_datagram(std::span<const uint8_t> data);
  void act(GateAction a) { actions_.push_back(std::move(a)); }
  GateCounters& counters() { return *config_.counters; }

  GateConfig config_;
  State state_ = State::WaitingForAuthorization;
  std::optional<Identity> agent_;
  wire::AuthorizationStreamDecoder authorization_;
  std::map<int64_t, PendingStream> streams_;
  std::deque<std::vector<uint8_t>> queued_datagrams_;
  std::vector<GateAction> actions_;
  bool datagram_refusal_said_ = false;
};

} // namespace ztna::session
