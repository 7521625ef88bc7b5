#include "quic/retry.hpp"

#include "quic/connection.hpp"

#include <gnutls/crypto.h>
#include <ngtcp2/ngtcp2_crypto.h>

namespace ztna::quic {

std::vector<uint8_t> make_retry(const ngtcp2_pkt_hd& initial, const Address& client,
                                const RetrySecret& secret, uint64_t unix_ns, size_t max_size) {
  ngtcp2_cid scid;
  scid.datalen = kScidLength;
  if (gnutls_rnd(GNUTLS_RND_NONCE, scid.data, scid.datalen) != 0) return {};
  std::array<uint8_t, NGTCP2_CRYPTO_MAX_RETRY_TOKENLEN> token;
  auto tokenlen = ngtcp2_crypto_generate_retry_token(
      token.data(), secret.data(), secret.size(), initial.version, client.sa(), client.len(),
      &scid, &initial.dcid, unix_ns);
  if (tokenlen < 0) return {};
  std::vector<uint8_t> out(std::min<size_t>(max_size, NGTCP2_MAX_UDP_PAYLOAD_SIZE));
  auto n = ngtcp2_crypto_write_retry(out.data(), out.size(), initial.version, &initial.scid, &scid,
                                     &initial.dcid, token.data(), static_cast<size_t>(tokenlen));
  if (n < 0) return {};
  out.resize(static_cast<size_t>(n));
  return out;
}

bool has_retry_token(const ngtcp2_pkt_hd& initial) {
  return initial.token.len > 0 && initial.token.base[0] == NGTCP2_CRYPTO_TOKEN_MAGIC_RETRY;
}

std::optional<ngtcp2_cid> verify_retry(const ngtcp2_pkt_hd& initial, const Address& client,
                                       const RetrySecret& secret, uint64_t unix_ns) {
  if (!has_retry_token(initial)) return std::nullopt;
  ngtcp2_cid odcid;
  if (ngtcp2_crypto_verify_retry_token(&odcid, initial.token.base, initial.token.len,
                                       secret.data(), secret.size(), initial.version, client.sa(),
                                       client.len(), &initial.dcid, kRetryTokenLifetimeNs,
                                       unix_ns) != 0)
    return std::nullopt;
  return odcid;
}

} // namespace ztna::quic
