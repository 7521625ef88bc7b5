// The daemon's X.509 identity and the deployment CA it trusts, as GnuTLS credentials.
// Every QUIC connection we make or accept is mutually authenticated against this CA (D6).
#pragma once

#include <gnutls/gnutls.h>

#include <memory>
#include <string>

namespace ztna::quic {

struct TlsFiles {
  std::string ca;   // PEM: the deployment CA, the only trust anchor
  std::string cert; // PEM: our certificate
  std::string key;  // PEM: our private key
};

class TlsIdentity {
public:
  // Throws std::runtime_error with a message naming the file on failure.
  explicit TlsIdentity(const TlsFiles& files);
  ~TlsIdentity();
  TlsIdentity(const TlsIdentity&) = delete;
  TlsIdentity& operator=(const TlsIdentity&) = delete;

  gnutls_certificate_credentials_t credentials() const { return cred_; }
  // The CN of our own certificate: the name peers know us by.
  const std::string& name() const { return name_; }

private:
  gnutls_certificate_credentials_t cred_ = nullptr;
  std::string name_;
};

// The CN of the certificate the peer presented in `session`, or "" if none.
std::string peer_common_name(gnutls_session_t session);

} // namespace ztna::quic
