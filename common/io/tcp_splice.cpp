#include "io/tcp_splice.hpp"

#include "wire/stream_header.hpp"

namespace ztna::io {

namespace {
constexpr size_t kReadChunk = 64 * 1024;
}

TcpSplice::TcpSplice(QuicPeer& quic, int64_t stream_id, Done done)
    : quic_(quic), stream_id_(stream_id), done_(std::move(done)) {}

TcpSplice::~TcpSplice() {
  *alive_ = false;
  // Destroyed before both directions ended cleanly: the session under us ended (its peer died,
  // was closed, or policy cut it). A FIN would make a cut transfer look complete to the
  // application (DESIGN D10); the socket is reset instead.
  close_socket(!(tcp_eof_ && tcp_shut_wr_));
}

void TcpSplice::attach(tcp::socket socket) {
  socket_.emplace(std::move(socket));
  boost::system::error_code ec;
  socket_->set_option(tcp::no_delay(true), ec);
  read_buf_.resize(kReadChunk);
  read_tcp();
  write_tcp();
}

void TcpSplice::read_tcp() {
  if (!socket_ || reading_ || paused_ || tcp_eof_ || failed_) return;
  reading_ = true;
  socket_->async_read_some(
      boost::asio::buffer(read_buf_), [this, alive = alive_](boost::system::error_code ec, size_t n) {
        if (!*alive) return;
        reading_ = false;
        if (failed_) return;
        auto& conn = quic_.conn();
        if (n > 0) {
          bytes_from_tcp_ += n;
          conn.send(stream_id_, {read_buf_.data(), n});
          quic_.schedule_flush();
        }
        if (ec == boost::asio::error::eof) {
          tcp_eof_ = true;
          conn.finish(stream_id_);
          quic_.schedule_flush();
          maybe_done();
          return;
        }
        if (ec) {
          if (ec != boost::asio::error::operation_aborted)
            abort(static_cast<uint64_t>(wire::StreamError::BackendReset));
          return;
        }
        if (conn.unacknowledged(stream_id_) > quic::Connection::kStreamHighWater) {
          paused_ = true; // resumed by on_stream_writable
          return;
        }
        read_tcp();
      });
}

void TcpSplice::on_stream_writable() {
  if (!paused_) return;
  paused_ = false;
  read_tcp();
}

void TcpSplice::on_stream_data(std::span<const uint8_t> data, bool fin) {
  if (failed_) return;
  to_tcp_.insert(to_tcp_.end(), data.begin(), data.end());
  if (fin) stream_fin_ = true;
  write_tcp();
}

void TcpSplice::write_tcp() {
  if (!socket_ || writing_ || failed_) return;
  if (to_tcp_.empty()) {
    if (stream_fin_ && !tcp_shut_wr_) {
      tcp_shut_wr_ = true;
      boost::system::error_code ec;
      socket_->shutdown(tcp::socket::shutdown_send, ec);
      maybe_done();
    }
    return;
  }
  writing_ = true;
  std::swap(in_flight_, to_tcp_);
  boost::asio::async_write(
      *socket_, boost::asio::buffer(in_flight_),
      [this, alive = alive_](boost::system::error_code ec, size_t n) {
        if (!*alive) return;
        writing_ = false;
        if (failed_) return;
        if (ec) {
          if (ec != boost::asio::error::operation_aborted)
            abort(static_cast<uint64_t>(wire::StreamError::BackendReset));
          return;
        }
        in_flight_.clear();
        bytes_to_tcp_ += n;
        // Only now may the peer send more: flow control tracks what TCP really took.
        quic_.conn().consume(stream_id_, n);
        quic_.schedule_flush();
        write_tcp();
      });
}

void TcpSplice::on_stream_reset(uint64_t app_error) {
  (void)app_error;
  if (failed_) return;
  failed_ = true;
  quic_.conn().reset(stream_id_, static_cast<uint64_t>(wire::StreamError::BackendReset));
  quic_.schedule_flush();
  close_socket(true);
  maybe_done();
}

void TcpSplice::on_stream_closed() {
  stream_closed_ = true;
  if (!tcp_shut_wr_ && !failed_ && to_tcp_.empty() && !stream_fin_) {
    // Closed without FIN on our receive side (e.g. the connection went away).
    failed_ = true;
    close_socket(true);
  }
  maybe_done();
}

void TcpSplice::abort(uint64_t app_error) {
  if (failed_) return;
  failed_ = true;
  quic_.conn().reset(stream_id_, app_error);
  quic_.schedule_flush();
  close_socket(true);
  maybe_done();
}

void TcpSplice::close_socket(bool reset) {
  if (!socket_ || !socket_->is_open()) return;
  boost::system::error_code ec;
  if (reset) socket_->set_option(boost::asio::socket_base::linger(true, 0), ec); // sends RST
  socket_->close(ec);
}

void TcpSplice::maybe_done() {
  if (done_reported_) return;
  bool finished = failed_ || (tcp_eof_ && tcp_shut_wr_ && stream_closed_);
  if (!finished) return;
  done_reported_ = true;
  // Reported from a fresh loop turn: the owner destroys us in the callback.
  boost::asio::post(quic_.io(), [d = done_, id = stream_id_, alive = alive_] {
    if (*alive) d(id);
  });
}

} // namespace ztna::io
