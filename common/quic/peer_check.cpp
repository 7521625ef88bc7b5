#include "quic/peer_check.hpp"

#include <gnutls/crypto.h>
#include <gnutls/x509.h>

#include <algorithm>
#include <cstring>
#include <memory>

namespace ztna::quic {

namespace {

constexpr std::string_view kScheme = "ztna://";

struct CrtDeleter {
  void operator()(gnutls_x509_crt_t c) const { gnutls_x509_crt_deinit(c); }
};
using Crt = std::unique_ptr<std::remove_pointer_t<gnutls_x509_crt_t>, CrtDeleter>;

// Only printable ASCII of bounded length goes into an error line: the certificate is untrusted
// input until its chain verifies, and even then its fields are not ours.
std::string printable(std::string_view s) {
  std::string out;
  for (char c : s.substr(0, 80))
    out.push_back(c >= 0x20 && c < 0x7f ? c : '?');
  if (s.size() > 80) out += "...";
  return out;
}

// RFC 6125 matching of a DNS name or IP literal against the certificate's SAN.
bool matches_host(const gnutls_datum_t& der, const std::string& host) {
  gnutls_x509_crt_t raw = nullptr;
  if (gnutls_x509_crt_init(&raw) != 0) return false;
  Crt crt(raw);
  if (gnutls_x509_crt_import(raw, &der, GNUTLS_X509_FMT_DER) < 0) return false;
  return gnutls_x509_crt_check_hostname2(raw, host.c_str(), 0) != 0;
}

std::string role_list(const std::vector<Role>& roles) {
  std::string out;
  for (size_t i = 0; i < roles.size(); ++i) {
    if (i) out += i + 1 == roles.size() ? " or " : ", ";
    out += i ? to_string(roles[i]) : with_article(roles[i]);
  }
  return out;
}

} // namespace

const char* to_string(Refusal r) {
  switch (r) {
  case Refusal::NoCertificate:
    return "no_certificate";
  case Refusal::UntrustedIssuer:
    return "untrusted_issuer";
  case Refusal::Expired:
    return "expired";
  case Refusal::NotYetValid:
    return "not_yet_valid";
  case Refusal::Revoked:
    return "revoked";
  case Refusal::BadCertificate:
    return "bad_certificate";
  case Refusal::NoIdentity:
    return "no_identity";
  case Refusal::WrongRole:
    return "wrong_role";
  case Refusal::WrongUsage:
    return "wrong_usage";
  case Refusal::WrongName:
    return "wrong_name";
  case Refusal::NoApplicationProtocol:
    return "no_application_protocol";
  case Refusal::Other:
    return "other";
  }
  return "other";
}

std::string serial_hex(std::span<const uint8_t> serial) {
  static const char* digits = "0123456789abcdef";
  std::string out;
  for (uint8_t b : serial) {
    out.push_back(digits[b >> 4]);
    out.push_back(digits[b & 15]);
  }
  return out;
}

std::optional<Identity> identity_from_certificate(std::span<const uint8_t> der,
                                                  std::string& error) {
  gnutls_x509_crt_t raw = nullptr;
  if (gnutls_x509_crt_init(&raw) != 0) {
    error = "out of memory";
    return std::nullopt;
  }
  Crt crt(raw);
  const gnutls_datum_t datum{const_cast<unsigned char*>(der.data()),
                             static_cast<unsigned>(der.size())};
  if (int rv = gnutls_x509_crt_import(raw, &datum, GNUTLS_X509_FMT_DER); rv < 0) {
    error = std::string("not an X.509 certificate: ") + gnutls_strerror(rv);
    return std::nullopt;
  }
  Identity id;
  bool have_role = false;
  for (unsigned i = 0;; ++i) {
    char buf[512];
    size_t size = sizeof buf;
    unsigned type = 0;
    int rv = gnutls_x509_crt_get_subject_alt_name2(raw, i, buf, &size, &type, nullptr);
    if (rv == GNUTLS_E_REQUESTED_DATA_NOT_AVAILABLE) break;
    if (rv == GNUTLS_E_SHORT_MEMORY_BUFFER) continue; // longer than any name of ours
    if (rv < 0) {
      error = std::string("unreadable subject alternative name: ") + gnutls_strerror(rv);
      return std::nullopt;
    }
    if (type != GNUTLS_SAN_URI) continue;
    std::string_view uri(buf, size);
    if (uri.substr(0, kScheme.size()) != kScheme) continue; // somebody else's URI
    auto rest = uri.substr(kScheme.size());
    auto slash = rest.find('/');
    if (slash == std::string_view::npos) {
      error = "malformed URI '" + printable(uri) + "' (expected ztna://ROLE/NAME)";
      return std::nullopt;
    }
    auto kind = rest.substr(0, slash);
    auto name = rest.substr(slash + 1);
    if (!is_valid_identity_name(name)) {
      error = "invalid name in URI '" + printable(uri) + "'";
      return std::nullopt;
    }
    if (kind == "group") {
      if (id.groups.size() >= kMaxGroups) {
        error = "more than " + std::to_string(kMaxGroups) + " group URIs";
        return std::nullopt;
      }
      id.groups.emplace_back(name);
      continue;
    }
    auto role = role_from_string(kind);
    if (!role) {
      error = "unknown role in URI '" + printable(uri) + "'";
      return std::nullopt;
    }
    if (have_role) {
      error = "more than one role URI";
      return std::nullopt;
    }
    have_role = true;
    id.role = *role;
    id.name = std::string(name);
  }
  if (!have_role) {
    error = "no ztna://ROLE/NAME URI among its subject alternative names (issued by an older "
            "make-certs? re-issue it)";
    return std::nullopt;
  }
  std::sort(id.groups.begin(), id.groups.end());
  id.groups.erase(std::unique(id.groups.begin(), id.groups.end()), id.groups.end());
  // Extended key usage (RFC 5280 §4.2.1.12). A certificate without the extension has no usage
  // here: ours always carry it.
  for (unsigned i = 0;; ++i) {
    char oid[128];
    size_t size = sizeof oid;
    int rv = gnutls_x509_crt_get_key_purpose_oid(raw, i, oid, &size, nullptr);
    if (rv == GNUTLS_E_REQUESTED_DATA_NOT_AVAILABLE) break;
    if (rv == GNUTLS_E_SHORT_MEMORY_BUFFER) continue;
    if (rv < 0) break;
    std::string_view o(oid, strnlen(oid, size));
    if (o == GNUTLS_KP_TLS_WWW_CLIENT) id.client_auth = true;
    if (o == GNUTLS_KP_TLS_WWW_SERVER) id.server_auth = true;
  }
  gnutls_hash_fast(GNUTLS_DIG_SHA256, der.data(), der.size(), id.cert_sha256.data());
  uint8_t serial[40];
  size_t serial_size = sizeof serial;
  if (gnutls_x509_crt_get_serial(raw, serial, &serial_size) == 0)
    id.serial = serial_hex({serial, serial_size});
  return id;
}

std::optional<PeerRefusal> check_peer(gnutls_session_t session, const PeerRequirement& req,
                                      Identity& identity) {
  unsigned n = 0;
  const gnutls_datum_t* certs = gnutls_certificate_get_peers(session, &n);
  if (!certs || n == 0) return PeerRefusal{Refusal::NoCertificate, "no certificate presented"};
  unsigned status = 0;
  // The chain, validity and CRL first; the host name last, after the role: "an agent
  // certificate where a connector belongs" says more than "the wrong name".
  int rv = gnutls_certificate_verify_peers3(session, nullptr, &status);
  if (rv < 0)
    return PeerRefusal{Refusal::BadCertificate,
                       std::string("certificate not verifiable: ") + gnutls_strerror(rv)};
  // A CRL past its nextUpdate still lists what it lists: the daemon warns about it when it
  // loads the CRL, and a stale list must not lock everybody out.
  const unsigned stale = GNUTLS_CERT_REVOCATION_DATA_SUPERSEDED |
                         GNUTLS_CERT_REVOCATION_DATA_ISSUED_IN_FUTURE | GNUTLS_CERT_INVALID;
  if (status & GNUTLS_CERT_REVOKED)
    return PeerRefusal{Refusal::Revoked, "certificate revoked (listed in the CRL)"};
  if (status & GNUTLS_CERT_SIGNER_NOT_FOUND)
    return PeerRefusal{Refusal::UntrustedIssuer,
                       "certificate not issued by the deployment CA (foreign CA or self-signed)"};
  if (status & GNUTLS_CERT_EXPIRED) return PeerRefusal{Refusal::Expired, "certificate expired"};
  if (status & GNUTLS_CERT_NOT_ACTIVATED)
    return PeerRefusal{Refusal::NotYetValid, "certificate not valid yet (check the clocks)"};
  if (status & ~stale) {
    gnutls_datum_t text{};
    std::string why = "certificate does not verify";
    if (gnutls_certificate_verification_status_print(status, GNUTLS_CRT_X509, &text, 0) == 0) {
      why += ": " + printable(std::string_view(reinterpret_cast<char*>(text.data), text.size));
      gnutls_free(text.data);
    }
    return PeerRefusal{Refusal::BadCertificate, why};
  }
  std::string error;
  auto id = identity_from_certificate({certs[0].data, certs[0].size}, error);
  if (!id) return PeerRefusal{Refusal::NoIdentity, "certificate has no usable identity: " + error};
  if (!req.roles.empty() &&
      std::find(req.roles.begin(), req.roles.end(), id->role) == req.roles.end())
    return PeerRefusal{Refusal::WrongRole, "certificate is for " + id->describe() +
                                               ", but this connection needs " +
                                               role_list(req.roles)};
  if (req.client_auth && !id->client_auth)
    return PeerRefusal{Refusal::WrongUsage, "certificate of " + id->describe() +
                                                " does not allow TLS client authentication "
                                                "(extended key usage)"};
  if (req.server_auth && !id->server_auth)
    return PeerRefusal{Refusal::WrongUsage, "certificate of " + id->describe() +
                                                " does not allow TLS server authentication "
                                                "(extended key usage)"};
  if (!req.name.empty() && id->name != req.name)
    return PeerRefusal{Refusal::WrongName,
                       "certificate is for " + id->describe() + ", expected '" + req.name + "'"};
  if (!req.hostname.empty() && !matches_host(certs[0], req.hostname))
    return PeerRefusal{Refusal::WrongName, "certificate of " + id->describe() +
                                               " does not name '" + printable(req.hostname) +
                                               "' among its subject alternative names"};
  identity = std::move(*id);
  return std::nullopt;
}

} // namespace ztna::quic
