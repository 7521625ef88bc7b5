// One end-to-end session from the agent to a connector for one service (DESIGN D2, D6): the QUIC
// client side. Its first stream carries the intermediate's authorization to the connector; then
// one stream per local TCP connection, and the datagrams of the UDP flows.
#pragma once

#include "io/path_driver.hpp"
#include "io/quic_peer.hpp"
#include "io/refusal_log.hpp"
#include "io/tcp_splice.hpp"
#include "session/liveness.hpp"

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

  // The session starts on the relay through `intermediate`.
  TunnelSession(uint64_t id, std::string connector, std::string service,
                std::vector<uint8_t> authorization, const Address& intermediate,
                DatagramHandler on_datagram);
  ~TunnelSession() override;

  uint64_t id() const { return id_; }
  const std::string& connector() const { return connector_; }
  const std::string& service() const { return service_; }
  void set_quic(std::unique_ptr<io::QuicPeer> q) { quic_ = std::move(q); }
  void set_credentials(io::LiveCredentials c) { credentials_ = c; }
  // The path layer (DESIGN D3); null when the agent runs relay-only.
  void set_paths(std::unique_ptr<io::PathDriver> p) { paths_ = std::move(p); }
  io::PathDriver* paths() { return paths_.get(); }
  const io::PathDriver* paths() const { return paths_.get(); }

  // Migrations the path layer asks for (RFC 9000 §9). A direct path gets a virtual local
  // address of its own so that ngtcp2 sees a new path. Each move onto the relay opens a new relay
  // path (the next relay_local_address()), validated: so does a relay that came back after the
  // control plane was lost (DESIGN D10), and the flow restarts at once.
  void move_to_direct(const Address& remote);
  void move_to_relay(const Address& intermediate);
  // The relay path the session uses (or falls back to).
  const quic::Path& relay_path() const { return relay_path_; }
  // The path ngtcp2 knows a packet by: direct packets arrive on the real socket.
  quic::Path map_inbound(const quic::Path& arrived) const;
  // Smoothed RTT last measured on the relay path (ms), kept across upgrades for status.
  double relay_rtt_ms() const;
  io::QuicPeer& quic() { return *quic_; }
  const io::QuicPeer& quic() const { return *quic_; }
  bool established() const { return quic_ && quic_->conn().handshake_completed(); }
  size_t open_streams() const { return splices_.size(); }
  // Streams open or waiting for one: the session must notice a dead peer at once.
  bool busy() const { return !splices_.empty() || !waiting_.empty(); }
  session::Liveness& liveness() { return liveness_; }
  const session::Liveness& liveness() const { return liveness_; }
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
  void on_handshake_confirmed() override;
  void on_path_validated(const quic::Path& path, bool success) override;

private:
  // Runs `f` from the event loop: ngtcp2 callbacks must not re-enter the connection.
  void defer(std::function<void()> f);
  void open_waiting_streams();

  uint64_t id_;
  std::string connector_;
  std::string service_;
  std::vector<uint8_t> authorization_; // sent on stream 0, then dropped
  DatagramHandler on_datagram_;
  std::unique_ptr<io::QuicPeer> quic_;
  std::unique_ptr<io::PathDriver> paths_;
  quic::Path relay_path_;
  uint16_t relay_generation_ = 1;
  session::Liveness liveness_;
  std::map<std::string, Address> direct_locals_; // remote -> our virtual local address for it
  uint16_t next_direct_port_ = 1;
  quic::Path last_direct_; // the direct path most recently migrated to
  bool on_direct_ = false;  // last_direct_ is validated and current
  double relay_rtt_ms_ = 0;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
  std::deque<std::pair<std::string, tcp::socket>> waiting_;
  std::deque<std::vector<uint8_t>> early_datagrams_;
  std::map<int64_t, std::unique_ptr<io::TcpSplice>> splices_;
  uint64_t streams_rejected_ = 0;
  io::LiveCredentials credentials_;
};

} // namespace ztna
