// One end-to-end session from the agent to a connector for one service (DESIGN D2, D6): the QUIC
// client side. Its first stream carries the intermediate's authorization to the connector; then
// one stream per local TCP connection, and the datagrams of the UDP flows.
#pragma once

#include "io/path_layer.hpp"
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
  TunnelSession(io::Endpoint& endpoint, io::PathSignaling& signaling, uint64_t id,
                std::string connector, std::string service, std::vector<uint8_t> authorization,
                const Address& intermediate, DatagramHandler on_datagram);
  ~TunnelSession() override;

  uint64_t id() const { return id_; }
  const std::string& connector() const { return connector_; }
  const std::string& service() const { return service_; }
  // Attaches the connection to the path layer, which carries out its migrations.
  void set_quic(std::unique_ptr<io::QuicPeer> q);
  void set_credentials(io::LiveCredentials c) { credentials_ = c; }
  // The path layer (DESIGN D3): routes, moves, and the checks unless the agent runs relay-only.
  io::PathLayer& paths() { return paths_; }
  const io::PathLayer& paths() const { return paths_; }
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
  void open_waiting_streams();

  uint64_t id_;
  std::string connector_;
  std::string service_;
  std::vector<uint8_t> authorization_; // sent on stream 0, then dropped
  DatagramHandler on_datagram_;
  io::PathLayer paths_; // before quic_, which sends through it
  std::unique_ptr<io::QuicPeer> quic_;
  session::Liveness liveness_;
  std::deque<std::pair<std::string, tcp::socket>> waiting_;
  std::deque<std::vector<uint8_t>> early_datagrams_;
  std::map<int64_t, std::unique_ptr<io::TcpSplice>> splices_;
  uint64_t streams_rejected_ = 0;
  io::LiveCredentials credentials_;
};

} // namespace ztna
