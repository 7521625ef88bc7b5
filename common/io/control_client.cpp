#include "io/control_client.hpp"

#include <spdlog/spdlog.h>

namespace ztna::io {

ControlClient::ControlClient(boost::asio::io_context& io, Endpoint& endpoint, Options options,
                             Listener listener)
    : io_(io), endpoint_(endpoint), options_(std::move(options)), listener_(std::move(listener)),
      retry_timer_(io) {}

const char* ControlClient::state_name() const {
  switch (state_) {
  case State::Connecting:
    return "connecting";
  case State::Connected:
    return "connected";
  case State::Backoff:
    return "backoff";
  case State::Stopped:
    return "stopped";
  case State::Replaced:
    return "replaced";
  }
  return "?";
}

void ControlClient::start() {
  connect();
}

void ControlClient::connect() {
  state_ = State::Connecting;
  stream_.reset();
  heartbeat_sent_ = 0; // a heartbeat of the last connection proves nothing about this one
  quic::ConnectionConfig cfg;
  cfg.tls = options_.tls;
  cfg.alpn = std::string(wire::kControlAlpn);
  cfg.server_name = options_.server_name;
  cfg.idle_timeout = options_.idle_timeout;
  cfg.keepalive = probing_ ? kProbeKeepalive : options_.keepalive;
  cfg.reset_secret = endpoint_.reset_secret();
  cfg.max_bidi_streams = 0; // only we open the control stream
  // The intermediate, by the name we were given, with a certificate for TLS servers: an agent's
  // or a connector's certificate can never stand in for it.
  cfg.peer.roles = {Role::Intermediate};
  cfg.peer.server_auth = true;
  quic::Path path{endpoint_.socket().local(), options_.intermediate};
  std::string error;
  auto conn = quic::Connection::client(cfg, path, *this, now(), error);
  if (!conn) {
    on_lost(error);
    return;
  }
  spdlog::info("control: connecting to {} ({})", options_.intermediate.to_string(),
               options_.server_name);
  peer_ = std::make_unique<QuicPeer>(
      io_, &endpoint_.router(),
      [this](const quic::Path& p, std::span<const uint8_t> pkt) { endpoint_.transmit(p, pkt); });
  peer_->on_finished([this](const std::string& why) { on_lost(why); });
  peer_->attach(std::move(conn));
}

void ControlClient::on_handshake_completed() {
  // Checked with the credentials of when the connection started; a reload may have come since.
  const LiveCredentials live{&options_.tls, options_.refusals};
  if (live.refuse_if_revoked(*peer_->conn().peer_identity(), peer_->conn().path().remote,
                            "the intermediate's certificate")) {
    peer_->close(static_cast<uint64_t>(wire::ErrorCode::NotAuthorized), "certificate revoked");
    return;
  }
  if (!stream_.open(peer_->conn())) {
    peer_->close(static_cast<uint64_t>(wire::ErrorCode::Internal), "cannot open control stream");
    return;
  }
  stream_.send(peer_->conn(), wire::Hello{options_.role, options_.services});
  peer_->schedule_flush();
}

void ControlClient::on_stream_data(int64_t stream_id, std::span<const uint8_t> data, bool fin) {
  std::vector<wire::ControlMessage> messages;
  if (!stream_.on_data(peer_->conn(), stream_id, data, messages)) {
    spdlog::warn("control: malformed message from intermediate: {}", stream_.error());
    peer_->close(static_cast<uint64_t>(wire::ErrorCode::Malformed), stream_.error());
    return;
  }
  for (auto& m : messages) {
    if (auto* obs = std::get_if<wire::ObservedAddress>(&m)) {
      bool first = state_ != State::Connected;
      const bool changed = !(obs->address == observed_);
      if (changed) spdlog::info("control: intermediate sees us as {}", obs->address.to_string());
      observed_ = obs->address;
      // A new reflexive address is a new candidate: the daemon restarts its checks.
      if (!first && changed && listener_.message) listener_.message(m);
      if (first) {
        state_ = State::Connected;
        connects_++;
        backoff_.reset();
        last_error_.clear();
        spdlog::info("control: registered with {}", options_.intermediate.to_string());
        if (listener_.connected) listener_.connected();
      }
      continue;
    }
    if (auto* err = std::get_if<wire::ErrorMessage>(&m)) {
      last_error_ = std::string("intermediate: ") + wire::to_string(err->code) + ": " + err->reason;
      spdlog::warn("control: {}", last_error_);
      continue;
    }
    if (listener_.message) listener_.message(m);
  }
  if (fin) peer_->close(static_cast<uint64_t>(wire::ErrorCode::None), "control stream ended");
}

void ControlClient::on_lost(const std::string& why) {
  bool was_connected = state_ == State::Connected;
  if (peer_ && options_.refusals && !peer_->conn().handshake_completed() &&
      peer_->conn().refusal())
    options_.refusals->refused(*peer_->conn().refusal(), options_.intermediate,
                               "the intermediate's certificate");
  const bool replaced =
      peer_ && peer_->conn().peer_close_code() == static_cast<uint64_t>(wire::ErrorCode::Replaced);
  peer_.reset();
  if (state_ == State::Stopped) return;
  last_error_ = why;
  if (replaced) {
    // Another daemon holds our identity now. Reconnecting would take it back from that one,
    // which would take it back in turn: the two would replace each other for ever. The newest
    // one keeps it; this one says so and stays down until it is restarted.
    state_ = State::Replaced;
    spdlog::error("control: {}: another daemon with this identity registered with the "
                  "intermediate; not reconnecting (restart this one to take the identity back)",
                  why);
    if (was_connected && listener_.lost) listener_.lost(why);
    return;
  }
  state_ = State::Backoff;
  auto delay = backoff_.next(static_cast<uint32_t>(rng_()));
  spdlog::warn("control: {} {}; retrying in {} ms",
               was_connected ? "lost connection:" : "cannot connect:", why, delay.count());
  if (was_connected && listener_.lost) listener_.lost(why);
  retry_timer_.expires_after(delay);
  retry_timer_.async_wait([this](boost::system::error_code ec) {
    if (!ec && state_ == State::Backoff) connect();
  });
}

void ControlClient::set_tls(quic::TlsIdentityPtr tls) {
  options_.tls = std::move(tls);
  if (!peer_ || !peer_->attached()) return;
  const auto& id = peer_->conn().peer_identity();
  if (id && options_.tls->is_revoked(*id)) {
    spdlog::error("control: the intermediate's certificate is revoked (reloaded CRL); closing");
    peer_->close(static_cast<uint64_t>(wire::ErrorCode::NotAuthorized), "certificate revoked");
  }
}

std::chrono::milliseconds ControlClient::probe_deadline() const {
  const auto rtt = std::chrono::milliseconds(static_cast<int64_t>(rtt_ms() * 5));
  return std::max(std::chrono::milliseconds(600), rtt);
}

void ControlClient::set_probing(bool probing) {
  const bool live = state_ == State::Connected && peer_ && peer_->attached() &&
                    !peer_->conn().finished();
  if (probing != probing_ && live) {
    peer_->conn().set_keepalive(probing ? kProbeKeepalive : options_.keepalive);
    peer_->schedule_flush();
  }
  const bool started = probing && !probing_;
  probing_ = probing;
  if (!probing || !live) return;
  const auto t = now();
  const auto since = t - heartbeat_sent_;
  if (started || (peer_->last_received() >= heartbeat_sent_ &&
                  since >= static_cast<quic::Timestamp>(
                               std::chrono::nanoseconds(kProbeKeepalive).count()))) {
    heartbeat_sent_ = t;
    send(wire::Heartbeat{});
    return;
  }
  const auto deadline = probe_deadline();
  if (peer_->last_received() < heartbeat_sent_ &&
      since > static_cast<quic::Timestamp>(std::chrono::nanoseconds(deadline).count())) {
    const std::string why = "no answer from the intermediate within " +
                            std::to_string(deadline.count()) + " ms of a heartbeat";
    peer_->close(static_cast<uint64_t>(wire::ErrorCode::Shutdown), "no answer");
    on_lost(why);
  }
}

quic::Timestamp ControlClient::last_received() const {
  return peer_ && state_ == State::Connected ? peer_->last_received() : 0;
}

void ControlClient::stop() {
  state_ = State::Stopped;
  retry_timer_.cancel();
  if (peer_) peer_->close(static_cast<uint64_t>(wire::ErrorCode::Shutdown), "shutting down");
}

bool ControlClient::send(const wire::ControlMessage& m) {
  if (state_ != State::Connected || !peer_) return false;
  stream_.send(peer_->conn(), m);
  peer_->schedule_flush();
  return true;
}

double ControlClient::rtt_ms() const {
  return peer_ && peer_->attached() ? peer_->conn().stats().smoothed_rtt_ms : 0;
}

nlohmann::json ControlClient::status() const {
  return {{"state", state_name()},
          {"intermediate", options_.intermediate.to_string()},
          {"observed_address", observed_.to_string()},
          {"rtt_ms", rtt_ms()},
          {"connects", connects_},
          {"last_error", last_error_}};
}

} // namespace ztna::io
