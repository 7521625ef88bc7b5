// One end-to-end session from the agent to a connector (DESIGN D2): the QUIC client side,
// carrying one stream per local TCP connection and the datagrams of the UDP flows.
#pragma once

#include "io/quic_peer.hpp"
#include "io/tcp_splice.hpp"

#include <boost/asio.hpp>

#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>

namespace ztna {

class TunnelSession : public quic::ConnectionEvents {
public:
  using tcp = boost::asio::ip::tcp;
  using DatagramHandler = std::function<void(std::span<const uint8_t> payload)>;

  TunnelSession(uint64_t id, std::string connector, DatagramHandler on_datagram);
  ~TunnelSession() override;

  uint64_t id() const { return id_; }
  const std::string& connector() const { return connector_; }
  std::set<std::string>& services() { return services_; }
  const std::set<std::string>& services() const { return services_; }
  void set_quic(std::unique_ptr<io::QuicPeer> q) { quic_ = std::move(q); }
  io::QuicPeer& quic() { return *quic_; }
  const io::QuicPeer& quic() const { return *quic_; }
  bool established() const { return quic_ && quic_->conn().handshake_completed(); }
  size_t open_streams() const { return splices_.size(); }
  size_t waiting_connections() const { return waiting_.size(); }
  uint64_t streams_rejected() const { return streams_rejected_; }

  // A local TCP connection for `service`: it gets a stream as soon as one can be opened.
  void add_connection(const std::string& service, tcp::socket socket);
  // Before the handshake completes, datagrams wait (a bounded number) and go out right after.
  void send_datagram(std::span<const uint8_t> datagram);

  // quic::ConnectionEvents
  void on_handshake_completed() override;
  void on_streams_available() override;
  void on_stream_data(int64_t stream_id, std::span<const uint8_t> data, bool fin) override;
  void on_stream_reset(int64_t stream_id, uint64_t app_error) override;
  void on_stream_closed(int64_t stream_id) override;
  void on_stream_writable(int64_t stream_id) override;
  void on_datagram(std::span<const uint8_t> data) override;

private:
  void open_waiting_streams();

  uint64_t id_;
  std::string connector_;
  std::set<std::string> services_;
  DatagramHandler on_datagram_;
  std::unique_ptr<io::QuicPeer> quic_;
  std::deque<std::pair<std::string, tcp::socket>> waiting_;
  std::deque<std::vector<uint8_t>> early_datagrams_;
  std::map<int64_t, std::unique_ptr<io::TcpSplice>> splices_;
  uint64_t streams_rejected_ = 0;
};

} // namespace ztna
