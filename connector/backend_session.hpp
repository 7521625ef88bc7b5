// One end-to-end session on the connector: the QUIC server side of an agent's session. What may
// pass is decided by its SessionGate (common/session: the authorization, the allow list, one
// service per session); this class carries out the gate's actions with sockets: TCP streams
// spliced to backends, UDP flows to connected UDP sockets.
#pragma once

#include "control/service_spec.hpp"
#include "io/path_layer.hpp"
#include "io/quic_peer.hpp"
#include "io/refusal_log.hpp"
#include "io/tcp_splice.hpp"
#include "session/liveness.hpp"
#include "session/session_gate.hpp"

#include <boost/asio.hpp>

#include <chrono>
#include <deque>
#include <map>
#include <memory>
#include <string>

namespace ztna {

struct ConnectorCounters {
  uint64_t backend_connect_failures = 0;
  uint64_t streams_opened = 0;
  uint64_t udp_flows_opened = 0;
  uint64_t datagrams_dropped = 0;
  uint64_t relay_frames_unexpected = 0;
  uint64_t offers_refused = 0;          // allow list or unknown service, before any handshake
  uint64_t backend_sockets_refused = 0; // over the per-session or process budget
  uint64_t authorizations_missing = 0;  // no valid authorization in time after the offer
  session::GateCounters gate;
};

// Backend sockets (TCP and UDP) the connector may hold: per session and for the process, so
// that no agent can exhaust the connector's file descriptors (LimitNOFILE in the unit).
struct SocketBudget {
  size_t per_session = 256;
  size_t total = 0; // set from RLIMIT_NOFILE at start-up
  size_t in_use = 0;
};

class BackendSession : public quic::ConnectionEvents {
public:
  // The session is relayed through `intermediate` until the agent moves it.
  BackendSession(io::Endpoint& endpoint, io::PathSignaling& signaling, const Address& intermediate,
                 session::GateConfig gate, SocketBudget& budget, ConnectorCounters& counters);
  ~BackendSession() override;

  uint64_t id() const { return gate_.config().session_id; }
  const std::string& agent() const { return gate_.config().agent; }
  const std::string& service() const { return gate_.config().service; }
  bool authorized() const { return gate_.authorized(); }
  io::QuicPeer* quic() { return quic_.get(); }
  // Attaches the connection to the path layer, which routes its packets.
  void set_quic(std::unique_ptr<io::QuicPeer> q);
  void set_credentials(io::LiveCredentials c) { credentials_ = c; }
  // The path layer, controlled side: answers and runs checks; the agent moves the session.
  io::PathLayer& paths() { return paths_; }
  const io::PathLayer& paths() const { return paths_; }
  std::chrono::steady_clock::time_point created() const { return created_; }
  size_t open_streams() const { return splices_.size(); }
  bool busy() const { return !splices_.empty(); }
  // Which of our intermediates offered (or last resumed) the session: it relays and signals it.
  size_t via() const { return via_; }
  void set_via(size_t i) { via_ = i; }
  // Whether the agent is still there (DESIGN D10); fed by the connector's sweep.
  session::Liveness& liveness() { return liveness_; }
  const session::Liveness& liveness() const { return liveness_; }
  size_t udp_flows() const { return flows_.size(); }
  // Drops UDP flows idle for longer than `idle`.
  void expire_flows(std::chrono::steady_clock::time_point now, std::chrono::seconds idle);

  // quic::ConnectionEvents
  void on_handshake_completed() override;
  void on_stream_data(int64_t stream_id, std::span<const uint8_t> data, bool fin) override;
  void on_stream_reset(int64_t stream_id, uint64_t app_error) override;
  void on_stream_closed(int64_t stream_id) override;
  void on_stream_writable(int64_t stream_id) override;
  void on_datagram(std::span<const uint8_t> data) override;

private:
  struct UdpFlow {
    std::unique_ptr<boost::asio::ip::udp::socket> socket;
    const ServiceSpec* spec = nullptr;
    std::chrono::steady_clock::time_point last_used;
    std::vector<uint8_t> buf;
    std::deque<std::vector<uint8_t>> waiting; // while the backend's name resolves
    bool ready = false;
  };

  void run_gate();
  void connect_backend(int64_t stream_id, const ServiceSpec& spec);
  void reject_stream(int64_t stream_id, wire::StreamError why, const std::string& log_line);
  void deliver_udp(uint32_t flow_id, const ServiceSpec& spec, std::vector<uint8_t> payload);
  void open_udp(uint32_t flow_id, const boost::asio::ip::udp::endpoint& target);
  void receive_udp(uint32_t flow_id);
  bool take_socket();
  void give_socket();

  boost::asio::io_context& io_;
  session::SessionGate gate_;
  SocketBudget& budget_;
  size_t sockets_ = 0; // backend sockets this session holds (or is connecting)
  ConnectorCounters& counters_;
  std::chrono::steady_clock::time_point created_ = std::chrono::steady_clock::now();
  session::Liveness liveness_;
  size_t via_ = 0;
  io::PathLayer paths_; // before quic_, which sends through it
  std::unique_ptr<io::QuicPeer> quic_;
  std::map<int64_t, std::unique_ptr<io::TcpSplice>> splices_;
  std::map<uint32_t, UdpFlow> flows_;
  bool wrong_service_logged_ = false;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
  io::LiveCredentials credentials_;
};

} // namespace ztna
