#include "auth/authorization.hpp"

#include <gnutls/abstract.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>

#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <stdexcept>

#include "wire/byte_io.hpp"
#include "wire/text.hpp"

namespace ztna::auth {

namespace {

// Key files are a few hundred bytes; anything this large was given by mistake.
constexpr size_t kMaxKeyFileSize = 64 * 1024;

constexpr std::string_view kPublicKeyLabel = "PUBLIC KEY";

// The body's fields as views into the token, so that a token can be checked before anything
// is copied out of it.
struct BodyView {
  uint64_t session_id = 0;
  std::string_view agent;
  std::span<const uint8_t> agent_cert_sha256;
  std::string_view service;
  std::string_view connector;
  std::string_view issuer;
  uint64_t issued_at_ms = 0;
  uint64_t expires_at_ms = 0;
};

bool fail(std::string& error, const std::string& reason) {
  error = "authorization: " + reason;
  return false;
}

bool read_name(wire::ByteReader& r, const char* field, std::string_view& out, std::string& error) {
  out = r.str8();
  if (!r.ok()) return fail(error, "truncated in the " + std::string(field) + " name");
  if (!wire::is_valid_name(out)) return fail(error, "invalid " + std::string(field) + " name");
  return true;
}

bool parse_body_view(std::span<const uint8_t> body, BodyView& v, std::string& error) {
  if (body.size() < kMinBodySize || body.size() > kMaxBodySize)
    return fail(error, "body of " + std::to_string(body.size()) + " bytes, outside " +
                           std::to_string(kMinBodySize) + ".." + std::to_string(kMaxBodySize));
  wire::ByteReader r(body);
  const uint8_t version = r.u8();
  if (version != kAuthorizationVersion)
    return fail(error, "unsupported version " + std::to_string(version) + " (expected " +
                           std::to_string(kAuthorizationVersion) + ")");
  v.session_id = r.u64();
  if (!read_name(r, "agent", v.agent, error)) return false;
  v.agent_cert_sha256 = r.bytes(kCertificateHashSize);
  if (!r.ok()) return fail(error, "truncated in the agent certificate hash");
  if (!read_name(r, "service", v.service, error)) return false;
  if (!read_name(r, "connector", v.connector, error)) return false;
  if (!read_name(r, "issuer", v.issuer, error)) return false;
  v.issued_at_ms = r.u64();
  v.expires_at_ms = r.u64();
  if (!r.ok()) return fail(error, "truncated in the times");
  if (r.remaining() != 0)
    return fail(error, std::to_string(r.remaining()) + " trailing bytes after the body");
  if (v.expires_at_ms < v.issued_at_ms) return fail(error, "expires before it is issued");
  return true;
}

bool parse_token_view(std::span<const uint8_t> token, BodyView& v, std::string& error) {
  if (token.size() < kMinAuthorizationSize || token.size() > kMaxAuthorizationSize)
    return fail(error, "token of " + std::to_string(token.size()) + " bytes, outside " +
                           std::to_string(kMinAuthorizationSize) + ".." +
                           std::to_string(kMaxAuthorizationSize));
  return parse_body_view(token.first(token.size() - kSignatureSize), v, error);
}

Authorization to_authorization(const BodyView& v) {
  Authorization a;
  a.session_id = v.session_id;
  a.agent.assign(v.agent);
  std::memcpy(a.agent_cert_sha256.data(), v.agent_cert_sha256.data(), kCertificateHashSize);
  a.service.assign(v.service);
  a.connector.assign(v.connector);
  a.issuer.assign(v.issuer);
  a.issued_at_ms = v.issued_at_ms;
  a.expires_at_ms = v.expires_at_ms;
  return a;
}

// kSignatureContext followed by the body, written into `out`; returns its length.
size_t signed_message(std::span<const uint8_t> body,
                      std::array<uint8_t, kSignatureContext.size() + kMaxBodySize>& out) {
  std::memcpy(out.data(), kSignatureContext.data(), kSignatureContext.size());
  std::memcpy(out.data() + kSignatureContext.size(), body.data(), body.size());
  return kSignatureContext.size() + body.size();
}

gnutls_datum_t datum(const void* data, size_t size) {
  // GnuTLS takes non-const data in its input datums but does not write to them.
  return {static_cast<unsigned char*>(const_cast<void*>(data)), static_cast<unsigned>(size)};
}

bool read_key_file(const std::string& path, std::string& out, std::string& error) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) {
    error = path + ": cannot open: " + std::strerror(errno);
    return false;
  }
  out.resize(kMaxKeyFileSize + 1);
  const size_t n = std::fread(out.data(), 1, out.size(), f);
  const int read_errno = std::ferror(f) ? (errno != 0 ? errno : EIO) : 0;
  std::fclose(f);
  out.resize(n);
  if (read_errno != 0) {
    error = path + ": cannot read: " + std::strerror(read_errno);
    return false;
  }
  if (n > kMaxKeyFileSize) {
    error = path + ": larger than " + std::to_string(kMaxKeyFileSize) + " bytes, not a key file";
    return false;
  }
  return true;
}

std::string algorithm_name(int pk) {
  const char* name = gnutls_pk_get_name(static_cast<gnutls_pk_algorithm_t>(pk));
  return name ? name : "unknown algorithm " + std::to_string(pk);
}

std::string hex16(uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016" PRIx64, v);
  return buf;
}

} // namespace

CertificateHash certificate_sha256(std::span<const uint8_t> der) {
  CertificateHash out{};
  if (gnutls_hash_fast(GNUTLS_DIG_SHA256, der.data(), der.size(), out.data()) < 0)
    throw std::runtime_error("SHA-256 of a certificate failed");
  return out;
}

std::vector<uint8_t> encode_body(const Authorization& a) {
  for (const std::string* name : {&a.agent, &a.service, &a.connector, &a.issuer})
    if (!wire::is_valid_name(*name))
      throw std::invalid_argument("authorization: invalid name '" + wire::sanitize_reason(*name) +
                                  "'");
  if (a.expires_at_ms < a.issued_at_ms)
    throw std::invalid_argument("authorization: expires before it is issued");
  std::vector<uint8_t> out;
  out.reserve(kMaxAuthorizationSize);
  wire::ByteWriter w(out);
  w.u8(kAuthorizationVersion);
  w.u64(a.session_id);
  w.str8(a.agent);
  w.bytes(a.agent_cert_sha256);
  w.str8(a.service);
  w.str8(a.connector);
  w.str8(a.issuer);
  w.u64(a.issued_at_ms);
  w.u64(a.expires_at_ms);
  return out;
}

std::optional<Authorization> parse_body(std::span<const uint8_t> body, std::string& error) {
  BodyView v;
  if (!parse_body_view(body, v, error)) return std::nullopt;
  return to_authorization(v);
}

std::optional<Authorization> parse_token(std::span<const uint8_t> token, std::string& error) {
  BodyView v;
  if (!parse_token_view(token, v, error)) return std::nullopt;
  return to_authorization(v);
}

// ---------------------------------------------------------------------------------------------
// Signer

std::unique_ptr<AuthorizationSigner> AuthorizationSigner::load(const std::string& path,
                                                               std::string& error) {
  std::string pem;
  std::unique_ptr<AuthorizationSigner> signer;
  if (read_key_file(path, pem, error)) signer = from_pem(pem, path, error);
  // The text is the private key itself; do not leave it behind in freed memory.
  gnutls_memset(pem.data(), 0, pem.size());
  return signer;
}

std::unique_ptr<AuthorizationSigner>
AuthorizationSigner::from_pem(std::string_view pem, std::string_view source, std::string& error) {
  const std::string where(source);
  if (pem.size() > kMaxKeyFileSize) {
    error = where + ": larger than " + std::to_string(kMaxKeyFileSize) + " bytes, not a key file";
    return nullptr;
  }
  // GnuTLS's own errors for these are vague ("The requested data were not available.").
  if (pem.find("PRIVATE KEY-----") == std::string_view::npos) {
    error = where + (pem.find("-----BEGIN PUBLIC KEY-----") != std::string_view::npos
                         ? ": holds a public key; signing needs the Ed25519 private key"
                         : ": no PEM private key (-----BEGIN PRIVATE KEY-----) in it");
    return nullptr;
  }
  if (pem.find("-----BEGIN ENCRYPTED PRIVATE KEY-----") != std::string_view::npos) {
    error = where + ": the private key is encrypted; the daemon needs it without a passphrase";
    return nullptr;
  }
  gnutls_privkey_t key = nullptr;
  int rv = gnutls_privkey_init(&key);
  if (rv < 0) {
    error = where + ": " + gnutls_strerror(rv);
    return nullptr;
  }
  const gnutls_datum_t data = datum(pem.data(), pem.size());
  rv = gnutls_privkey_import_x509_raw(key, &data, GNUTLS_X509_FMT_PEM, nullptr, 0);
  if (rv < 0) {
    error = where + ": not a usable PEM private key (" + gnutls_strerror(rv) + ")";
    gnutls_privkey_deinit(key);
    return nullptr;
  }
  const int pk = gnutls_privkey_get_pk_algorithm(key, nullptr);
  if (pk != GNUTLS_PK_EDDSA_ED25519) {
    error = where + ": the private key is " + algorithm_name(pk) +
            ", not Ed25519 (make one with `openssl genpkey -algorithm ED25519`)";
    gnutls_privkey_deinit(key);
    return nullptr;
  }
  return std::unique_ptr<AuthorizationSigner>(new AuthorizationSigner(key));
}

AuthorizationSigner::~AuthorizationSigner() {
  gnutls_privkey_deinit(key_);
}

std::vector<uint8_t> AuthorizationSigner::issue(const Authorization& a) const {
  std::vector<uint8_t> token = encode_body(a);
  std::array<uint8_t, kSignatureContext.size() + kMaxBodySize> msg;
  const gnutls_datum_t data = datum(msg.data(), signed_message(token, msg));
  gnutls_datum_t sig{nullptr, 0};
  const int rv = gnutls_privkey_sign_data2(key_, GNUTLS_SIGN_EDDSA_ED25519, 0, &data, &sig);
  if (rv < 0)
    throw std::runtime_error(std::string("signing an authorization: ") + gnutls_strerror(rv));
  const bool right_size = sig.size == kSignatureSize;
  if (right_size) token.insert(token.end(), sig.data, sig.data + sig.size);
  gnutls_free(sig.data);
  if (!right_size) throw std::runtime_error("signing an authorization: unexpected signature size");
  return token;
}

std::vector<uint8_t> AuthorizationSigner::sign_record(std::string_view record) const {
  std::string msg(kRecordSignatureContext);
  msg += record;
  const gnutls_datum_t data = datum(msg.data(), msg.size());
  gnutls_datum_t sig{nullptr, 0};
  const int rv = gnutls_privkey_sign_data2(key_, GNUTLS_SIGN_EDDSA_ED25519, 0, &data, &sig);
  if (rv < 0) throw std::runtime_error(std::string("signing a record: ") + gnutls_strerror(rv));
  std::vector<uint8_t> out(sig.data, sig.data + sig.size);
  gnutls_free(sig.data);
  return out;
}

bool AuthorizationSigner::verify_record(std::string_view record,
                                        std::span<const uint8_t> signature) const {
  if (signature.size() != kSignatureSize) return false;
  gnutls_pubkey_t pub = nullptr;
  if (gnutls_pubkey_init(&pub) < 0) return false;
  bool ok = false;
  if (gnutls_pubkey_import_privkey(pub, key_, 0, 0) >= 0) {
    std::string msg(kRecordSignatureContext);
    msg += record;
    const gnutls_datum_t data = datum(msg.data(), msg.size());
    const gnutls_datum_t sig = datum(signature.data(), signature.size());
    ok = gnutls_pubkey_verify_data2(pub, GNUTLS_SIGN_EDDSA_ED25519, 0, &data, &sig) >= 0;
  }
  gnutls_pubkey_deinit(pub);
  return ok;
}

// ---------------------------------------------------------------------------------------------
// Verifier

std::unique_ptr<AuthorizationVerifier> AuthorizationVerifier::load(const std::string& path,
                                                                   std::string& error) {
  std::string pem;
  if (!read_key_file(path, pem, error)) return nullptr;
  return from_pem(pem, path, error);
}

std::unique_ptr<AuthorizationVerifier>
AuthorizationVerifier::from_pem(std::string_view pem, std::string_view source, std::string& error) {
  const std::string where(source);
  if (pem.size() > kMaxKeyFileSize) {
    error = where + ": larger than " + std::to_string(kMaxKeyFileSize) + " bytes, not a key file";
    return nullptr;
  }
  std::unique_ptr<AuthorizationVerifier> v(new AuthorizationVerifier());
  constexpr std::string_view kBegin = "-----BEGIN ";
  constexpr std::string_view kDashes = "-----";
  size_t pos = 0;
  for (size_t block = 1;; ++block) {
    pos = pem.find(kBegin, pos);
    if (pos == std::string_view::npos) break;
    const std::string prefix = where + ": PEM block " + std::to_string(block);
    const size_t label_start = pos + kBegin.size();
    const size_t label_end = pem.find(kDashes, label_start);
    const size_t line_end = pem.find('\n', label_start);
    if (label_end == std::string_view::npos || label_end > line_end) {
      error = prefix + ": BEGIN line is not closed with -----";
      return nullptr;
    }
    const std::string_view label = pem.substr(label_start, label_end - label_start);
    if (label != kPublicKeyLabel) {
      error = prefix + " is labelled \"" + wire::sanitize_reason(label) +
              "\"; only PUBLIC KEY blocks belong here";
      if (label.find("PRIVATE") != std::string_view::npos)
        error += " (a private key must never be given to connectors)";
      return nullptr;
    }
    const std::string end_line = "-----END " + std::string(kPublicKeyLabel) + "-----";
    const size_t end = pem.find(end_line, label_end);
    const size_t next_begin = pem.find(kBegin, label_end);
    if (end == std::string_view::npos || next_begin < end) {
      error = prefix + " has no END PUBLIC KEY line";
      return nullptr;
    }
    if (v->keys_.size() == kMaxTrustedKeys) {
      error = where + ": more than " + std::to_string(kMaxTrustedKeys) + " public keys";
      return nullptr;
    }
    gnutls_pubkey_t key = nullptr;
    int rv = gnutls_pubkey_init(&key);
    if (rv < 0) {
      error = prefix + ": " + gnutls_strerror(rv);
      return nullptr;
    }
    // Owned by the verifier from here, so every early return below frees it.
    v->keys_.push_back(key);
    const std::string_view text = pem.substr(pos, end + end_line.size() - pos);
    const gnutls_datum_t data = datum(text.data(), text.size());
    rv = gnutls_pubkey_import(key, &data, GNUTLS_X509_FMT_PEM);
    if (rv < 0) {
      error = prefix + ": not a usable public key (" + gnutls_strerror(rv) + ")";
      return nullptr;
    }
    const int pk = gnutls_pubkey_get_pk_algorithm(key, nullptr);
    if (pk != GNUTLS_PK_EDDSA_ED25519) {
      error = prefix + ": the public key is " + algorithm_name(pk) + ", not Ed25519";
      return nullptr;
    }
    pos = end + end_line.size();
  }
  if (v->keys_.empty()) {
    error = where + ": no PEM public key (-----BEGIN PUBLIC KEY-----) in it";
    return nullptr;
  }
  return v;
}

AuthorizationVerifier::~AuthorizationVerifier() {
  for (gnutls_pubkey_t key : keys_)
    gnutls_pubkey_deinit(key);
}

AuthorizationVerifier::Result AuthorizationVerifier::verify(std::span<const uint8_t> token,
                                                            uint64_t now_unix_ms,
                                                            Authorization& out,
                                                            std::string& why) const {
  BodyView v;
  if (!parse_token_view(token, v, why)) return Result::Malformed;

  // The message is built on the stack: a forged token costs no allocation.
  std::array<uint8_t, kSignatureContext.size() + kMaxBodySize> msg;
  const auto body = token.first(token.size() - kSignatureSize);
  const gnutls_datum_t data = datum(msg.data(), signed_message(body, msg));
  const gnutls_datum_t sig = datum(token.data() + body.size(), kSignatureSize);
  bool signed_by_trusted_key = false;
  for (gnutls_pubkey_t key : keys_) {
    if (gnutls_pubkey_verify_data2(key, GNUTLS_SIGN_EDDSA_ED25519, 0, &data, &sig) >= 0) {
      signed_by_trusted_key = true;
      break;
    }
  }
  if (!signed_by_trusted_key) {
    why = "authorization: signature does not verify with any of the " +
          std::to_string(keys_.size()) + " trusted key(s)";
    return Result::BadSignature;
  }

  out = to_authorization(v);
  if (v.issued_at_ms > now_unix_ms && v.issued_at_ms - now_unix_ms > kClockSkewAllowanceMs) {
    why = "authorization: issued " + std::to_string(v.issued_at_ms - now_unix_ms) +
          " ms in the future (issued at " + std::to_string(v.issued_at_ms) + ", now " +
          std::to_string(now_unix_ms) + "; allowed clock skew " +
          std::to_string(kClockSkewAllowanceMs) + " ms)";
    return Result::NotYetValid;
  }
  if (now_unix_ms > v.expires_at_ms) {
    why = "authorization: expired " + std::to_string(now_unix_ms - v.expires_at_ms) +
          " ms ago (expires at " + std::to_string(v.expires_at_ms) + ", now " +
          std::to_string(now_unix_ms) + ")";
    return Result::Expired;
  }
  why.clear();
  return Result::Ok;
}

const char* to_string(AuthorizationVerifier::Result r) {
  using Result = AuthorizationVerifier::Result;
  switch (r) {
  case Result::Ok:
    return "ok";
  case Result::Malformed:
    return "malformed";
  case Result::BadSignature:
    return "bad signature";
  case Result::NotYetValid:
    return "not yet valid";
  case Result::Expired:
    return "expired";
  }
  return "unknown result";
}

std::optional<std::string> mismatch(const Authorization& a, const Expected& e) {
  if (a.agent != e.agent)
    return "authorization is for agent '" + a.agent + "' but the handshake was made by '" +
           std::string(e.agent) + "'";
  if (a.session_id != e.session_id)
    return "authorization is for session " + hex16(a.session_id) + " but this is session " +
           hex16(e.session_id);
  if (a.service != e.service)
    return "authorization is for service '" + a.service + "' but the agent asked for '" +
           std::string(e.service) + "'";
  if (a.connector != e.connector)
    return "authorization is for connector '" + a.connector + "' but this is connector '" +
           std::string(e.connector) + "'";
  if (a.agent_cert_sha256 != e.agent_cert_sha256)
    return std::string("the agent's certificate differs from the one the authorization was "
                       "issued for");
  return std::nullopt;
}

} // namespace ztna::auth
