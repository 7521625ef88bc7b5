// The per-daemon UDP endpoint: one socket, demultiplexed by first byte (DESIGN D1,
// docs/protocol.md), QUIC routed by destination connection ID.
#pragma once

#include "io/quic_peer.hpp"
#include "io/udp_socket.hpp"
#include "net/rate_limiter.hpp"

#include <ngtcp2/ngtcp2.h>

#include <array>
#include <functional>
#include <map>
#include <string>

namespace ztna::io {

struct EndpointCounters {
  uint64_t junk_datagrams = 0;     // first byte outside every known range, or unparseable
  uint64_t stun_datagrams = 0;     // STUN datagrams received (handled by the daemon)
  uint64_t unknown_connection = 0; // QUIC for a connection ID we do not know
  uint64_t stateless_resets_sent = 0;
  uint64_t relay_frames_malformed = 0;
};

class Endpoint {
public:
  using StunHandler = std::function<void(const Address& from, std::span<const uint8_t> datagram)>;
  using RelayHandler = std::function<void(const Address& from, std::span<const uint8_t> datagram)>;
  // A long-header Initial for no known connection; only daemons with a server role set this.
  using AcceptHandler = std::function<void(const Address& from, std::span<const uint8_t> packet,
                                           const ngtcp2_pkt_hd& initial)>;

  // `reset_secret` derives stateless reset tokens; it must be stable across restarts.
  Endpoint(boost::asio::io_context& io, const Address& bind, std::array<uint8_t, 32> reset_secret);
  void start(RelayHandler relay, AcceptHandler accept = nullptr);
  void stop() { socket_.stop(); }
  // STUN datagrams (connectivity checks, DESIGN D4) go here; without a handler they are counted
  // and dropped.
  void on_stun(StunHandler handler) { stun_ = std::move(handler); }

  UdpSocket& socket() { return socket_; }
  const UdpSocket& socket() const { return socket_; }
  quic::CidRouter<QuicPeer>& router() { return router_; }
  std::span<const uint8_t> reset_secret() const { return reset_secret_; }
  const EndpointCounters& counters() const { return counters_; }
  // Sends a QUIC packet straight out of the socket along `path`.
  void transmit(const quic::Path& path, std::span<const uint8_t> packet) {
    socket_.send(path.remote, packet);
  }

private:
  void on_datagram(const Address& from, std::span<const uint8_t> data);
  void on_quic(const Address& from, std::span<const uint8_t> data);
  void send_stateless_reset(const Address& to, const ngtcp2_version_cid& vc, size_t received);

  UdpSocket socket_;
  std::array<uint8_t, 32> reset_secret_;
  quic::CidRouter<QuicPeer> router_;
  RelayHandler relay_;
  StunHandler stun_;
  AcceptHandler accept_;
  EndpointCounters counters_;
  RateLimiter reset_limiter_{100, 100};
};

// A stateless reset secret derived from the daemon's private key file, so that it survives
// restarts (RFC 9000 §10.3.2) without a separate secret to manage.
std::array<uint8_t, 32> derive_reset_secret(const std::string& key_file);

} // namespace ztna::io
