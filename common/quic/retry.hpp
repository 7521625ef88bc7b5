// Stateless address validation with QUIC Retry (RFC 9000 §8.1.2), sans-IO: the token binds the
// client's address and its original connection ID under a secret only this server holds
// (ngtcp2_crypto's Retry token format), so a client that cannot receive at its source address
// never gets past it.
#pragma once

#include "net/address.hpp"

#include <ngtcp2/ngtcp2.h>

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

namespace ztna::quic {

using RetrySecret = std::array<uint8_t, 32>;

// How long a Retry token stays good: a round trip, with room for a slow path.
constexpr uint64_t kRetryTokenLifetimeNs = 10ull * 1000 * 1000 * 1000;

// The Retry packet answering `initial` from `client`, at most `max_size` bytes (the Initial's
// size: a Retry is never an amplification). Empty if it cannot be made.
std::vector<uint8_t> make_retry(const ngtcp2_pkt_hd& initial, const Address& client,
                                const RetrySecret& secret, uint64_t unix_ns, size_t max_size);

// Checks the Retry token in `initial`. Returns the connection ID the client chose first (for
// the transport parameters) or nullopt if the token is not one of ours, is for another address,
// or has expired.
std::optional<ngtcp2_cid> verify_retry(const ngtcp2_pkt_hd& initial, const Address& client,
                                       const RetrySecret& secret, uint64_t unix_ns);

// Is there a Retry token in `initial` at all?
bool has_retry_token(const ngtcp2_pkt_hd& initial);

} // namespace ztna::quic
