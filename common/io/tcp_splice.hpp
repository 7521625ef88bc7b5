// Splices one TCP connection with one bidirectional QUIC stream, both ways (DESIGN D5).
//
// Backpressure: we stop reading TCP while the stream holds more than kStreamHighWater
// unacknowledged bytes, and hand QUIC flow-control credit back only after bytes reached the TCP
// socket, so a slow reader on either side never makes memory grow without bound.
// Half-close: TCP EOF becomes FIN and FIN becomes shutdown(SHUT_WR). A splice destroyed before
// both directions ended (its session is gone) resets the TCP connection: never a clean EOF for a
// cut transfer.
#pragma once

#include "io/quic_peer.hpp"

#include <boost/asio.hpp>

#include <functional>
#include <optional>
#include <vector>

namespace ztna::io {

class TcpSplice {
public:
  using tcp = boost::asio::ip::tcp;
  // Called once both directions are done or the splice failed; the owner then destroys it.
  using Done = std::function<void(int64_t stream_id)>;

  TcpSplice(QuicPeer& quic, int64_t stream_id, Done done);
  ~TcpSplice();
  // Starts moving bytes. Stream data that arrived before (e.g. while the backend connection
  // was being set up) is already queued and goes out first.
  void attach(tcp::socket socket);
  bool attached() const { return socket_.has_value(); }

  // From the QUIC stream.
  void on_stream_data(std::span<const uint8_t> data, bool fin);
  void on_stream_reset(uint64_t app_error);
  void on_stream_writable();
  void on_stream_closed();
  // Abort both directions with this application error (e.g. backend refused).
  void abort(uint64_t app_error);

  int64_t stream_id() const { return stream_id_; }
  uint64_t bytes_to_tcp() const { return bytes_to_tcp_; }
  uint64_t bytes_from_tcp() const { return bytes_from_tcp_; }

private:
  void read_tcp();
  void write_tcp();
  void maybe_done();
  void close_socket(bool reset);

  QuicPeer& quic_;
  int64_t stream_id_;
  Done done_;
  std::optional<tcp::socket> socket_;
  std::vector<uint8_t> read_buf_;
  // Stream bytes for TCP: `to_tcp_` accumulates while `in_flight_` is being written, so that a
  // burst of small QUIC packets becomes one write(2).
  std::vector<uint8_t> to_tcp_;
  std::vector<uint8_t> in_flight_;
  bool reading_ = false;
  bool writing_ = false;
  bool paused_ = false;       // stopped reading TCP: the stream is full
  bool tcp_eof_ = false;      // TCP side sent FIN (we sent QUIC FIN)
  bool stream_fin_ = false;   // QUIC side sent FIN (shutdown(SHUT_WR) once queue drains)
  bool tcp_shut_wr_ = false;
  bool stream_closed_ = false;
  bool failed_ = false;
  bool done_reported_ = false;
  uint64_t bytes_to_tcp_ = 0;
  uint64_t bytes_from_tcp_ = 0;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

} // namespace ztna::io
