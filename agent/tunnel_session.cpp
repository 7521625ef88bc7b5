#include "tunnel_session.hpp"

#include "io/clock.hpp"
#include "wire/stream_header.hpp"

#include <spdlog/spdlog.h>

namespace ztna {

TunnelSession::TunnelSession(io::Endpoint& endpoint, io::PathSignaling& signaling, uint64_t id,
                             std::string connector, std::string service,
                             std::vector<uint8_t> authorization, const Address& intermediate,
                             DatagramHandler on_datagram)
    : id_(id), connector_(std::move(connector)), service_(std::move(service)),
      authorization_(std::move(authorization)), on_datagram_(std::move(on_datagram)),
      paths_(endpoint, id, path::Role::Client, intermediate, signaling), liveness_({}, io::now()) {}

TunnelSession::~TunnelSession() {
  splices_.clear(); // before quic_: splices refer to it
}

void TunnelSession::set_quic(std::unique_ptr<io::QuicPeer> q) {
  quic_ = std::move(q);
  paths_.attach(*quic_);
}

void TunnelSession::on_handshake_confirmed() {
  paths_.on_handshake_confirmed();
}

void TunnelSession::on_path_validated(const quic::Path& path, bool success) {
  paths_.on_path_validated(path, success);
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
