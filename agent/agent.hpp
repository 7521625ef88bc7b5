// ztna-agent: exposes the services the user may reach as local listeners and carries their
// traffic over end-to-end sessions with the connectors that serve them.
#pragma once

#include "io/control_plane.hpp"
#include "io/endpoint.hpp"
#include "io/nat_check.hpp"
#include "io/refusal_log.hpp"
#include "io/status_server.hpp"
#include "local_listener.hpp"
#include "tunnel_session.hpp"

#include <boost/asio.hpp>
#include <nlohmann/json.hpp>

#include <chrono>
#include <map>
#include <memory>
#include <set>

namespace ztna {

struct AgentOptions {
  Address listen;
  std::vector<io::IntermediateEndpoint> intermediates; // one home at a time (io::ControlPlane)
  quic::TlsFiles tls;
  std::vector<ServiceSpec> exposes;
  // Never look for direct paths: every session stays on the relay (DESIGN D3 fallback only).
  bool relay_only = false;
};

struct AgentCounters {
  uint64_t sessions_rejected = 0;
  uint64_t sessions_opened = 0;
  uint64_t connections_refused_offline = 0;
  uint64_t connections_timed_out = 0;
  uint64_t udp_datagrams_dropped = 0;
  uint64_t udp_datagrams_too_large = 0; // larger than one DATAGRAM frame can carry
  uint64_t datagrams_malformed = 0;
};

class Agent : private io::PathSignaling, private io::NatCheck::Listener {
public:
  Agent(boost::asio::io_context& io, AgentOptions options);
  void start();
  void shutdown();
  // SIGHUP: certificates and CRL; sessions with connectors the CRL now lists close at once, and
  // so does the control connection if the intermediate's certificate is listed.
  void reload();
  nlohmann::json status() const;
  // Requests on the status socket other than "status": "ping SERVICE".
  void request(const std::string& line, io::StatusServer::Reply reply);

private:
  using tcp = boost::asio::ip::tcp;
  // A session asked of the intermediate and not answered yet.
  struct Request {
    uint32_t id = 0;
    std::chrono::steady_clock::time_point sent;
    std::vector<tcp::socket> connections;
    std::vector<std::pair<uint32_t, std::vector<uint8_t>>> datagrams; // flow id, payload
    std::optional<wire::Candidates> offer; // round 1 of the session's checks, sent with it
  };
  struct UdpFlow {
    LocalListener* listener;
    Address client;
    std::chrono::steady_clock::time_point last_used;
  };

  void on_tcp(LocalListener& l, tcp::socket s);
  // The largest UDP payload the tunnel carries for `service`: one DATAGRAM frame's worth.
  static size_t max_udp_payload(const std::string& service);
  void on_udp(LocalListener& l, const Address& from, std::span<const uint8_t> payload);
  void on_udp_reply(std::span<const uint8_t> datagram);
  struct Ping {
    std::string service;
    io::StatusServer::Reply reply;
    std::chrono::steady_clock::time_point started, sent;
    bool in_flight = false;
    std::unique_ptr<boost::asio::steady_timer> timer;
  };
  void ping(uint64_t ping_id);
  void on_pong(uint64_t session_id, uint64_t ping_id);
  TunnelSession* session_for(const std::string& service);
  Request* request_session(const std::string& service);
  void on_control_message(size_t i, const wire::ControlMessage& m);
  void on_session_ready(size_t via, const wire::SessionReady& m);
  bool send_home(const wire::ControlMessage& m);
  void on_session_reject(const wire::SessionReject& m);
  void on_stun(const Address& from, std::span<const uint8_t> datagram);
  void start_paths(TunnelSession& s, std::optional<wire::Candidates> offer);
  // Our candidates and credentials for round 1 of a session we ask for (none if relay-only).
  std::optional<wire::Candidates> make_offer() const;
  // io::PathSignaling: through the home, whichever intermediate offered the session.
  bool signal(uint64_t session_id, const wire::ControlMessage& m) override;
  std::optional<Address> fallback_relay(uint64_t session_id) override;
  io::PathSignaling& signaling() { return *this; }
  // io::NatCheck::Listener: our sessions signal it from their next round on.
  void on_nat_report(const nat::NatReport& report) override;
  void update_candidates();
  TunnelSession& create_session(size_t via, const wire::SessionReady& m, const std::string& service,
                                std::optional<wire::Candidates> offer);
  void end_session(uint64_t id, const std::string& why, bool tell_intermediate);
  void on_control_lost(const std::string& why);
  void on_control_connected(size_t i);
  void on_session_resumed(size_t i, const wire::SessionResumed& m);
  void sweep();

  boost::asio::io_context& io_;
  AgentOptions options_;
  quic::TlsIdentityPtr tls_;
  io::Endpoint endpoint_;
  io::RefusalLog refusals_;
  uint64_t reloads_ = 0, reload_failures_ = 0;
  io::ControlPlane control_;
  io::NatCheck nat_check_{endpoint_.socket(), this}; // what NAT we are behind (RFC 5780)
  std::vector<std::unique_ptr<LocalListener>> listeners_;
  std::map<uint64_t, std::unique_ptr<TunnelSession>> sessions_;
  std::map<std::string, uint64_t> session_of_service_;
  std::map<std::string, Request> requests_; // by service
  std::map<uint32_t, UdpFlow> flows_;
  std::map<uint64_t, Ping> pings_;
  io::StunCounters stun_counters_;
  uint64_t next_ping_id_ = 1;
  uint64_t sweeps_ = 0;
  std::map<std::pair<LocalListener*, std::string>, uint32_t> flow_of_client_;
  uint32_t next_request_id_ = 1;
  uint32_t next_flow_id_ = 1;
  AgentCounters counters_;
  std::set<std::string> oversize_reported_; // services whose oversized datagrams were logged
  boost::asio::steady_timer sweep_timer_;
};

} // namespace ztna
