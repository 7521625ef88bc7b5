#include "quic/tls_identity.hpp"

#include <gnutls/x509.h>

#include <stdexcept>

namespace ztna::quic {

namespace {

std::string common_name(gnutls_x509_crt_t crt) {
  char buf[256];
  size_t len = sizeof buf;
  if (gnutls_x509_crt_get_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0, 0, buf, &len) != 0)
    return {};
  return std::string(buf, len);
}

std::string common_name(const gnutls_datum_t& der) {
  gnutls_x509_crt_t crt;
  if (gnutls_x509_crt_init(&crt) != 0) return {};
  std::string name;
  if (gnutls_x509_crt_import(crt, &der, GNUTLS_X509_FMT_DER) == 0) name = common_name(crt);
  gnutls_x509_crt_deinit(crt);
  return name;
}

void check(int rv, const std::string& what) {
  if (rv < 0) throw std::runtime_error(what + ": " + gnutls_strerror(rv));
}

} // namespace

TlsIdentity::TlsIdentity(const TlsFiles& files) {
  check(gnutls_certificate_allocate_credentials(&cred_), "allocating TLS credentials");
  try {
    int n = gnutls_certificate_set_x509_trust_file(cred_, files.ca.c_str(), GNUTLS_X509_FMT_PEM);
    check(n, "loading CA " + files.ca);
    if (n == 0) throw std::runtime_error("loading CA " + files.ca + ": no certificate in file");
    check(gnutls_certificate_set_x509_key_file(cred_, files.cert.c_str(), files.key.c_str(),
                                               GNUTLS_X509_FMT_PEM),
          "loading certificate " + files.cert + " with key " + files.key);
    gnutls_x509_crt_t* crts = nullptr;
    unsigned ncrts = 0;
    check(gnutls_certificate_get_x509_crt(cred_, 0, &crts, &ncrts), "reading " + files.cert);
    if (ncrts > 0) name_ = common_name(crts[0]);
    for (unsigned i = 0; i < ncrts; ++i) gnutls_x509_crt_deinit(crts[i]);
    gnutls_free(crts);
    if (name_.empty()) throw std::runtime_error(files.cert + ": certificate has no CN");
  } catch (...) {
    gnutls_certificate_free_credentials(cred_);
    throw;
  }
}

TlsIdentity::~TlsIdentity() { gnutls_certificate_free_credentials(cred_); }

std::string peer_common_name(gnutls_session_t session) {
  unsigned n = 0;
  const gnutls_datum_t* certs = gnutls_certificate_get_peers(session, &n);
  if (!certs || n == 0) return {};
  return common_name(certs[0]);
}

} // namespace ztna::quic
