#include <catch2/catch.hpp>

#include <stdlib.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>

#include "auth/authorization.hpp"
#include "bytes.hpp"
#include "test_keys.hpp"

using namespace ztna::auth;
using ztna::test::bytes;
using ztna::test::Bytes;
using Result = AuthorizationVerifier::Result;
using namespace ztna::test::keys;

namespace {

const char* const kKeyEcdsa = "-----BEGIN PRIVATE KEY-----\n"
                              "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgtbsm7dFbMNgd0iYS\n"
                              "R1nmJ40GPRNJ5yoLgcpl4i2Q7u2hRANCAATREbYQL/K/on/1FR4Ek2ClytC9mxpr\n"
                              "6OjRVlCUHTSewFuM6FNSFV+a7pTzot1huQczvkZH1eP7TwaQ78A21Atv\n"
                              "-----END PRIVATE KEY-----\n";
const char* const kPubEcdsa = "-----BEGIN PUBLIC KEY-----\n"
                              "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE0RG2EC/yv6J/9RUeBJNgpcrQvZsa\n"
                              "a+jo0VZQlB00nsBbjOhTUhVfmu6U86LdYbkHM75GR9Xj+08GkO/ANtQLbw==\n"
                              "-----END PUBLIC KEY-----\n";
const char* const kPubEd448 = "-----BEGIN PUBLIC KEY-----\n"
                              "MEMwBQYDK2VxAzoAEd5mhvM0GwKedn2oyiIXNpyOwThemoDeIgp0S7L7fYe0mV72\n"
                              "UzlkC2SouNE72lK3h0h7K6Lpu0GA\n"
                              "-----END PUBLIC KEY-----\n";

constexpr uint64_t kIssued = 1'700'000'000'000; // 2023-11-14, Unix ms
constexpr uint64_t kExpires = kIssued + 60'000;

Authorization sample() {
  Authorization a;
  a.session_id = 0x0123456789ABCDEF;
  a.agent = "alice-laptop";
  for (size_t i = 0; i < a.agent_cert_sha256.size(); ++i)
    a.agent_cert_sha256[i] = static_cast<uint8_t>(i);
  a.service = "web";
  a.connector = "office-dc";
  a.issuer = "hub-1";
  a.issued_at_ms = kIssued;
  a.expires_at_ms = kExpires;
  return a;
}

// sample() signed with kKeyA, encoded by hand from the wire table and signed with
// `openssl pkeyutl -sign -rawin` over "ztna authorization v1\0" + body, independently of the
// code under test. Ed25519 signatures are deterministic (RFC 8032), so issue() must give
// exactly these bytes.
const char* const kSampleTokenHex =
    "01"                                                               // version
    "0123456789abcdef"                                                 // session id
    "0c616c6963652d6c6170746f70"                                       // agent
    "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f" // certificate SHA-256
    "03776562"                                                         // service
    "096f66666963652d6463"                                             // connector
    "056875622d31"                                                     // issuer
    "0000018bcfe56800"                                                 // issued at
    "0000018bcfe65260"                                                 // expires at
    "42059dabc73b3d977cd388c67091d4208b6675f382802b91fdbb440af4fdf2c2" // signature
    "3894519f4a54399a0f9c8e593858140421ccda5e522f93e57baf08bc99b99106";

Bytes from_hex(std::string_view hex) {
  Bytes out;
  for (size_t i = 0; i + 1 < hex.size(); i += 2)
    out.push_back(static_cast<uint8_t>(std::stoi(std::string(hex.substr(i, 2)), nullptr, 16)));
  return out;
}

std::unique_ptr<AuthorizationSigner> signer(const char* pem) {
  std::string error;
  auto s = AuthorizationSigner::from_pem(pem, "test key", error);
  INFO(error);
  REQUIRE(s);
  return s;
}

std::unique_ptr<AuthorizationVerifier> verifier(const std::string& pem) {
  std::string error;
  auto v = AuthorizationVerifier::from_pem(pem, "test keys", error);
  INFO(error);
  REQUIRE(v);
  return v;
}

// A private directory for key files, removed with everything in it.
class TempDir {
public:
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "ztna-authz-XXXXXX").string();
    if (!mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  std::string write(const std::string& name, const std::string& content) const {
    const auto p = path_ / name;
    std::ofstream(p, std::ios::binary) << content;
    return p.string();
  }

private:
  std::filesystem::path path_;
};

Result check(const AuthorizationVerifier& v, const Bytes& token, uint64_t now,
             std::string* why_out = nullptr) {
  Authorization out;
  std::string why;
  const Result r = v.verify(token, now, out, why);
  CHECK((r == Result::Ok) == why.empty());
  CHECK(why.find('\n') == std::string::npos);
  if (why_out) *why_out = why;
  return r;
}

bool contains(const std::string& s, std::string_view part) {
  return s.find(part) != std::string::npos;
}

} // namespace

TEST_CASE("authorization: exact bytes, checked against an independent encoding",
          "[authorization]") {
  const Bytes expected = from_hex(kSampleTokenHex);
  REQUIRE(expected.size() == 154);
  const Bytes token = signer(kKeyA)->issue(sample());
  CHECK(token == expected);
  CHECK(encode_body(sample()) == Bytes(expected.begin(), expected.end() - kSignatureSize));
  CHECK(kSignatureContext.size() == 22);
  CHECK(kSignatureContext.back() == '\0');
}

TEST_CASE("authorization: round trip", "[authorization]") {
  const auto v = verifier(kPubA);
  CHECK(v->key_count() == 1);
  const Authorization a = sample();
  const Bytes token = signer(kKeyA)->issue(a);

  Authorization out;
  std::string why = "stale";
  CHECK(v->verify(token, kIssued + 1, out, why) == Result::Ok);
  CHECK(why.empty());
  CHECK(out == a);

  std::string error;
  const auto parsed = parse_token(token, error);
  REQUIRE(parsed);
  CHECK(*parsed == a);
  const Bytes body = encode_body(a);
  const auto parsed_body = parse_body(body, error);
  REQUIRE(parsed_body);
  CHECK(*parsed_body == a);
}

TEST_CASE("authorization: smallest and largest tokens", "[authorization]") {
  const auto s = signer(kKeyA);
  const auto v = verifier(kPubA);
  Authorization a = sample();
  a.agent = a.service = a.connector = a.issuer = "x";
  a.issued_at_ms = a.expires_at_ms = kIssued; // a zero lifetime is valid for that one millisecond
  Bytes token = s->issue(a);
  CHECK(token.size() == kMinAuthorizationSize);
  CHECK(kMinAuthorizationSize == 129);
  CHECK(check(*v, token, kIssued) == Result::Ok);

  // 85 three-byte characters: 255 bytes of valid UTF-8.
  std::string longest;
  for (int i = 0; i < 85; ++i)
    longest += "\xe2\x82\xac";
  a.agent = a.service = a.connector = a.issuer = longest;
  token = s->issue(a);
  CHECK(token.size() == kMaxAuthorizationSize);
  CHECK(kMaxAuthorizationSize == 1145);
  Authorization out;
  std::string why;
  CHECK(v->verify(token, kIssued, out, why) == Result::Ok);
  CHECK(out == a);
}

TEST_CASE("authorization: a changed byte anywhere is rejected", "[authorization]") {
  const auto v = verifier(kPubA);
  const Bytes token = signer(kKeyA)->issue(sample());
  for (size_t i = 0; i < token.size(); ++i) {
    for (uint8_t mask : {0x01, 0x80, 0xff}) {
      Bytes t = token;
      t[i] ^= mask;
      Authorization out = sample();
      out.session_id = 42; // must stay as it is
      std::string why;
      const Result r = v->verify(t, kIssued, out, why);
      INFO("byte " << i << " mask " << int(mask) << ": " << why);
      CHECK((r == Result::BadSignature || r == Result::Malformed));
      CHECK(out.session_id == 42);
      CHECK_FALSE(why.empty());
    }
  }
  // One bit in the session id and one in the signature, to pin which check answers.
  Bytes t = token;
  t[8] ^= 1;
  CHECK(check(*v, t, kIssued) == Result::BadSignature);
  t = token;
  t.back() ^= 1;
  CHECK(check(*v, t, kIssued) == Result::BadSignature);
  t = token;
  t[0] = 2;
  std::string why;
  CHECK(check(*v, t, kIssued, &why) == Result::Malformed);
  CHECK(contains(why, "unsupported version 2"));
}

TEST_CASE("authorization: signed by another key", "[authorization]") {
  const Bytes token = signer(kKeyB)->issue(sample());
  std::string why;
  CHECK(check(*verifier(kPubA), token, kIssued, &why) == Result::BadSignature);
  CHECK(contains(why, "signature does not verify"));
  // Same body, all-zero signature.
  Bytes zero = token;
  std::fill(zero.end() - kSignatureSize, zero.end(), 0);
  CHECK(check(*verifier(kPubB), zero, kIssued) == Result::BadSignature);
}

TEST_CASE("authorization: expired", "[authorization]") {
  const auto v = verifier(kPubA);
  const Bytes token = signer(kKeyA)->issue(sample());
  CHECK(check(*v, token, kExpires) == Result::Ok);
  Authorization out;
  std::string why;
  CHECK(v->verify(token, kExpires + 1, out, why) == Result::Expired);
  CHECK(out == sample()); // authentic, so the caller can log whose token it was
  CHECK(contains(why, "expired 1 ms ago"));
  CHECK(check(*v, token, UINT64_MAX) == Result::Expired);
}

TEST_CASE("authorization: not yet valid", "[authorization]") {
  const auto v = verifier(kPubA);
  const Bytes token = signer(kKeyA)->issue(sample());
  CHECK(check(*v, token, kIssued - kClockSkewAllowanceMs) == Result::Ok);
  Authorization out;
  std::string why;
  CHECK(v->verify(token, kIssued - kClockSkewAllowanceMs - 1, out, why) == Result::NotYetValid);
  CHECK(out == sample());
  CHECK(contains(why, "30001 ms in the future"));
  CHECK(check(*v, token, 0) == Result::NotYetValid);

  // Near zero nothing wraps around.
  Authorization early = sample();
  early.issued_at_ms = 1000;
  early.expires_at_ms = 2000;
  const Bytes t = signer(kKeyA)->issue(early);
  CHECK(check(*v, t, 0) == Result::Ok);
  // Not-yet-valid is checked before expiry: with both true, it says not yet valid.
  early.issued_at_ms = kIssued;
  early.expires_at_ms = kIssued;
  CHECK(check(*v, signer(kKeyA)->issue(early), 0) == Result::NotYetValid);
}

TEST_CASE("authorization: truncated, oversized and trailing bytes are malformed",
          "[authorization]") {
  const auto v = verifier(kPubA);
  const Bytes token = signer(kKeyA)->issue(sample());
  for (size_t n = 0; n < token.size(); ++n) {
    const Bytes t(token.begin(), token.begin() + n);
    INFO("length " << n);
    CHECK(check(*v, t, kIssued) == Result::Malformed);
    std::string error;
    CHECK_FALSE(parse_token(t, error));
    CHECK_FALSE(error.empty());
  }
  std::string why;
  CHECK(check(*v, ztna::test::concat(token, bytes({0})), kIssued, &why) == Result::Malformed);
  CHECK(contains(why, "1 trailing bytes"));
  CHECK(check(*v, Bytes(kMaxAuthorizationSize + 1, 0x01), kIssued, &why) == Result::Malformed);
  CHECK(contains(why, "1146 bytes"));
  CHECK(check(*v, Bytes(100000, 0x01), kIssued) == Result::Malformed);

  // The body parser takes exactly one body.
  const Bytes body = encode_body(sample());
  std::string error;
  CHECK_FALSE(parse_body(ztna::test::concat(body, bytes({0})), error));
  CHECK_FALSE(parse_body(ztna::test::prefix(body, body.size() - 1), error));
  CHECK(parse_body(body, error));
}

TEST_CASE("authorization: field rules", "[authorization]") {
  Authorization a = sample();
  a.agent = "";
  CHECK_THROWS_AS(encode_body(a), std::invalid_argument);
  a = sample();
  a.service = "two words";
  CHECK_THROWS_AS(encode_body(a), std::invalid_argument);
  a = sample();
  a.issuer = std::string(256, 'x');
  CHECK_THROWS_AS(signer(kKeyA)->issue(a), std::invalid_argument);
  a = sample();
  a.expires_at_ms = a.issued_at_ms - 1;
  CHECK_THROWS_AS(encode_body(a), std::invalid_argument);

  // The same rules on the receiving side; offsets are those of sample()'s body.
  const Bytes body = encode_body(sample());
  std::string error;
  Bytes b = body;
  b[10] = ' '; // first byte of the agent name
  CHECK_FALSE(parse_body(b, error));
  CHECK(error == "authorization: invalid agent name");
  b = body;
  b[59] = 0xff; // first byte of the connector name: not UTF-8
  CHECK_FALSE(parse_body(b, error));
  CHECK(error == "authorization: invalid connector name");
  b = body;
  b[9] = 0; // empty agent name
  CHECK_FALSE(parse_body(b, error));
  b = body;
  std::fill(b.end() - 8, b.end(), 0); // expires at 0, before it is issued
  CHECK_FALSE(parse_body(b, error));
  CHECK(error == "authorization: expires before it is issued");
}

TEST_CASE("authorization: several public keys in one file", "[authorization]") {
  TempDir dir;
  const std::string path =
      dir.write("authorization.pub", std::string("new key, since 2024-05:\n") + kPubB +
                                         "\nold key, remove after the rotation:\n" + kPubA);
  std::string error;
  const auto v = AuthorizationVerifier::load(path, error);
  INFO(error);
  REQUIRE(v);
  CHECK(v->key_count() == 2);
  CHECK(check(*v, signer(kKeyA)->issue(sample()), kIssued) == Result::Ok);
  CHECK(check(*v, signer(kKeyB)->issue(sample()), kIssued) == Result::Ok);

  std::string nine;
  for (size_t i = 0; i <= kMaxTrustedKeys; ++i)
    nine += kPubA;
  CHECK_FALSE(AuthorizationVerifier::from_pem(nine, "many.pub", error));
  CHECK(error == "many.pub: more than 8 public keys");
}

TEST_CASE("authorization: key files that are not Ed25519 are refused", "[authorization]") {
  TempDir dir;
  std::string error;

  const std::string ec_key = dir.write("ec.key", kKeyEcdsa);
  CHECK_FALSE(AuthorizationSigner::load(ec_key, error));
  CHECK(contains(error, ec_key + ": the private key is "));
  CHECK(contains(error, "not Ed25519"));

  const std::string ec_pub = dir.write("ec.pub", kPubEcdsa);
  CHECK_FALSE(AuthorizationVerifier::load(ec_pub, error));
  CHECK(contains(error, ec_pub + ": PEM block 1: the public key is "));
  CHECK(contains(error, "not Ed25519"));

  // One bad key spoils the file, even after a good one.
  const std::string mixed = dir.write("mixed.pub", std::string(kPubA) + kPubEd448);
  CHECK_FALSE(AuthorizationVerifier::load(mixed, error));
  CHECK(contains(error, mixed + ": PEM block 2: the public key is "));

  // Keys given to the wrong side.
  const std::string pub_a = dir.write("a.pub", kPubA);
  CHECK_FALSE(AuthorizationSigner::load(pub_a, error));
  CHECK(error == pub_a + ": holds a public key; signing needs the Ed25519 private key");
  const std::string key_a = dir.write("a.key", kKeyA);
  CHECK_FALSE(AuthorizationVerifier::load(key_a, error));
  CHECK(error == key_a + ": PEM block 1 is labelled \"PRIVATE KEY\"; only PUBLIC KEY blocks "
                         "belong here (a private key must never be given to connectors)");
  CHECK(AuthorizationSigner::load(key_a, error));

  const std::string empty = dir.write("empty.pub", "");
  CHECK_FALSE(AuthorizationVerifier::load(empty, error));
  CHECK(contains(error, "no PEM public key"));
  CHECK_FALSE(AuthorizationSigner::load(empty, error));
  CHECK(error == empty + ": no PEM private key (-----BEGIN PRIVATE KEY-----) in it");

  const std::string encrypted = dir.write(
      "enc.key",
      "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n");
  CHECK_FALSE(AuthorizationSigner::load(encrypted, error));
  CHECK(error == encrypted + ": the private key is encrypted; the daemon needs it without a "
                             "passphrase");
  const std::string cert = dir.write("cert.pem", "-----BEGIN CERTIFICATE-----\nAAAA\n"
                                                 "-----END CERTIFICATE-----\n");
  CHECK_FALSE(AuthorizationSigner::load(cert, error));
  CHECK(error == cert + ": no PEM private key (-----BEGIN PRIVATE KEY-----) in it");
  CHECK_FALSE(AuthorizationVerifier::load(cert, error));
  CHECK(error == cert + ": PEM block 1 is labelled \"CERTIFICATE\"; only PUBLIC KEY blocks belong "
                        "here");

  const std::string garbled = dir.write(
      "garbled.pub", "-----BEGIN PUBLIC KEY-----\nnot base64!\n-----END PUBLIC KEY-----\n");
  CHECK_FALSE(AuthorizationVerifier::load(garbled, error));
  CHECK(contains(error, garbled + ": PEM block 1: not a usable public key"));
  const std::string unterminated = dir.write("cut.pub", std::string(kPubA).substr(0, 60));
  CHECK_FALSE(AuthorizationVerifier::load(unterminated, error));
  CHECK(contains(error, "has no END PUBLIC KEY line"));

  const std::string missing = (std::filesystem::path(pub_a).parent_path() / "nope.pub").string();
  CHECK_FALSE(AuthorizationVerifier::load(missing, error));
  CHECK(error == missing + ": cannot open: No such file or directory");
  CHECK_FALSE(AuthorizationSigner::load(missing, error));
  CHECK(contains(error, missing + ": cannot open"));
}

TEST_CASE("authorization: mismatch names the first difference", "[authorization]") {
  const Authorization a = sample();
  Expected e;
  e.session_id = a.session_id;
  e.agent = a.agent;
  e.agent_cert_sha256 = a.agent_cert_sha256;
  e.service = a.service;
  e.connector = a.connector;
  CHECK_FALSE(mismatch(a, e));

  Expected x = e;
  x.agent = "mallory";
  CHECK(mismatch(a, x) ==
        "authorization is for agent 'alice-laptop' but the handshake was made by 'mallory'");
  x = e;
  x.session_id = 0xff;
  CHECK(mismatch(a, x) ==
        "authorization is for session 0123456789abcdef but this is session 00000000000000ff");
  x = e;
  x.service = "db";
  CHECK(mismatch(a, x) == "authorization is for service 'web' but the agent asked for 'db'");
  x = e;
  x.connector = "branch-dc";
  CHECK(mismatch(a, x) ==
        "authorization is for connector 'office-dc' but this is connector 'branch-dc'");
  x = e;
  x.agent_cert_sha256[31] ^= 1;
  CHECK(mismatch(a, x) ==
        "the agent's certificate differs from the one the authorization was issued for");
  // Several differences: the agent comes first.
  x.agent = "mallory";
  x.session_id = 1;
  CHECK(mismatch(a, x)->find("agent 'alice-laptop'") != std::string::npos);
}

TEST_CASE("authorization: certificate hash and result names", "[authorization]") {
  // FIPS 180-2 appendix B.1.
  CHECK(certificate_sha256(bytes("abc")) ==
        std::array<uint8_t, 32>{0xba, 0x78, 0x16, 0xbf, 0x8f, 0x01, 0xcf, 0xea, 0x41, 0x41, 0x40,
                                0xde, 0x5d, 0xae, 0x22, 0x23, 0xb0, 0x03, 0x61, 0xa3, 0x96, 0x17,
                                0x7a, 0x9c, 0xb4, 0x10, 0xff, 0x61, 0xf2, 0x00, 0x15, 0xad});
  CHECK(std::string(to_string(Result::Ok)) == "ok");
  CHECK(std::string(to_string(Result::Malformed)) == "malformed");
  CHECK(std::string(to_string(Result::BadSignature)) == "bad signature");
  CHECK(std::string(to_string(Result::NotYetValid)) == "not yet valid");
  CHECK(std::string(to_string(Result::Expired)) == "expired");
}

// Hidden (runs only when named): writes the seed corpus of fuzz/fuzz_authorization.cpp.
//   export ZTNA_AUTHZ_SEED_DIR=fuzz/corpus/fuzz_authorization
//   build/tests/ztna_unit_tests "[.authorization-seeds]"
// Ed25519 is deterministic, so rerunning it rewrites the same bytes.
TEST_CASE("authorization: write the fuzz seed corpus", "[.authorization-seeds]") {
  const char* dir = std::getenv("ZTNA_AUTHZ_SEED_DIR");
  REQUIRE(dir);
  const auto write = [&](const std::string& name, const Bytes& token) {
    std::ofstream(std::filesystem::path(dir) / name, std::ios::binary)
        .write(reinterpret_cast<const char*>(token.data()), std::streamsize(token.size()));
  };
  const auto a = signer(kKeyA);
  write("sample", a->issue(sample()));
  write("key_b", signer(kKeyB)->issue(sample()));
  Authorization x = sample();
  x.agent = x.service = x.connector = x.issuer = "x";
  x.expires_at_ms = x.issued_at_ms;
  write("smallest", a->issue(x));
  x.agent = std::string(255, 'a');
  x.service = std::string(255, 's');
  x.connector = std::string(255, 'c');
  x.issuer = std::string(255, 'i');
  write("largest", a->issue(x));
  x = sample();
  x.agent = "\xc3\xa9quipe-\xe2\x82\xac"; // UTF-8 names
  x.issued_at_ms = 0;
  x.expires_at_ms = UINT64_MAX;
  write("utf8_forever", a->issue(x));
  const Bytes token = a->issue(sample());
  write("truncated", Bytes(token.begin(), token.end() - 1));
}

TEST_CASE("authorization key: shared records are signed apart from authorizations",
          "[authorization]") {
  const auto a = signer(kKeyA);
  const auto b = signer(kKeyB);
  const std::string record = R"({"crl":"","origin":"i1","policy":"version = 1\n"})";
  const auto sig = a->sign_record(record);
  REQUIRE(sig.size() == kSignatureSize);
  CHECK(a->verify_record(record, sig));
  CHECK_FALSE(b->verify_record(record, sig)); // another deployment's key
  std::string changed = record;
  changed[10] ^= 1;
  CHECK_FALSE(a->verify_record(changed, sig));
  CHECK_FALSE(a->verify_record(record, std::span(sig).first(63)));
  // An authorization's signature is never a record's, and the reverse.
  const Bytes token = a->issue(sample());
  const std::string body(token.begin(), token.end() - kSignatureSize);
  CHECK_FALSE(a->verify_record(body, std::span(token).last(kSignatureSize)));
  Bytes forged(token.begin(), token.end() - kSignatureSize);
  const auto record_sig = a->sign_record(body);
  forged.insert(forged.end(), record_sig.begin(), record_sig.end());
  CHECK(check(*verifier(kPubA), forged, kIssued) == Result::BadSignature);
}
