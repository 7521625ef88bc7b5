// Runs one quic::Connection on the event loop: its timer, its flushes, and its end.
#pragma once

#include "io/clock.hpp"
#include "quic/cid_router.hpp"
#include "quic/connection.hpp"

#include <boost/asio.hpp>

#include <functional>
#include <memory>
#include <string>

namespace ztna::io {

class QuicPeer {
public:
  // How a packet leaves: straight out of the socket, or wrapped in a relay frame.
  using Transmit = std::function<void(const quic::Path&, std::span<const uint8_t>)>;
  using Finished = std::function<void(const std::string& why)>;
  // Rewrites the path a packet arrived on into the path ngtcp2 knows it by: a session's direct
  // paths have virtual local addresses of their own (DESIGN D3).
  using PathMapper = std::function<quic::Path(const quic::Path& arrived)>;

  QuicPeer(boost::asio::io_context& io, quic::CidRouter<QuicPeer>* router, Transmit transmit);
  ~QuicPeer();
  QuicPeer(const QuicPeer&) = delete;
  QuicPeer& operator=(const QuicPeer&) = delete;

  // `alias`: a further connection ID to route here, e.g. the client's original DCID, which
  // its Initial packets keep using until it learns ours (RFC 9000 §7.2).
  void attach(std::unique_ptr<quic::Connection> conn, std::string alias = {});
  bool attached() const { return conn_ != nullptr; }
  boost::asio::io_context& io() { return io_; }
  quic::Connection& conn() { return *conn_; }
  const quic::Connection& conn() const { return *conn_; }
  // Called once, from the event loop (never from inside one of our own calls), when the
  // connection has ended. The owner may destroy this peer from inside the callback.
  void on_finished(Finished f) { finished_ = std::move(f); }

  void set_path_mapper(PathMapper mapper) { mapper_ = std::move(mapper); }
  void receive(const quic::Path& path, std::span<const uint8_t> packet);
  // The path the latest packet arrived on (as ngtcp2 knows it).
  const quic::Path& last_receive_path() const { return last_receive_path_; }
  // When the latest packet arrived (io::now()); 0 before the first.
  quic::Timestamp last_received() const { return last_received_; }
  uint64_t packets_received() const { return packets_received_; }
  // Coalesces: many calls in one loop iteration produce one write pass.
  void schedule_flush();
  void flush();
  void close(uint64_t app_error, std::string_view reason);

private:
  void arm_timer();
  void update_routes();
  void check_finished();

  boost::asio::io_context& io_;
  quic::CidRouter<QuicPeer>* router_;
  Transmit transmit_;
  Finished finished_;
  PathMapper mapper_;
  quic::Path last_receive_path_;
  quic::Timestamp last_received_ = 0;
  uint64_t packets_received_ = 0;
  std::unique_ptr<quic::Connection> conn_;
  std::string alias_;
  boost::asio::steady_timer timer_;
  quic::Timestamp armed_for_ = quic::kNever;
  bool flush_scheduled_ = false;
  bool finish_reported_ = false;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

} // namespace ztna::io
