// The daemon's X.509 identity, the deployment CA it trusts and the CA's revocation list, as
// GnuTLS credentials. Every QUIC connection we make or accept is mutually authenticated against
// this CA (DESIGN D6). A reload builds a new TlsIdentity; connections hold the one they started
// with (shared_ptr), so swapping never pulls credentials from under a live TLS session.
#pragma once

#include "identity/identity.hpp"

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include <cstdint>
#include <memory>
#include <set>
#include <string>

namespace ztna::quic {

struct TlsFiles {
  std::string ca;   // PEM: the deployment CA, the only trust anchor
  std::string cert; // PEM: our certificate
  std::string key;  // PEM: our private key
  std::string crl;  // PEM: the CA's certificate revocation list; empty = none
  // The CRL's PEM text itself, as the deployment shares it (DESIGN D11); when set, in place of
  // the file `crl`.
  std::string crl_pem;
};

class TlsIdentity {
public:
  // Throws std::runtime_error with a message naming the file on failure; `expected_role` is
  // checked against our own certificate so that a daemon started with the wrong identity says so
  // at once.
  TlsIdentity(const TlsFiles& files, Role expected_role);
  ~TlsIdentity();
  TlsIdentity(const TlsIdentity&) = delete;
  TlsIdentity& operator=(const TlsIdentity&) = delete;

  gnutls_certificate_credentials_t credentials() const { return cred_; }
  const TlsFiles& files() const { return files_; }
  // Our own identity, from our certificate's role URI.
  const Identity& identity() const { return identity_; }
  // The name peers know us by.
  const std::string& name() const { return identity_.name; }

  // Is this (verified) identity's certificate listed in our CRL?
  bool is_revoked(const Identity& id) const { return revoked_serials_.count(id.serial) != 0; }
  size_t revoked_count() const { return revoked_serials_.size(); }
  // The CRL's nextUpdate (Unix seconds), 0 without a CRL.
  int64_t crl_next_update() const { return crl_next_update_; }
  // The CRL in force as PEM text (empty: none), to share with other intermediates.
  const std::string& crl_pem() const { return crl_pem_; }
  // One line for the log: what was loaded, and a warning if the CRL is out of date.
  std::string summary() const;

private:
  // `source` names the CRL in errors: its file, or where its text came from.
  void load_crl(const std::string& pem, const std::string& source);
  void verify_crls(const std::string& file, gnutls_x509_crl_t* crls, unsigned count);

  TlsFiles files_;
  gnutls_certificate_credentials_t cred_ = nullptr;
  Identity identity_;
  std::set<std::string> revoked_serials_; // hex, as Identity::serial
  int64_t crl_next_update_ = 0;
  std::string crl_pem_;
};

using TlsIdentityPtr = std::shared_ptr<const TlsIdentity>;

} // namespace ztna::quic
