// Session authorizations: short-lived tokens that the intermediate signs and a connector checks.
//
// When the intermediate's policy allows an agent to reach a service through a connector, it
// issues an Authorization for that one session and signs it with its Ed25519 key. The agent
// carries it to the connector inside the end-to-end session, and the connector verifies it with
// the intermediate's public key(s) before serving anything. So a connector trusts the
// intermediate's policy decision without trusting the path the token took, and a token is
// worthless for any other session, agent certificate, service or connector, or after it expires.
//
// Wire format (docs/protocol.md, "Session authorization"), big-endian, one encoding only:
//   [u8 version = 1][u64 session id][str8 agent][32 agent certificate SHA-256][str8 service]
//   [str8 connector][str8 issuer][u64 issued at][u64 expires at]   <- the body
//   [64 Ed25519 signature over kSignatureContext followed by the body]
// Times are Unix milliseconds: the intermediate and the connector are different machines, so
// only wall-clock time means the same on both.
//
// Parsing and verification take untrusted bytes: they never throw and never read out of bounds.
// Verification allocates nothing for a token that is malformed or badly signed, beyond the
// one-line reason it gives.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

// GnuTLS key handles (gnutls/abstract.h), declared here so that users need not include GnuTLS.
struct gnutls_privkey_st;
struct gnutls_pubkey_st;

namespace ztna::auth {

constexpr uint8_t kAuthorizationVersion = 1;
constexpr size_t kCertificateHashSize = 32; // SHA-256
constexpr size_t kSignatureSize = 64;       // Ed25519 (RFC 8032)
// What is signed is this prefix followed by the body. The prefix keeps a signature made for an
// authorization from ever being valid for any other message signed with the same key
// (domain separation); the NUL ends it unambiguously.
constexpr std::string_view kSignatureContext{"ztna authorization v1\0", 22};
// The same for the records intermediates share through etcd (DESIGN D11): signed with the same
// key, never valid as an authorization, nor an authorization as a record.
constexpr std::string_view kRecordSignatureContext{"ztna shared record v1\0", 22};
// Body sizes: 1 version + 8 session id + 4 names (1..255 bytes each, plus a length byte) +
// 32 hash + 8 + 8 times.
constexpr size_t kMinBodySize = 1 + 8 + 4 * (1 + 1) + kCertificateHashSize + 8 + 8;
constexpr size_t kMaxBodySize = 1 + 8 + 4 * (1 + 255) + kCertificateHashSize + 8 + 8;
constexpr size_t kMinAuthorizationSize = kMinBodySize + kSignatureSize; // 129
constexpr size_t kMaxAuthorizationSize = kMaxBodySize + kSignatureSize; // 1145
// How far in the future issued_at may be before a token is not yet valid: the two machines'
// clocks are never exactly in step (NTP keeps them well within this).
constexpr uint64_t kClockSkewAllowanceMs = 30'000;
// A verifier tries every trusted key on each token, so their number bounds the work a forged
// token costs. Rotation needs two.
constexpr size_t kMaxTrustedKeys = 8;

using CertificateHash = std::array<uint8_t, kCertificateHashSize>;

struct Authorization {
  uint64_t session_id = 0;
  std::string agent; // names: ztna::wire::is_valid_name
  CertificateHash agent_cert_sha256{};
  std::string service;
  std::string connector;
  std::string issuer; // the intermediate's name
  uint64_t issued_at_ms = 0;
  uint64_t expires_at_ms = 0; // never before issued_at_ms

  bool operator==(const Authorization&) const = default;
};

// SHA-256 of a DER-encoded certificate. Throws std::runtime_error if GnuTLS cannot hash (never
// in practice); a made-up hash could match another made-up hash.
CertificateHash certificate_sha256(std::span<const uint8_t> der);

// The body (everything the signature covers, without kSignatureContext). Throws
// std::invalid_argument if a name is not valid or expires_at_ms is before issued_at_ms: encoders
// are given our own data, and a token that breaks the rules is a bug, not something to send.
std::vector<uint8_t> encode_body(const Authorization& a);

// Parses exactly one body: no bytes may be missing or left over. On failure returns nullopt and
// sets `error` to one line saying why.
std::optional<Authorization> parse_body(std::span<const uint8_t> body, std::string& error);

// Parses a whole token (body and signature) WITHOUT checking the signature: for logs and tools.
// Anything that grants access must go through AuthorizationVerifier::verify instead.
std::optional<Authorization> parse_token(std::span<const uint8_t> token, std::string& error);

// Holds the intermediate's Ed25519 private key.
class AuthorizationSigner {
public:
  // Loads a PEM private key file (PKCS#8, as `openssl genpkey -algorithm ED25519` writes it).
  // Returns nullptr and sets `error` (naming the file and the reason) if the file cannot be
  // read, holds no usable private key, or holds a key that is not Ed25519.
  static std::unique_ptr<AuthorizationSigner> load(const std::string& path, std::string& error);
  // The same from PEM text; `source` names it in error messages.
  static std::unique_ptr<AuthorizationSigner> from_pem(std::string_view pem,
                                                       std::string_view source, std::string& error);

  ~AuthorizationSigner();
  AuthorizationSigner(const AuthorizationSigner&) = delete;
  AuthorizationSigner& operator=(const AuthorizationSigner&) = delete;

  // The whole token: body then signature. Throws std::invalid_argument like encode_body, and
  // std::runtime_error if GnuTLS fails to sign.
  std::vector<uint8_t> issue(const Authorization& a) const;
  // A record the deployment's intermediates share (they all hold this key): its Ed25519
  // signature, and whether a signature over `record` was made with this key.
  std::vector<uint8_t> sign_record(std::string_view record) const;
  bool verify_record(std::string_view record, std::span<const uint8_t> signature) const;

private:
  explicit AuthorizationSigner(gnutls_privkey_st* key) : key_(key) {}
  gnutls_privkey_st* key_;
};

// Holds the Ed25519 public keys a connector trusts.
class AuthorizationVerifier {
public:
  // In the order the checks are made; the first that fails is the result.
  enum class Result { Ok, Malformed, BadSignature, NotYetValid, Expired };

  // Loads every PEM public key (SubjectPublicKeyInfo, `-----BEGIN PUBLIC KEY-----`, as
  // `openssl pkey -pubout` writes it) from one file; several keys allow rotation. Text outside
  // the PEM blocks is ignored. Returns nullptr and sets `error` (naming the file and the reason)
  // if the file cannot be read, holds no public key, more than kMaxTrustedKeys, any PEM block
  // other than a public key (a private key here would be a leak), or a key that is not Ed25519.
  static std::unique_ptr<AuthorizationVerifier> load(const std::string& path, std::string& error);
  // The same from PEM text; `source` names it in error messages.
  static std::unique_ptr<AuthorizationVerifier>
  from_pem(std::string_view pem, std::string_view source, std::string& error);

  ~AuthorizationVerifier();
  AuthorizationVerifier(const AuthorizationVerifier&) = delete;
  AuthorizationVerifier& operator=(const AuthorizationVerifier&) = delete;

  // Checks, in this order: the token is well formed (Malformed); it is signed by one of the
  // trusted keys (BadSignature); issued_at is at most kClockSkewAllowanceMs after now
  // (NotYetValid); now is not after expires_at (Expired). `out` is set when the signature
  // verifies (Ok, NotYetValid, Expired) and left alone otherwise; `why` is one line for the log
  // when the result is not Ok, and empty when it is. Whether the token is for this session is
  // the caller's question (mismatch()).
  Result verify(std::span<const uint8_t> token, uint64_t now_unix_ms, Authorization& out,
                std::string& why) const;

  size_t key_count() const { return keys_.size(); }

private:
  AuthorizationVerifier() = default;
  std::vector<gnutls_pubkey_st*> keys_;
};

const char* to_string(AuthorizationVerifier::Result r);

// What the connector knows about the session a token arrived on.
struct Expected {
  uint64_t session_id = 0;
  std::string_view agent;              // from the agent's certificate in the session handshake
  CertificateHash agent_cert_sha256{}; // of that certificate
  std::string_view service;            // the service the agent asks for
  std::string_view connector;          // this connector's own name
};

// The first way in which `a` is not for this session, as a reason for the log, or nullopt if
// it matches. Checked in this order: agent, session, service, connector, certificate.
std::optional<std::string> mismatch(const Authorization& a, const Expected& e);

} // namespace ztna::auth
