#include "io/endpoint.hpp"

#include "wire/packet_class.hpp"

#include <gnutls/crypto.h>
#include <ngtcp2/ngtcp2_crypto.h>

#include <fstream>
#include <sstream>
#include <stdexcept>

namespace ztna::io {

Endpoint::Endpoint(boost::asio::io_context& io, const Address& bind,
                   std::array<uint8_t, 32> reset_secret)
    : socket_(io, bind), reset_secret_(reset_secret) {}

void Endpoint::start(RelayHandler relay, AcceptHandler accept) {
  relay_ = std::move(relay);
  accept_ = std::move(accept);
  socket_.start([this](const Address& from, std::span<const uint8_t> d) { on_datagram(from, d); });
}

void Endpoint::on_datagram(const Address& from, std::span<const uint8_t> data) {
  switch (wire::classify_packet(data)) {
  case wire::PacketClass::Quic:
    on_quic(from, data);
    return;
  case wire::PacketClass::Relay:
    relay_(from, data);
    return;
  case wire::PacketClass::Stun:
    counters_.stun_datagrams++;
    if (stun_) stun_(from, data);
    return;
  case wire::PacketClass::Unknown:
    counters_.junk_datagrams++;
    return;
  }
}

void Endpoint::on_quic(const Address& from, std::span<const uint8_t> data) {
  ngtcp2_version_cid vc;
  int rv = ngtcp2_pkt_decode_version_cid(&vc, data.data(), data.size(), quic::kScidLength);
  if (rv != 0) {
    // Includes version negotiation requests for versions we do not speak: v1 only for now.
    counters_.junk_datagrams++;
    return;
  }
  std::string dcid(reinterpret_cast<const char*>(vc.dcid), vc.dcidlen);
  if (auto* peer = router_.find(dcid)) {
    peer->receive({socket_.local(), from}, data);
    return;
  }
  if (data[0] & 0x80) { // long header
    ngtcp2_pkt_hd hd;
    if (accept_ && ngtcp2_accept(&hd, data.data(), data.size()) == 0) {
      accept_(from, data, hd);
      return;
    }
    counters_.unknown_connection++;
    return;
  }
  counters_.unknown_connection++;
  // A stateless reset carries no routable connection ID (RFC 9000 §10.3.1): let each
  // connection to the sender check it against the tokens it holds. Only on client-role sockets,
  // which hold a handful of connections; a server would pay for every stray packet.
  if (!accept_) {
    std::vector<QuicPeer*> candidates;
    router_.for_each_owner([&](QuicPeer* p) {
      if (p->attached() && p->conn().path().remote == from) candidates.push_back(p);
    });
    for (auto* p : candidates) {
      p->receive({socket_.local(), from}, data);
      if (p->conn().finished()) return;
    }
  }
  send_stateless_reset(from, vc, data.size());
}

void Endpoint::send_stateless_reset(const Address& to, const ngtcp2_version_cid& vc,
                                    size_t received) {
  // RFC 9000 §10.3: smaller than the packet that triggered it (no amplification, no loops),
  // at least 21 bytes, and rate limited.
  constexpr size_t kMin = 21;
  if (received <= kMin + 1 || !reset_limiter_.allow(now())) return;
  ngtcp2_cid cid;
  ngtcp2_cid_init(&cid, vc.dcid, vc.dcidlen);
  uint8_t token[NGTCP2_STATELESS_RESET_TOKENLEN];
  if (ngtcp2_crypto_generate_stateless_reset_token(token, reset_secret_.data(),
                                                   reset_secret_.size(), &cid) != 0)
    return;
  size_t len = std::min<size_t>(received - 1, 43);
  uint8_t rand[64];
  size_t randlen = len - 1 - NGTCP2_STATELESS_RESET_TOKENLEN;
  gnutls_rnd(GNUTLS_RND_NONCE, rand, randlen);
  uint8_t buf[64];
  auto n = ngtcp2_pkt_write_stateless_reset(buf, sizeof buf, token, rand, randlen);
  if (n <= 0) return;
  socket_.send(to, {buf, static_cast<size_t>(n)});
  counters_.stateless_resets_sent++;
}

std::array<uint8_t, 32> derive_reset_secret(const std::string& key_file) {
  std::ifstream in(key_file, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + key_file);
  std::stringstream ss;
  ss << "ztna stateless reset v1\n" << in.rdbuf();
  auto text = ss.str();
  std::array<uint8_t, 32> out;
  gnutls_hash_fast(GNUTLS_DIG_SHA256, text.data(), text.size(), out.data());
  return out;
}

} // namespace ztna::io
