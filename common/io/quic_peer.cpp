#include "io/quic_peer.hpp"

namespace ztna::io {

QuicPeer::QuicPeer(boost::asio::io_context& io, quic::CidRouter<QuicPeer>* router,
                   Transmit transmit)
    : io_(io), router_(router), transmit_(std::move(transmit)), timer_(io) {}

QuicPeer::~QuicPeer() {
  *alive_ = false;
  if (router_) router_->remove(this);
}

void QuicPeer::attach(std::unique_ptr<quic::Connection> conn, std::string alias) {
  conn_ = std::move(conn);
  alias_ = std::move(alias);
  update_routes();
  // Not flush(): a server connection has no keys before its first packet is read (the caller
  // feeds it right after), and a client's first flight goes out on the next loop turn.
  schedule_flush();
}

void QuicPeer::update_routes() {
  if (!router_) return;
  auto cids = conn_->source_cids();
  if (!alias_.empty()) cids.push_back(alias_);
  router_->assign(this, cids);
}

void QuicPeer::receive(const quic::Path& path, std::span<const uint8_t> packet) {
  if (!conn_) return;
  last_receive_path_ = mapper_ ? mapper_(path) : path;
  last_received_ = now();
  packets_received_++;
  conn_->read_packet(last_receive_path_, packet, last_received_);
  schedule_flush();
}

void QuicPeer::schedule_flush() {
  if (flush_scheduled_) return;
  flush_scheduled_ = true;
  boost::asio::post(io_, [this, alive = alive_] {
    if (!*alive) return;
    flush_scheduled_ = false;
    flush();
  });
}

void QuicPeer::flush() {
  if (!conn_) return;
  conn_->write(now(), transmit_);
  if (!conn_->finished()) update_routes();
  arm_timer();
  check_finished();
}

void QuicPeer::close(uint64_t app_error, std::string_view reason) {
  if (!conn_) return;
  conn_->close(app_error, reason, now(), transmit_);
  check_finished();
}

void QuicPeer::arm_timer() {
  auto expiry = conn_->expiry();
  // Re-arming costs a system call, and the expiry moves on nearly every write (pacing, loss
  // detection). A timer already set no later than needed is left alone: firing early is
  // harmless, handle_expiry() does nothing before its time and we re-arm then.
  if (armed_for_ != quic::kNever && armed_for_ <= expiry) return;
  if (expiry == quic::kNever) return;
  armed_for_ = expiry;
  auto t = now();
  timer_.expires_after(std::chrono::nanoseconds(expiry > t ? expiry - t : 0));
  timer_.async_wait([this, alive = alive_](boost::system::error_code ec) {
    if (ec || !*alive) return;
    armed_for_ = quic::kNever;
    conn_->handle_expiry(now());
    flush();
  });
}

void QuicPeer::check_finished() {
  if (!conn_->finished() || finish_reported_) return;
  finish_reported_ = true;
  timer_.cancel();
  // Reported from a fresh loop turn: the owner may delete us, and we may be deep in a callback.
  // The callback moves into the handler so that it survives the owner deleting us in it. A
  // CONNECTION_CLOSE queued from inside a callback (quic::Connection::close) goes out first,
  // and only then do we leave the router: until then, more packets of this connection (in the
  // same batch, say) reach us and are ignored, instead of drawing a stateless reset that would
  // overtake the CONNECTION_CLOSE and hide why the peer was closed.
  boost::asio::post(io_, [this, f = std::move(finished_), why = conn_->error(), alive = alive_] {
    if (!*alive) return;
    conn_->write(now(), transmit_);
    if (router_) router_->remove(this);
    if (f) f(why);
  });
}

} // namespace ztna::io
