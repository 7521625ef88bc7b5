#include "wire/control_message.hpp"

#include <algorithm>
#include <stdexcept>

#include "wire/address_codec.hpp"
#include "wire/byte_io.hpp"
#include "wire/text.hpp"

namespace ztna::wire {
namespace {

constexpr const char* kMessageNames[] = {
    "Hello",        "ObservedAddress", "OpenSession",    "SessionOffer", "SessionAccept",
    "SessionReady", "SessionReject",   "SessionClosed",  "ErrorMessage", "Candidates",
    "StartChecks",  "ResumeSession",   "SessionResumed", "PeerLost",     "Heartbeat",
};
static_assert(std::size(kMessageNames) == std::variant_size_v<ControlMessage>);
static_assert(kMaxControlType == std::variant_size_v<ControlMessage>);

constexpr size_t kMinUfrag = 4, kMaxUfrag = 32;              // RFC 8445 §5.3 (upper bound ours)
constexpr size_t kMinIcePassword = 22, kMaxIcePassword = 64; // RFC 8445 §5.3 (upper bound ours)
constexpr uint8_t kMinCandidateType = 1, kMaxCandidateType = 4;
constexpr uint8_t kMaxNatMapping = 5; // Candidates::nat, bits 7-4

// ice-char = ALPHA / DIGIT / "+" / "/" (RFC 8839 §5.4).
bool is_ice_string(std::string_view s, size_t min, size_t max) {
  if (s.size() < min || s.size() > max) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '+' ||
           c == '/';
  });
}

[[noreturn]] void invalid(const std::string& what) {
  throw std::invalid_argument("encode_control: " + what);
}

// --- encoding -------------------------------------------------------------------------------

void put_name(ByteWriter& w, std::string_view name, const char* field) {
  if (!is_valid_name(name)) invalid(std::string("invalid ") + field + " name");
  w.str8(name);
}

void put_code(ByteWriter& w, ErrorCode code) {
  if (!is_known_error_code(static_cast<uint16_t>(code))) invalid("unknown error code");
  w.u16(static_cast<uint16_t>(code));
}

void put_address(ByteWriter& w, const Address& a, const char* field) {
  if (a.empty()) invalid(std::string("empty ") + field);
  write_address(w, a);
}

void put(ByteWriter& w, const Hello& m) {
  if (m.role != Role::Agent && m.role != Role::Connector) invalid("unknown role");
  if (m.role == Role::Agent && !m.services.empty()) invalid("agent Hello with services");
  if (m.services.size() > kMaxServices) invalid("more than 64 services");
  for (size_t i = 0; i < m.services.size(); ++i)
    if (std::find(m.services.begin(), m.services.begin() + i, m.services[i]) !=
        m.services.begin() + i)
      invalid("duplicate service");
  w.u8(static_cast<uint8_t>(m.role));
  w.u8(static_cast<uint8_t>(m.services.size()));
  for (const auto& s : m.services)
    put_name(w, s, "service");
}

void put(ByteWriter& w, const ObservedAddress& m) {
  put_address(w, m.address, "address");
}

void put(ByteWriter& w, const Candidates& m);

void put(ByteWriter& w, const OpenSession& m) {
  w.u32(m.request_id);
  put_name(w, m.service, "service");
  if (!m.candidates) return;
  if (m.candidates->session_id != 0 || m.candidates->generation != 1)
    invalid("OpenSession candidates must have session 0 and generation 1");
  put(w, *m.candidates);
}

void put(ByteWriter& w, const SessionOffer& m) {
  w.u64(m.session_id);
  put_name(w, m.agent, "agent");
  put_name(w, m.service, "service");
  put_address(w, m.agent_address, "agent address");
}

void put(ByteWriter& w, const SessionAccept& m) {
  w.u64(m.session_id);
}

void put(ByteWriter& w, const SessionReady& m) {
  if (m.authorization.empty() || m.authorization.size() > kMaxAuthorization)
    invalid("authorization of " + std::to_string(m.authorization.size()) + " bytes");
  w.u32(m.request_id);
  w.u64(m.session_id);
  put_name(w, m.connector, "connector");
  put_address(w, m.connector_address, "connector address");
  w.u16(static_cast<uint16_t>(m.authorization.size()));
  w.bytes(m.authorization);
}

void put(ByteWriter& w, const SessionReject& m) {
  w.u32(m.request_id);
  put_code(w, m.code);
  w.str8(sanitize_reason(m.reason));
}

void put(ByteWriter& w, const SessionClosed& m) {
  w.u64(m.session_id);
  put_code(w, m.code);
}

void put(ByteWriter& w, const ErrorMessage& m) {
  put_code(w, m.code);
  w.str8(sanitize_reason(m.reason));
}

void put(ByteWriter& w, const Candidates& m) {
  if (!is_ice_string(m.ufrag, kMinUfrag, kMaxUfrag)) invalid("invalid ufrag");
  if (!is_ice_string(m.password, kMinIcePassword, kMaxIcePassword)) invalid("invalid password");
  if (m.candidates.size() > kMaxCandidates) invalid("more than 16 candidates");
  w.u64(m.session_id);
  w.u32(m.generation);
  w.str8(m.ufrag);
  w.str8(m.password);
  w.u8(static_cast<uint8_t>(m.candidates.size()));
  for (const auto& c : m.candidates) {
    if (c.type < kMinCandidateType || c.type > kMaxCandidateType) invalid("unknown candidate type");
    w.u8(c.type);
    w.u32(c.priority);
    put_address(w, c.address, "candidate address");
  }
  if ((m.nat >> 4) > kMaxNatMapping) invalid("unknown NAT mapping kind");
  w.u8(m.nat);
  w.u16(m.padding);
  w.bytes(std::vector<uint8_t>(m.padding, 0));
}

void put(ByteWriter& w, const StartChecks& m) {
  w.u64(m.session_id);
  w.u32(m.generation);
}

void put(ByteWriter& w, const ResumeSession& m) {
  w.u64(m.session_id);
  put_name(w, m.peer, "peer");
  put_name(w, m.service, "service");
}

void put(ByteWriter& w, const SessionResumed& m) {
  w.u64(m.session_id);
}

void put(ByteWriter& w, const PeerLost& m) {
  w.u64(m.session_id);
}

void put(ByteWriter&, const Heartbeat&) {}

// --- decoding -------------------------------------------------------------------------------

// A ByteReader that remembers the first reason it failed for.
class FieldReader {
public:
  FieldReader(std::span<const uint8_t> payload, std::string& error) : r_(payload), error_(error) {}

  uint8_t u8() { return r_.u8(); }
  uint16_t u16() { return r_.u16(); }
  uint32_t u32() { return r_.u32(); }
  uint64_t u64() { return r_.u64(); }

  std::string name(const char* field) {
    auto s = r_.str8();
    if (!r_.ok()) return {};
    if (!is_valid_name(s)) fail(std::string("invalid ") + field + " name");
    return std::string(s);
  }

  std::string ice_string(const char* field, size_t min, size_t max) {
    auto s = r_.str8();
    if (!r_.ok()) return {};
    if (!is_ice_string(s, min, max)) fail(std::string("invalid ") + field);
    return std::string(s);
  }

  std::string reason() {
    auto s = r_.str8();
    if (!r_.ok()) return {};
    if (!is_valid_reason(s)) fail("reason is not printable UTF-8");
    return std::string(s);
  }

  std::span<const uint8_t> bytes(size_t n) { return r_.bytes(n); }

  ErrorCode code() {
    const uint16_t v = r_.u16();
    if (r_.ok() && !is_known_error_code(v)) fail("unknown error code " + std::to_string(v));
    return static_cast<ErrorCode>(v);
  }

  Address address(const char* field) {
    ByteReader probe = r_;
    const uint8_t family = probe.u8();
    auto a = read_address(r_);
    if (!a && probe.ok() && family != kFamilyV4 && family != kFamilyV6)
      fail(std::string(field) + " has unknown family " + std::to_string(family));
    return a.value_or(Address{});
  }

  void fail(std::string reason) {
    if (error_.empty()) error_ = std::move(reason);
    r_.fail();
  }

  bool ok() const { return r_.ok(); }
  size_t remaining() const { return r_.remaining(); }

  // Succeeds only if every field was read and nothing is left over.
  bool finish() {
    if (r_.ok() && r_.remaining() != 0)
      fail(std::to_string(r_.remaining()) + " trailing bytes");
    else if (!r_.ok() && error_.empty())
      error_ = "truncated";
    return r_.ok();
  }

private:
  ByteReader r_;
  std::string& error_;
};

Hello get_hello(FieldReader& f) {
  Hello m{};
  const uint8_t role = f.u8();
  const uint8_t count = f.u8();
  if (!f.ok()) return m;
  if (role == static_cast<uint8_t>(Role::Agent) || role == static_cast<uint8_t>(Role::Connector))
    m.role = static_cast<Role>(role);
  else
    f.fail("unknown role " + std::to_string(role));
  if (count > kMaxServices) f.fail("more than 64 services");
  if (m.role == Role::Agent && count != 0) f.fail("agent Hello lists services");
  for (uint8_t i = 0; i < count && f.ok(); ++i) {
    auto s = f.name("service");
    if (std::find(m.services.begin(), m.services.end(), s) != m.services.end())
      f.fail("duplicate service");
    m.services.push_back(std::move(s));
  }
  return m;
}

ObservedAddress get_observed(FieldReader& f) {
  return {f.address("address")};
}

Candidates get_candidates(FieldReader& f);

OpenSession get_open(FieldReader& f) {
  OpenSession m{};
  m.request_id = f.u32();
  m.service = f.name("service");
  if (f.ok() && f.remaining() > 0) {
    auto c = get_candidates(f);
    if (f.ok() && (c.session_id != 0 || c.generation != 1))
      f.fail("OpenSession candidates must have session 0 and generation 1");
    m.candidates = std::move(c);
  }
  return m;
}

SessionOffer get_offer(FieldReader& f) {
  SessionOffer m{};
  m.session_id = f.u64();
  m.agent = f.name("agent");
  m.service = f.name("service");
  m.agent_address = f.address("agent address");
  return m;
}

SessionAccept get_accept(FieldReader& f) {
  return {f.u64()};
}

SessionReady get_ready(FieldReader& f) {
  SessionReady m{};
  m.request_id = f.u32();
  m.session_id = f.u64();
  m.connector = f.name("connector");
  m.connector_address = f.address("connector address");
  const uint16_t len = f.u16();
  if (f.ok() && (len == 0 || len > kMaxAuthorization))
    f.fail("authorization of " + std::to_string(len) + " bytes");
  auto a = f.bytes(len);
  m.authorization.assign(a.begin(), a.end());
  return m;
}

SessionReject get_reject(FieldReader& f) {
  SessionReject m{};
  m.request_id = f.u32();
  m.code = f.code();
  m.reason = f.reason();
  return m;
}

SessionClosed get_closed(FieldReader& f) {
  SessionClosed m{};
  m.session_id = f.u64();
  m.code = f.code();
  return m;
}

ErrorMessage get_error(FieldReader& f) {
  ErrorMessage m{};
  m.code = f.code();
  m.reason = f.reason();
  return m;
}

Candidates get_candidates(FieldReader& f) {
  Candidates m{};
  m.session_id = f.u64();
  m.generation = f.u32();
  m.ufrag = f.ice_string("ufrag", kMinUfrag, kMaxUfrag);
  m.password = f.ice_string("password", kMinIcePassword, kMaxIcePassword);
  const uint8_t count = f.u8();
  if (f.ok() && count > kMaxCandidates) f.fail("more than 16 candidates");
  for (uint8_t i = 0; i < count && f.ok(); ++i) {
    CandidateEntry c{};
    c.type = f.u8();
    if (f.ok() && (c.type < kMinCandidateType || c.type > kMaxCandidateType))
      f.fail("unknown candidate type " + std::to_string(c.type));
    c.priority = f.u32();
    c.address = f.address("candidate address");
    m.candidates.push_back(std::move(c));
  }
  m.nat = f.u8();
  if (f.ok() && (m.nat >> 4) > kMaxNatMapping)
    f.fail("unknown NAT mapping kind " + std::to_string(m.nat >> 4));
  m.padding = f.u16();
  auto pad = f.bytes(m.padding);
  if (f.ok() && std::any_of(pad.begin(), pad.end(), [](uint8_t b) { return b != 0; }))
    f.fail("padding is not all zeros");
  return m;
}

StartChecks get_start_checks(FieldReader& f) {
  StartChecks m{};
  m.session_id = f.u64();
  m.generation = f.u32();
  return m;
}

ResumeSession get_resume(FieldReader& f) {
  ResumeSession m{};
  m.session_id = f.u64();
  m.peer = f.name("peer");
  m.service = f.name("service");
  return m;
}

ControlMessage get_message(ControlType type, FieldReader& f) {
  switch (type) {
  case ControlType::Hello:
    return get_hello(f);
  case ControlType::ObservedAddress:
    return get_observed(f);
  case ControlType::OpenSession:
    return get_open(f);
  case ControlType::SessionOffer:
    return get_offer(f);
  case ControlType::SessionAccept:
    return get_accept(f);
  case ControlType::SessionReady:
    return get_ready(f);
  case ControlType::SessionReject:
    return get_reject(f);
  case ControlType::SessionClosed:
    return get_closed(f);
  case ControlType::Candidates:
    return get_candidates(f);
  case ControlType::StartChecks:
    return get_start_checks(f);
  case ControlType::ResumeSession:
    return get_resume(f);
  case ControlType::SessionResumed:
    return SessionResumed{f.u64()};
  case ControlType::PeerLost:
    return PeerLost{f.u64()};
  case ControlType::Heartbeat:
    return Heartbeat{};
  case ControlType::ErrorMessage:
    break;
  }
  return get_error(f);
}

} // namespace

const char* to_string(ErrorCode code) {
  switch (code) {
  case ErrorCode::None:
    return "none";
  case ErrorCode::Malformed:
    return "malformed";
  case ErrorCode::UnsupportedVersion:
    return "unsupported version";
  case ErrorCode::UnknownService:
    return "unknown service";
  case ErrorCode::NoConnector:
    return "no connector";
  case ErrorCode::NotAuthorized:
    return "not authorized";
  case ErrorCode::SessionGone:
    return "session gone";
  case ErrorCode::Internal:
    return "internal error";
  case ErrorCode::Shutdown:
    return "shutdown";
  case ErrorCode::Replaced:
    return "replaced";
  case ErrorCode::Limited:
    return "limit reached";
  }
  return "unknown error code";
}

const char* to_string(Role role) {
  switch (role) {
  case Role::Agent:
    return "agent";
  case Role::Connector:
    return "connector";
  }
  return "unknown role";
}

bool is_known_error_code(uint16_t value) {
  return value <= static_cast<uint16_t>(ErrorCode::Limited);
}

size_t encoded_size(const Candidates& m) {
  size_t n = kControlHeaderSize + 8 + 4 + 1 + m.ufrag.size() + 1 + m.password.size() + 1 + 1 + 2 +
             m.padding;
  for (const auto& c : m.candidates)
    n += 1 + 4 + 1 + (c.address.is_v6() ? 16 : 4) + 2;
  return n;
}

ControlType control_type(const ControlMessage& m) {
  return static_cast<ControlType>(m.index() + 1);
}

const char* message_name(const ControlMessage& m) {
  return kMessageNames[m.index()];
}

std::vector<uint8_t> encode_control(const ControlMessage& m) {
  std::vector<uint8_t> out;
  ByteWriter w(out);
  w.u8(kControlVersion);
  w.u8(static_cast<uint8_t>(control_type(m)));
  w.u16(0); // patched below once the payload size is known
  std::visit([&](const auto& msg) { put(w, msg); }, m);
  const size_t payload = out.size() - kControlHeaderSize;
  if (payload > kMaxControlPayload) invalid("payload larger than 4096 bytes");
  out[2] = static_cast<uint8_t>(payload >> 8);
  out[3] = static_cast<uint8_t>(payload);
  return out;
}

std::optional<ControlMessage> decode_control_payload(uint8_t type, std::span<const uint8_t> payload,
                                                     std::string& error) {
  error.clear();
  if (type == 0 || type > kMaxControlType) {
    error = "unknown control message type " + std::to_string(type);
    return std::nullopt;
  }
  const auto t = static_cast<ControlType>(type);
  FieldReader f(payload, error);
  ControlMessage m = get_message(t, f);
  if (!f.finish()) {
    error = std::string(kMessageNames[type - 1]) + ": " + error;
    return std::nullopt;
  }
  return m;
}

} // namespace ztna::wire
