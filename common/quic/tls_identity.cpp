#include "quic/tls_identity.hpp"

#include "quic/peer_check.hpp"

#include <gnutls/x509.h>

#include <ctime>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace ztna::quic {

namespace {

void check(int rv, const std::string& what) {
  if (rv < 0) throw std::runtime_error(what + ": " + gnutls_strerror(rv));
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string utc(int64_t t) {
  char buf[32];
  const time_t tt = static_cast<time_t>(t);
  struct tm tm {};
  gmtime_r(&tt, &tm);
  strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

} // namespace

TlsIdentity::TlsIdentity(const TlsFiles& files, Role expected_role) : files_(files) {
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
    std::string der_error;
    std::optional<Identity> id;
    if (ncrts > 0) {
      gnutls_datum_t der{};
      if (gnutls_x509_crt_export2(crts[0], GNUTLS_X509_FMT_DER, &der) == 0) {
        id = identity_from_certificate({der.data, der.size}, der_error);
        gnutls_free(der.data);
      }
    }
    for (unsigned i = 0; i < ncrts; ++i)
      gnutls_x509_crt_deinit(crts[i]);
    gnutls_free(crts);
    if (!id) throw std::runtime_error(files.cert + ": " + der_error);
    if (id->role != expected_role)
      throw std::runtime_error(files.cert + ": this is the certificate of " + id->describe() +
                               "; this daemon needs " + with_article(expected_role) +
                               " certificate (certs/make-certs --" + to_string(expected_role) +
                               " NAME)");
    identity_ = std::move(*id);
    if (!files.crl_pem.empty())
      load_crl(files.crl_pem, "the deployment's shared CRL");
    else if (!files.crl.empty())
      load_crl(read_file(files.crl), files.crl);
  } catch (...) {
    gnutls_certificate_free_credentials(cred_);
    throw;
  }
}

// A CRL that is not signed by our CA would let whoever wrote it decide nothing (GnuTLS ignores
// it) while the operator believes the revocations are in force: refuse it loudly instead.
void TlsIdentity::verify_crls(const std::string& file, gnutls_x509_crl_t* crls, unsigned count) {
  const std::string pem = read_file(files_.ca);
  const gnutls_datum_t datum{reinterpret_cast<unsigned char*>(const_cast<char*>(pem.data())),
                             static_cast<unsigned>(pem.size())};
  gnutls_x509_crt_t* cas = nullptr;
  unsigned ncas = 0;
  check(gnutls_x509_crt_list_import2(&cas, &ncas, &datum, GNUTLS_X509_FMT_PEM, 0),
        "loading CA " + files_.ca);
  std::string error;
  for (unsigned i = 0; i < count && error.empty(); ++i) {
    unsigned status = 0;
    int rv = gnutls_x509_crl_verify(crls[i], cas, ncas, 0, &status);
    if (rv < 0 || status != 0)
      error = "loading CRL " + file + ": not signed by the CA in " + files_.ca;
  }
  for (unsigned i = 0; i < ncas; ++i)
    gnutls_x509_crt_deinit(cas[i]);
  gnutls_free(cas);
  if (!error.empty()) throw std::runtime_error(error);
}

void TlsIdentity::load_crl(const std::string& pem, const std::string& file) {
  const gnutls_datum_t datum{reinterpret_cast<unsigned char*>(const_cast<char*>(pem.data())),
                             static_cast<unsigned>(pem.size())};
  gnutls_x509_crl_t* crls = nullptr;
  unsigned count = 0;
  // Verified against the CA: a CRL signed by anybody else is an error, not an empty list.
  check(gnutls_x509_crl_list_import2(&crls, &count, &datum, GNUTLS_X509_FMT_PEM, 0),
        "loading CRL " + file);
  try {
    if (count == 0) throw std::runtime_error("loading CRL " + file + ": no CRL in file");
    for (unsigned i = 0; i < count; ++i) {
      const int entries = gnutls_x509_crl_get_crt_count(crls[i]);
      for (int e = 0; e < entries; ++e) {
        uint8_t serial[40];
        size_t size = sizeof serial;
        time_t when = 0;
        if (gnutls_x509_crl_get_crt_serial(crls[i], static_cast<unsigned>(e), serial, &size,
                                           &when) == 0)
          revoked_serials_.insert(serial_hex({serial, size}));
      }
      const time_t next = gnutls_x509_crl_get_next_update(crls[i]);
      if (next != static_cast<time_t>(-1) && (crl_next_update_ == 0 || next < crl_next_update_))
        crl_next_update_ = next;
    }
    verify_crls(file, crls, count);
    crl_pem_ = pem;
    // The credentials copy the CRLs: verification of every peer checks them from now on.
    int rv = gnutls_certificate_set_x509_crl(cred_, crls, static_cast<int>(count));
    if (rv < 0) throw std::runtime_error("loading CRL " + file + ": " + gnutls_strerror(rv));
  } catch (...) {
    for (unsigned i = 0; i < count; ++i)
      gnutls_x509_crl_deinit(crls[i]);
    gnutls_free(crls);
    throw;
  }
  for (unsigned i = 0; i < count; ++i)
    gnutls_x509_crl_deinit(crls[i]);
  gnutls_free(crls);
}

std::string TlsIdentity::summary() const {
  std::string s = identity_.describe() + " (certificate " + files_.cert + ", serial " +
                  identity_.serial + "), CA " + files_.ca;
  if (files_.crl.empty() && files_.crl_pem.empty())
    return s + ", no CRL (--crl): revoked certificates are not refused";
  s += ", CRL " + (files_.crl_pem.empty() ? files_.crl : std::string("shared through etcd")) +
       " with " + std::to_string(revoked_serials_.size()) + " revoked certificate(s)";
  if (crl_next_update_ != 0) {
    s += ", next update " + utc(crl_next_update_);
    if (crl_next_update_ < static_cast<int64_t>(time(nullptr)))
      s += " (OUT OF DATE: refresh it with certs/make-certs --update-crl)";
  }
  return s;
}

TlsIdentity::~TlsIdentity() {
  gnutls_certificate_free_credentials(cred_);
}

} // namespace ztna::quic
