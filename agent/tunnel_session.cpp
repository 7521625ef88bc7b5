#include "tunnel_session.hpp"

#include "io/clock.hpp"
#include "relay/relay_path.hpp"
#include "wire/stream_header.hpp"

#include <spdlog/spdlog.h>

namespace ztna {

TunnelSession::TunnelSession(uint64_t id, std::string connector, std::string service,
                             std::vector<uint8_t> authorization, const Address& intermediate,
                             DatagramHandler on_datagram)
    : id_(id), connector_(std::move(connector)), service_(std::move(service)),
      authorization_(std::move(authorization)), on_datagram_(std::move(on_datagram)),
      relay_path_{relay_local_address(1), intermediate}, liveness_({}, io::now()) {}

TunnelSession::~TunnelSession() {
  *alive_ = false;
  splices_.clear(); // before quic_: splices refer to it
}

void TunnelSession::defer(std::function<void()> f) {
  boost::asio::post(quic_->io(), [alive = alive_, f = std::move(f)] {
    if (*alive) f();
  });
}

void TunnelSession::on_handshake_confirmed() {
  if (paths_) defer([this] { paths_->on_handshake_confirmed(); });
}

void TunnelSession::on_path_validated(const quic::Path& path, bool success) {
  const bool direct = !is_relay_local(path.local);
  if (direct && success) on_direct_ = path.local == last_direct_.local && path.remote == last_direct_.remote;
  if (paths_) defer([this, direct, success] { paths_->on_path_validated(direct, success); });
}

void TunnelSession::move_to_direct(const Address& remote) {
  auto [it, fresh] = direct_locals_.try_emplace(remote.to_string());
  if (fresh) {
    // [100::2]:n from the discard-only prefix 100::/64 (RFC 6666), one per remote address.
    it->second = *Address::parse("[100::2]:" + std::to_string(next_direct_port_++));
  }
  last_direct_ = {it->second, remote};
  relay_rtt_ms_ = quic_->conn().stats().smoothed_rtt_ms;
  std::string error;
  if (!quic_->conn().migrate({it->second, remote}, true, io::now(), error)) {
    spdlog::warn("session {:016x}: cannot migrate to {}: {}", id_, remote.to_string(), error);
    if (paths_) defer([this] { paths_->on_path_validated(true, false); });
    return;
  }
  quic_->schedule_flush();
}

void TunnelSession::move_to_relay(const Address& intermediate) {
  on_direct_ = false;
  // Port 0 is never a relay path: after 65535 moves, start again at 1.
  relay_generation_ = relay_generation_ == UINT16_MAX ? 1 : relay_generation_ + 1;
  relay_path_ = {relay_local_address(relay_generation_), intermediate};
  std::string error;
  if (!quic_->conn().migrate(relay_path_, false, io::now(), error))
    spdlog::warn("session {:016x}: cannot migrate onto the relay: {}", id_, error);
  quic_->schedule_flush();
}

quic::Path TunnelSession::map_inbound(const quic::Path& arrived) const {
  if (is_relay_local(arrived.local)) {
    // After each migration the connector's ngtcp2 validates the path it left (the relay), and
    // it will not move back onto that path while the validation runs (up to seconds). Our
    // ngtcp2 ignores packets from a path that is not current, so while we are direct, relay
    // packets are handed over as the current path's: the PATH_RESPONSE goes out on the direct
    // path (ngtcp2 0.12.1 servers match the data, not the path) and a fallback is followed at
    // once.
    if (on_direct_) return last_direct_;
    // On the relay: the relay path ngtcp2 is on (a failed validation of a new relay path takes
    // it back to the one before).
    const auto& current = quic_->conn().path();
    return is_relay_local(current.local) ? current : relay_path_;
  }
  if (arrived.remote == last_direct_.remote) return last_direct_; // the hot path: no lookup
  auto it = direct_locals_.find(arrived.remote.to_string());
  return it == direct_locals_.end() ? arrived : quic::Path{it->second, arrived.remote};
}

double TunnelSession::relay_rtt_ms() const {
  if (quic_ && quic_->attached() && is_relay_local(quic_->conn().path().local))
    return quic_->conn().stats().smoothed_rtt_ms;
  return relay_rtt_ms_;
}

void TunnelSession::add_connection(const std::string& service, tcp::socket socket) {
  waiting_.emplace_back(service, std::move(socket));
  open_waiting_streams();
}

void TunnelSession::open_waiting_streams() {
  if (!established()) return;
  auto& conn = quic_->conn();
  while (!waiting_.empty()) {
    auto id = conn.open_bidi_stream();
    if (!id) return; // the connector's stream limit: on_streams_available resumes
    auto [service, socket] = std::move(waiting_.front());
    waiting_.pop_front();
    conn.send(*id, wire::encode_stream_header(service));
    auto splice =
        std::make_unique<io::TcpSplice>(*quic_, *id, [this](int64_t sid) { splices_.erase(sid); });
    splice->attach(std::move(socket));
    splices_.emplace(*id, std::move(splice));
  }
  quic_->schedule_flush();
}

void TunnelSession::send_datagram(std::span<const uint8_t> datagram) {
  if (!established()) {
    if (early_datagrams_.size() < 256)
      early_datagrams_.emplace_back(datagram.begin(), datagram.end());
    return;
  }
  quic_->conn().send_datagram(datagram);
  quic_->schedule_flush();
}

void TunnelSession::on_handshake_completed() {
  if (credentials_.refuse_if_revoked(*quic_->conn().peer_identity(), quic_->conn().path().remote,
                                     "session " + fmt::format("{:016x}", id_))) {
    quic_->close(static_cast<uint64_t>(wire::ErrorCode::NotAuthorized), "certificate revoked");
    return;
  }
  spdlog::info("session {:016x}: end-to-end handshake with connector '{}' complete (relay path)",
               id_, connector_);
  // Stream 0 first: the connector serves nothing before it has checked the authorization, and
  // the streams and datagrams that follow are held there meanwhile, not refused.
  auto& conn = quic_->conn();
  auto sid = conn.open_bidi_stream();
  if (!sid || *sid != wire::kAuthorizationStreamId) {
    quic_->close(static_cast<uint64_t>(wire::StreamError::Internal),
                 "cannot open the authorization stream");
    return;
  }
  conn.send(*sid, wire::encode_authorization_stream(authorization_));
  conn.finish(*sid);
  authorization_.clear();
  for (auto& d : early_datagrams_)
    quic_->conn().send_datagram(d);
  early_datagrams_.clear();
  open_waiting_streams();
}

void TunnelSession::on_streams_available() {
  open_waiting_streams();
}

void TunnelSession::on_stream_data(int64_t stream_id, std::span<const uint8_t> data, bool fin) {
  if (auto it = splices_.find(stream_id); it != splices_.end())
    it->second->on_stream_data(data, fin);
}

void TunnelSession::on_stream_reset(int64_t stream_id, uint64_t app_error) {
  auto it = splices_.find(stream_id);
  if (it == splices_.end()) return;
  if (auto e = wire::stream_error_from_code(app_error)) {
    streams_rejected_++;
    spdlog::warn("session {:016x}: connector '{}' closed stream {}: {}", id_, connector_, stream_id,
                 wire::to_string(*e));
  }
  it->second->on_stream_reset(app_error);
}

void TunnelSession::on_stream_closed(int64_t stream_id) {
  if (auto it = splices_.find(stream_id); it != splices_.end()) it->second->on_stream_closed();
}

void TunnelSession::on_stream_writable(int64_t stream_id) {
  if (auto it = splices_.find(stream_id); it != splices_.end()) it->second->on_stream_writable();
}

void TunnelSession::on_datagram(std::span<const uint8_t> data) {
  on_datagram_(data);
}

} // namespace ztna
