// One end-to-end session on the connector: the QUIC server side of an agent's session, whose
// streams and datagrams it connects to the backends of the published services.
#pragma once

#include "control/service_spec.hpp"
#include "io/path_driver.hpp"
#include "io/quic_peer.hpp"
#include "io/tcp_splice.hpp"
#include "wire/stream_header.hpp"

#include <boost/asio.hpp>

#include <chrono>
#include <map>
#include <memory>
#include <string>

namespace ztna {

struct ConnectorCounters {
  uint64_t unknown_service = 0;
  uint64_t backend_connect_failures = 0;
  uint64_t streams_malformed = 0;
  uint64_t streams_opened = 0;
  uint64_t udp_flows_opened = 0;
  uint64_t datagrams_malformed = 0;
  uint64_t datagrams_dropped = 0;
  uint64_t sessions_wrong_agent = 0;
  uint64_t relay_frames_unexpected = 0;
};

class BackendSession : public quic::ConnectionEvents {
public:
  using Services = std::map<std::string, ServiceSpec>;

  BackendSession(boost::asio::io_context& io, uint64_t id, std::string agent,
                 const Services& services, ConnectorCounters& counters);
  ~BackendSession() override;

  uint64_t id() const { return id_; }
  const std::string& agent() const { return agent_; }
  io::QuicPeer* quic() { return quic_.get(); }
  void set_quic(std::unique_ptr<io::QuicPeer> q) { quic_ = std::move(q); }
  // The path layer, controlled side: answers and runs checks; the agent moves the session.
  void set_paths(std::unique_ptr<io::PathDriver> p) { paths_ = std::move(p); }
  io::PathDriver* paths() { return paths_.get(); }
  std::chrono::steady_clock::time_point created() const { return created_; }
  size_t open_streams() const { return splices_.size(); }
  size_t udp_flows() const { return flows_.size(); }
  // Drops UDP flows idle for longer than `idle`.
  void expire_flows(std::chrono::steady_clock::time_point now, std::chrono::seconds idle);

  // quic::ConnectionEvents
  void on_handshake_completed() override;
  void on_stream_open(int64_t stream_id) override;
  void on_stream_data(int64_t stream_id, std::span<const uint8_t> data, bool fin) override;
  void on_stream_reset(int64_t stream_id, uint64_t app_error) override;
  void on_stream_closed(int64_t stream_id) override;
  void on_stream_writable(int64_t stream_id) override;
  void on_datagram(std::span<const uint8_t> data) override;

private:
  struct PendingStream {
    wire::StreamHeaderDecoder header;
    std::vector<uint8_t> early; // bytes after the header, before the backend answered
    bool fin = false;
  };
  struct UdpFlow {
    std::unique_ptr<boost::asio::ip::udp::socket> socket;
    std::string service;
    std::chrono::steady_clock::time_point last_used;
    std::vector<uint8_t> buf;
  };

  void on_header(int64_t stream_id, PendingStream& p);
  void connect_backend(int64_t stream_id, const ServiceSpec& spec);
  void reject_stream(int64_t stream_id, wire::StreamError why);
  void receive_udp(uint32_t flow_id);

  boost::asio::io_context& io_;
  uint64_t id_;
  std::string agent_;
  const Services& services_;
  ConnectorCounters& counters_;
  std::chrono::steady_clock::time_point created_ = std::chrono::steady_clock::now();
  std::unique_ptr<io::PathDriver> paths_;
  std::unique_ptr<io::QuicPeer> quic_;
  std::map<int64_t, PendingStream> pending_;
  std::map<int64_t, std::unique_ptr<io::TcpSplice>> splices_;
  std::map<uint32_t, UdpFlow> flows_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

} // namespace ztna
