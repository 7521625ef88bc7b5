// The system's cryptographic random source (GnuTLS), for everything an attacker must not guess:
// session ids, ICE credentials and tie-breakers, connection IDs, Retry secrets.
#pragma once

#include <gnutls/crypto.h>

#include <cstdint>
#include <span>
#include <stdexcept>

namespace ztna::io {

inline void random_fill(std::span<uint8_t> out) {
  if (gnutls_rnd(GNUTLS_RND_RANDOM, out.data(), out.size()) != 0)
    throw std::runtime_error("the system's random source failed");
}

} // namespace ztna::io
