// TEST-ONLY Ed25519 keys shared by the unit tests that sign or verify session authorizations.
#pragma once

namespace ztna::test::keys {

// TEST-ONLY keys, generated once with `openssl genpkey -algorithm ED25519` / `openssl pkey
// -pubout` (and `-algorithm EC -pkeyopt ec_paramgen_curve:P-256`, `-algorithm ED448`). They
// protect nothing. fuzz/fuzz_authorization.cpp trusts kPubA and kPubB, and its seed corpus is
// signed with kKeyA and kKeyB (see the hidden test case at the end).
inline const char* const kKeyA = "-----BEGIN PRIVATE KEY-----\n"
                          "MC4CAQAwBQYDK2VwBCIEID/Vs0mSJAaC1YmUWP0ZLFBRRvv2YKCsiNnZg0V9qtye\n"
                          "-----END PRIVATE KEY-----\n";
inline const char* const kPubA = "-----BEGIN PUBLIC KEY-----\n"
                          "MCowBQYDK2VwAyEArlEbWTN0FYNouJhdTqDdzq5V9PwMJr132nx4IvMJauU=\n"
                          "-----END PUBLIC KEY-----\n";
inline const char* const kKeyB = "-----BEGIN PRIVATE KEY-----\n"
                          "MC4CAQAwBQYDK2VwBCIEIAyKUm+jTvbLjbMv7Rg6RDaKezuoebrSARDGnmIj35ec\n"
                          "-----END PRIVATE KEY-----\n";
inline const char* const kPubB = "-----BEGIN PUBLIC KEY-----\n"
                          "MCowBQYDK2VwAyEASSrzzKeJYESbGJEBq0NtYLWA66olTsmR3TUPEp8Es2c=\n"
                          "-----END PUBLIC KEY-----\n";
} // namespace ztna::test::keys
