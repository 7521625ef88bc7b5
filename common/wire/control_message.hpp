// The control protocol between an agent or connector and the intermediate (DESIGN D2).
//
// It runs on the first client-initiated bidirectional QUIC stream (stream id 0, RFC 9000 §2.1)
// of a control connection (ALPN "ztna-control/1"). QUIC gives us reliability and ordering but
// not message boundaries, so each message is framed:
//   [u8 version = 1][u8 type][u16 payload length][payload], payload at most 4096 bytes.
// Every message has exactly one encoding (no optional fields, no varints), so decode -> encode
// is byte-exact; the fuzz target checks that. See docs/protocol.md for the field tables.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "net/address.hpp"

namespace ztna::wire {

constexpr std::string_view kControlAlpn = "ztna-control/4";
constexpr uint8_t kControlVersion = 4;
constexpr size_t kControlHeaderSize = 4;
constexpr size_t kMaxControlPayload = 4096;
constexpr size_t kMaxControlFrame = kControlHeaderSize + kMaxControlPayload;
constexpr size_t kMaxServices = 64;
// A session authorization (common/auth/authorization.hpp) as SessionReady carries it.
constexpr size_t kMaxAuthorization = 1280;

// The role a control client registers as. Its certificate says the same (docs/security.md).
enum class Role : uint8_t { Agent = 1, Connector = 2 };

// Carried as u16. The set is closed in version 1: a receiver treats any other value as malformed.
enum class ErrorCode : uint16_t {
  None = 0,
  Malformed = 1,
  UnsupportedVersion = 2,
  UnknownService = 3,
  NoConnector = 4,
  NotAuthorized = 5,
  SessionGone = 6,
  Internal = 7,
  Shutdown = 8,
  Replaced = 9,
  Limited = 10, // a rate limit or a cap on the peer's requests was hit
};

// Type codes on the wire; equal to the ControlMessage variant index + 1.
enum class ControlType : uint8_t {
  Hello = 1,
  ObservedAddress = 2,
  OpenSession = 3,
  SessionOffer = 4,
  SessionAccept = 5,
  SessionReady = 6,
  SessionReject = 7,
  SessionClosed = 8,
  ErrorMessage = 9,
  Candidates = 10,
  StartChecks = 11,
  ResumeSession = 12,
  SessionResumed = 13,
  PeerLost = 14,
  Heartbeat = 15,
};
constexpr uint8_t kMaxControlType = static_cast<uint8_t>(ControlType::Heartbeat);

// client -> intermediate, first message. Services only for connectors (agents send none).
struct Hello {
  Role role;
  std::vector<std::string> services;
  bool operator==(const Hello&) const = default;
};
// intermediate -> client, on connect and whenever the observed address changes.
struct ObservedAddress {
  Address address;
  bool operator==(const ObservedAddress&) const = default;
};
// One ICE candidate as signalled (DESIGN D4). `type` is ice::CandidateType on the wire:
// 1 host, 2 server-reflexive, 3 peer-reflexive, 4 relay.
struct CandidateEntry {
  uint8_t type;
  uint32_t priority; // RFC 8445 §5.1.2
  Address address;
  bool operator==(const CandidateEntry&) const = default;
};
constexpr size_t kMaxCandidates = 16;
// agent <-> intermediate <-> connector: one side's candidates and its short-term credentials
// (RFC 8445 §5.3) for round `generation` of connectivity checks of a session. The intermediate
// forwards it only between the session's two ends.
//
// `padding` zero bytes follow the candidates. The receiver sends checks toward addresses it has
// not validated only within three times the bytes of the Candidates messages it received (the
// anti-amplification rule of RFC 9000 §8.1, applied to signaling), so a sender pads its message
// to buy the checks its candidates need (ice::candidate_padding()).
struct Candidates {
  uint64_t session_id;
  uint32_t generation;
  std::string ufrag;    // 4..32 ice-chars (ALPHA / DIGIT / "+" / "/")
  std::string password; // 22..64 ice-chars
  std::vector<CandidateEntry> candidates;
  uint16_t padding = 0;
  // Version 4: what the sender's NAT does (NAT behaviour discovery, RFC 5780), on the wire
  // before the padding: bits 7-4 mapping (0 unknown, 1 no NAT, 2 endpoint-independent, 3
  // address-dependent, 4 address-and-port-dependent, 5 destination-dependent), bits 3-2
  // allocation (0 unknown, 1 port-preserving, 2 sequential, 3 random), bits 1-0 filtering (0
  // unknown, 1 endpoint-independent, 2 address-dependent, 3 address-and-port-dependent).
  // Mapping values above 5 are malformed.
  uint8_t nat = 0;
  bool operator==(const Candidates&) const = default;
};
// agent -> intermediate.
struct OpenSession {
  uint32_t request_id;
  std::string service;
  // Version 4: the agent's candidates for round 1 of the session it asks for, with session_id 0
  // and generation 1. The intermediate hands them to the connector right after the offer, so
  // that the checks can start as soon as the session is accepted (docs/protocol.md §6.1).
  std::optional<Candidates> candidates = std::nullopt;
  bool operator==(const OpenSession&) const = default;
};
// intermediate -> connector.
struct SessionOffer {
  uint64_t session_id;
  std::string agent;
  std::string service;
  Address agent_address;
  bool operator==(const SessionOffer&) const = default;
};
// connector -> intermediate.
struct SessionAccept {
  uint64_t session_id;
  bool operator==(const SessionAccept&) const = default;
};
// intermediate -> agent. `authorization` is the signed authorization the agent hands to the
// connector on the session's first stream (docs/protocol.md §5.1); 1..kMaxAuthorization bytes.
struct SessionReady {
  uint32_t request_id;
  uint64_t session_id;
  std::string connector;
  Address connector_address;
  std::vector<uint8_t> authorization;
  bool operator==(const SessionReady&) const = default;
};
// intermediate -> agent.
struct SessionReject {
  uint32_t request_id;
  ErrorCode code;
  std::string reason;
  bool operator==(const SessionReject&) const = default;
};
// either direction.
struct SessionClosed {
  uint64_t session_id;
  ErrorCode code;
  bool operator==(const SessionClosed&) const = default;
};
// either direction, before closing the control connection.
struct ErrorMessage {
  ErrorCode code;
  std::string reason;
  bool operator==(const ErrorMessage&) const = default;
};

// intermediate -> agent and connector, sent to both at once when both ends' Candidates of a
// round are in: the coordinated start of the checks (simultaneous open).
struct StartChecks {
  uint64_t session_id;
  uint32_t generation;
  bool operator==(const StartChecks&) const = default;
};

// Sessions outlive the control plane (DESIGN D10). After (re)registering, an agent or a connector
// announces each end-to-end session it still holds: the session, the other end's name and the
// service. The intermediate binds the relay again once both ends have announced the same
// session and current policy still allows it (SessionResumed to both), or closes it
// (SessionClosed).
struct ResumeSession {
  uint64_t session_id;
  std::string
      peer; // the other end: the connector's name from an agent, the agent's from a connector
  std::string service;
  bool operator==(const ResumeSession&) const = default;
};
// intermediate -> agent and connector: the session's relay is bound again (or for the first
// time after this intermediate started); relay frames flow.
struct SessionResumed {
  uint64_t session_id;
  bool operator==(const SessionResumed&) const = default;
};
// intermediate -> one end: the other end's control connection is gone, so the relay cannot reach
// it. The session is not closed: a direct path carries on, and the other end may come back
// (SessionResumed) before the intermediate gives up on it (SessionClosed).
struct PeerLost {
  uint64_t session_id;
  bool operator==(const PeerLost&) const = default;
};

// either direction: nothing, but it must be acknowledged. An end that wonders whether the
// intermediate is still there sends one and expects the QUIC ACK within a round trip or so
// (ControlClient probing); the receiver ignores it.
struct Heartbeat {
  bool operator==(const Heartbeat&) const = default;
};

using ControlMessage =
    std::variant<Hello, ObservedAddress, OpenSession, SessionOffer, SessionAccept, SessionReady,
                 SessionReject, SessionClosed, ErrorMessage, Candidates, StartChecks, ResumeSession,
                 SessionResumed, PeerLost, Heartbeat>;

// The frame size of `m` (header included): what the receiver counts toward its check budget.
size_t encoded_size(const Candidates& m);

const char* to_string(ErrorCode code);
const char* to_string(Role role);
bool is_known_error_code(uint16_t value);

ControlType control_type(const ControlMessage& m);
// "Hello", "SessionOffer", ... for logs.
const char* message_name(const ControlMessage& m);

// One whole frame. Reasons are passed through sanitize_reason() (text.hpp). Throws
// std::invalid_argument if m cannot be sent as-is: an invalid name, an empty address, an
// unknown role or error code, services on an agent Hello, more than kMaxServices services or
// duplicates, or a payload over kMaxControlPayload. These are our own bugs, never peer input.
std::vector<uint8_t> encode_control(const ControlMessage& m);

// Decodes the payload of one frame of the given type. Returns nullopt and sets `error` to one
// human-readable line on an unknown type, a bad field, truncation or trailing bytes.
std::optional<ControlMessage> decode_control_payload(uint8_t type, std::span<const uint8_t> payload,
                                                     std::string& error);

} // namespace ztna::wire

// The stream reassembler is part of this API; it lives in its own file.
#include "wire/control_decoder.hpp"
