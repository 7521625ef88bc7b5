// ztna-connector: publishes services through the intermediate and serves agents' sessions, each
// only after its own checks (the authorization, its allow list: common/session).
#pragma once

#include "auth/authorization.hpp"
#include "backend_session.hpp"
#include "io/control_plane.hpp"
#include "io/endpoint.hpp"
#include "io/nat_check.hpp"
#include "io/refusal_log.hpp"
#include "session/allow_list.hpp"

#include <boost/asio.hpp>
#include <nlohmann/json.hpp>

#include <map>
#include <memory>

namespace ztna {

struct ConnectorOptions {
  Address listen;
  // Registered with every one of them (io::ControlPlane, mode All).
  std::vector<io::IntermediateEndpoint> intermediates;
  quic::TlsFiles tls;
  std::vector<ServiceSpec> services;
  session::AllowList allow;
  std::string authorization_pub; // the intermediate's public key(s), PEM
  size_t sockets_per_session = 256;
};

class Connector : private io::PathSignaling, private io::NatCheck::Listener {
public:
  Connector(boost::asio::io_context& io, ConnectorOptions options);
  void start();
  void shutdown();
  // SIGHUP: certificates, CRL and the authorization keys; sessions of agents the CRL now lists
  // close at once, and so does the control connection if the intermediate's certificate is.
  void reload();
  nlohmann::json status() const;

private:
  void on_control_message(size_t i, const wire::ControlMessage& m);
  void on_offer(size_t via, const wire::SessionOffer& offer);
  BackendSession* session_via(size_t i, uint64_t id);
  void on_relay(const Address& from, std::span<const uint8_t> datagram);
  void start_session(BackendSession& s, std::span<const uint8_t> initial_packet);
  // io::PathSignaling: through the intermediate that relays the session now.
  bool signal(uint64_t session_id, const wire::ControlMessage& m) override;
  std::optional<Address> fallback_relay(uint64_t) override { return std::nullopt; }
  io::PathSignaling& signaling() { return *this; }
  // io::NatCheck::Listener: our sessions signal it from their next round on.
  void on_nat_report(const nat::NatReport& report) override;
  void end_session(uint64_t id, const std::string& why, bool tell_intermediate);
  void on_control_lost(size_t i, const std::string& why);
  void on_control_connected(size_t i);
  void on_stun(const Address& from, std::span<const uint8_t> datagram);
  void update_candidates();
  void sweep();

  boost::asio::io_context& io_;
  ConnectorOptions options_;
  quic::TlsIdentityPtr tls_;
  std::shared_ptr<const auth::AuthorizationVerifier> verifier_;
  io::Endpoint endpoint_;
  std::map<std::string, ServiceSpec, std::less<>> services_;
  io::RefusalLog refusals_;
  io::ControlPlane control_;
  io::NatCheck nat_check_{endpoint_.socket(), this}; // what NAT we are behind (RFC 5780)
  session::ReplayGuard replay_;
  SocketBudget sockets_;
  std::map<uint64_t, std::unique_ptr<BackendSession>> sessions_;
  ConnectorCounters counters_;
  io::StunCounters stun_counters_;
  uint64_t reloads_ = 0, reload_failures_ = 0;
  boost::asio::steady_timer sweep_timer_;
  uint64_t sweeps_ = 0;
};

} // namespace ztna
