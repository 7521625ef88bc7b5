// ztna-connector: publishes services through the intermediate and serves agents' sessions.
#pragma once

#include "backend_session.hpp"
#include "io/control_client.hpp"
#include "io/endpoint.hpp"

#include <boost/asio.hpp>
#include <nlohmann/json.hpp>

#include <map>
#include <memory>

namespace ztna {

struct ConnectorOptions {
  Address listen;
  Address intermediate;
  std::string intermediate_name;
  quic::TlsFiles tls;
  std::vector<ServiceSpec> services;
};

class Connector {
public:
  Connector(boost::asio::io_context& io, ConnectorOptions options);
  void start();
  void shutdown();
  nlohmann::json status() const;

private:
  void on_control_message(const wire::ControlMessage& m);
  void on_relay(const Address& from, std::span<const uint8_t> datagram);
  void start_session(BackendSession& s, std::span<const uint8_t> initial_packet);
  void end_session(uint64_t id, const std::string& why, bool tell_intermediate);
  void end_all_sessions(const std::string& why);
  void on_stun(const Address& from, std::span<const uint8_t> datagram);
  void update_candidates();
  void sweep();

  boost::asio::io_context& io_;
  ConnectorOptions options_;
  quic::TlsIdentity tls_;
  io::Endpoint endpoint_;
  BackendSession::Services services_;
  io::ControlClient control_;
  std::map<uint64_t, std::unique_ptr<BackendSession>> sessions_;
  ConnectorCounters counters_;
  io::StunCounters stun_counters_;
  boost::asio::steady_timer sweep_timer_;
  uint64_t sweeps_ = 0;
};

} // namespace ztna
