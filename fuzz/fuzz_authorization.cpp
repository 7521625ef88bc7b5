// Session authorizations from arbitrary bytes: parse_body, parse_token and
// AuthorizationVerifier::verify with two fixed test keys. Checks that
//  - an accepted body re-encodes to exactly the input, and an accepted token's body to exactly
//    the input without its signature (one encoding only);
//  - verify calls a token Malformed exactly when parse_token rejects it, fills `out` only when
//    the signature verifies (and then with what parse_token read), and gives a one-line reason
//    for everything but Ok;
//  - for a token that verifies, the time checks answer as documented just inside and just
//    outside its validity window.
// The seeds (fuzz/corpus/fuzz_authorization) are tokens signed with the private halves of these
// keys, written by the hidden "[.authorization-seeds]" test case in
// tests/unit/test_authorization.cpp.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "auth/authorization.hpp"
#include "fuzz_check.hpp"

using namespace ztna::auth;
using Result = AuthorizationVerifier::Result;

namespace {

// TEST-ONLY public keys, the same as kPubA and kPubB in tests/unit/test_authorization.cpp.
const char* const kTestPublicKeys = "-----BEGIN PUBLIC KEY-----\n"
                                    "MCowBQYDK2VwAyEArlEbWTN0FYNouJhdTqDdzq5V9PwMJr132nx4IvMJauU=\n"
                                    "-----END PUBLIC KEY-----\n"
                                    "-----BEGIN PUBLIC KEY-----\n"
                                    "MCowBQYDK2VwAyEASSrzzKeJYESbGJEBq0NtYLWA66olTsmR3TUPEp8Es2c=\n"
                                    "-----END PUBLIC KEY-----\n";

// Within the lifetime of most seeds (issued at 1'700'000'000'000, valid for 60 s).
constexpr uint64_t kNow = 1'700'000'030'000;

const AuthorizationVerifier& verifier() {
  static const std::unique_ptr<AuthorizationVerifier> v = [] {
    std::string error;
    auto p = AuthorizationVerifier::from_pem(kTestPublicKeys, "test keys", error);
    FUZZ_CHECK(p && p->key_count() == 2);
    return p;
  }();
  return *v;
}

bool one_line(const std::string& s) {
  return !s.empty() && s.find('\n') == std::string::npos;
}

Authorization sentinel() {
  Authorization a;
  a.session_id = 0x5E971E1;
  a.agent = "untouched";
  return a;
}

Result verify_at(std::span<const uint8_t> token, uint64_t now, const Authorization& expected) {
  Authorization out;
  std::string why;
  const Result r = verifier().verify(token, now, out, why);
  FUZZ_CHECK(r != Result::Malformed && r != Result::BadSignature);
  FUZZ_CHECK(out == expected);
  FUZZ_CHECK(r == Result::Ok ? why.empty() : one_line(why));
  return r;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::span<const uint8_t> in(data, size);

  std::string error;
  if (auto body = parse_body(in, error)) {
    const std::vector<uint8_t> again = encode_body(*body);
    FUZZ_CHECK(std::equal(again.begin(), again.end(), in.begin(), in.end()));
  } else {
    FUZZ_CHECK(one_line(error));
  }

  std::string token_error;
  const auto token = parse_token(in, token_error);
  if (token) {
    FUZZ_CHECK(size >= kMinAuthorizationSize && size <= kMaxAuthorizationSize);
    const std::vector<uint8_t> body = encode_body(*token);
    FUZZ_CHECK(body.size() + kSignatureSize == size);
    FUZZ_CHECK(std::equal(body.begin(), body.end(), in.begin()));
  } else {
    FUZZ_CHECK(one_line(token_error));
  }

  Authorization out = sentinel();
  std::string why;
  const Result r = verifier().verify(in, kNow, out, why);
  (void)to_string(r);
  FUZZ_CHECK((r == Result::Malformed) == !token);
  FUZZ_CHECK(r == Result::Ok ? why.empty() : one_line(why));
  if (r == Result::Malformed || r == Result::BadSignature) {
    FUZZ_CHECK(out == sentinel());
    return 0;
  }
  FUZZ_CHECK(out == *token);

  // An authentic token: walk the edges of its validity window.
  const uint64_t issued = token->issued_at_ms;
  const uint64_t expires = token->expires_at_ms;
  FUZZ_CHECK(verify_at(in, issued, *token) == Result::Ok);
  FUZZ_CHECK(verify_at(in, expires, *token) == Result::Ok);
  if (expires != UINT64_MAX) FUZZ_CHECK(verify_at(in, expires + 1, *token) == Result::Expired);
  if (issued > kClockSkewAllowanceMs) {
    FUZZ_CHECK(verify_at(in, issued - kClockSkewAllowanceMs, *token) == Result::Ok);
    FUZZ_CHECK(verify_at(in, issued - kClockSkewAllowanceMs - 1, *token) == Result::NotYetValid);
  }
  return 0;
}
