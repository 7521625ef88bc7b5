// Who may be at the other end of a QUIC connection, and why a peer was refused (DESIGN D6).
//
// Every connection states what it requires of the peer's certificate: a role, an extended key
// usage, and sometimes an exact name. The check runs inside the TLS handshake (GnuTLS's verify
// callback), so a refused peer gets a TLS alert and never an established connection.
#pragma once

#include "identity/identity.hpp"

#include <gnutls/gnutls.h>

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace ztna::quic {

// Why a handshake failed, for one log line and one counter per cause.
enum class Refusal : uint8_t {
  NoCertificate,   // the peer presented none
  UntrustedIssuer, // does not chain to the deployment CA (a foreign CA, or self-signed)
  Expired,
  NotYetValid,
  Revoked,         // listed in the CRL
  BadCertificate,  // any other verification failure (bad signature, wrong host name, ...)
  NoIdentity,      // no valid ztna:// role URI (docs/security.md)
  WrongRole,       // e.g. an agent certificate where a connector is required
  WrongUsage,      // extended key usage does not allow this side of TLS
  WrongName,       // not the identity this connection was meant for
  NoApplicationProtocol, // ALPN mismatch
  Other,           // timeouts and everything else
};
inline constexpr size_t kRefusalKinds = static_cast<size_t>(Refusal::Other) + 1;
// Stable snake_case names: counter keys and log text ("revoked", "wrong_role", ...).
const char* to_string(Refusal r);

// Refused handshakes by cause, for a daemon's status and metrics.
struct RefusalCounters {
  std::array<uint64_t, kRefusalKinds> by_cause{};
  void add(Refusal r) { by_cause[static_cast<size_t>(r)]++; }
  uint64_t total() const {
    uint64_t n = 0;
    for (auto v : by_cause)
      n += v;
    return n;
  }
};

struct PeerRequirement {
  std::vector<Role> roles;   // the peer's certificate must have one of these roles
  bool client_auth = false;  // it must allow TLS client authentication (we are the server)
  bool server_auth = false;  // it must allow TLS server authentication (we are the client)
  std::string name;          // if set, the identity name it must carry
  std::string hostname;      // client side: the DNS name or IP its SAN must match (RFC 6125)
};

struct PeerRefusal {
  Refusal reason = Refusal::Other;
  std::string detail; // one printable line (certificate fields are validated before use)
};

// A certificate serial number as lower-case hex: how Identity::serial and the CRL's revoked
// serials are compared, so both must come from here.
std::string serial_hex(std::span<const uint8_t> serial);

// Parses the identity out of a DER certificate: the role URI, the group URIs, the EKUs, the
// fingerprint and serial. nullopt with `error` set (one printable line) if the certificate has no
// valid identity: no role URI, two of them, a malformed name, too many groups.
std::optional<Identity> identity_from_certificate(std::span<const uint8_t> der, std::string& error);

// The complete check of the certificate `session`'s peer presented: chain to the trusted CA
// (with the CRLs loaded into the session's credentials), validity, then `req`. Fills `identity`
// on success; returns the refusal otherwise.
std::optional<PeerRefusal> check_peer(gnutls_session_t session, const PeerRequirement& req,
                                      Identity& identity);

} // namespace ztna::quic
