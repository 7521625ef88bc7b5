// ztna-intermediate: authenticates peers, tells them their observed address, brokers sessions
// between agents and connectors under the access policy, and relays their end-to-end encrypted
// packets. The decisions are the SessionBroker's (common/broker); this is its I/O shell: the
// socket, the QUIC control connections, the admission of new handshakes, timers and reloads.
#pragma once

#include "auth/authorization.hpp"
#include "broker/session_broker.hpp"
#include "control/control_stream.hpp"
#include "io/endpoint.hpp"
#include "io/etcd_client.hpp"
#include "io/quic_peer.hpp"
#include "io/refusal_log.hpp"
#include "quic/handshake_gate.hpp"
#include "quic/retry.hpp"
#include "quic/tls_identity.hpp"
#include "store/shared_state.hpp"
#include "stun_service.hpp"

#include <boost/asio.hpp>
#include <nlohmann/json.hpp>

#include <chrono>
#include <map>
#include <memory>

namespace ztna {

struct IntermediateOptions {
  Address listen;
  quic::TlsFiles tls;
  std::string policy_file;
  std::string authorization_key;
  std::chrono::seconds idle_timeout{30};
  size_t max_peers = 10000; // registered or authenticated control connections
  quic::HandshakeGate::Config handshakes;
  broker::BrokerConfig broker; // name, signer and random are filled in by the daemon
  // Several intermediates (DESIGN D11): etcd's endpoints; none for a lone intermediate.
  std::vector<io::EtcdClient::Endpoint> etcd;
  std::string etcd_prefix = "ztna/v1/";
  std::string etcd_node; // this intermediate's name in etcd (intermediates may share a certificate)
  std::chrono::seconds etcd_lease_ttl{5};
  StunOptions stun; // plain STUN Binding and RFC 5780 (docs/protocol.md §12)
};

class Intermediate : private store::SharedState::Listener, private store::RecordSigner {
public:
  Intermediate(boost::asio::io_context& io, IntermediateOptions options);
  ~Intermediate();
  void start();
  // Sends CONNECTION_CLOSE on every connection, then stops the endpoint.
  void shutdown();
  // SIGHUP: certificates, CRL, policy and authorization key. What fails to load keeps the old
  // one in force; the live connections of revoked identities close, and so do the sessions the
  // new policy no longer allows.
  void reload();
  nlohmann::json status() const;

private:
  struct Peer;

  // From the other intermediates, through etcd: a newer policy record, or none yet.
  void on_shared_policy(const store::PolicyRecord& record) override;
  void on_shared_policy_absent() override;
  // Policy records are signed with the authorization key every intermediate holds.
  std::vector<uint8_t> sign(std::string_view record) const override;
  bool verify(std::string_view record, std::span<const uint8_t> signature) const override;
  // Live control connections of identities the CRL in force lists end at once.
  void close_revoked_peers(const char* why);

  void accept(const Address& from, std::span<const uint8_t> packet, const ngtcp2_pkt_hd& hd);
  void on_relay(const Address& from, std::span<const uint8_t> datagram);
  void on_authenticated(Peer& peer);
  void on_peer_gone(uint64_t peer_id, const std::string& why);
  void run_actions();
  void sweep();
  Peer* find_peer(uint64_t id);
  broker::Now now() const;

  boost::asio::io_context& io_;
  IntermediateOptions options_;
  quic::TlsIdentityPtr tls_;
  std::unique_ptr<auth::AuthorizationSigner> signer_;
  io::Endpoint endpoint_;
  StunService stun_; // answers STUN on endpoint_'s socket and its own STUN-only ones
  quic::HandshakeGate gate_;
  quic::RetrySecret retry_secret_{};
  std::map<uint64_t, std::unique_ptr<Peer>> peers_;
  size_t authenticated_ = 0;
  std::unique_ptr<broker::SessionBroker> broker_;
  std::unique_ptr<store::SharedState> shared_; // after broker_: it may call back into it
  int64_t shared_policy_revision_ = 0;         // the record in force; 0: our own files
  std::string shared_policy_origin_;
  uint64_t shared_policy_refused_ = 0; // records that did not parse or whose CRL did not load
  io::RefusalLog refusals_;
  uint64_t control_messages_malformed_ = 0;
  uint64_t peers_refused_ = 0;     // over max_peers, or revoked on reload
  uint64_t peers_not_reading_ = 0; // control stream backlog over its cap
  uint64_t reloads_ = 0, reload_failures_ = 0;
  boost::asio::steady_timer sweep_timer_;
  uint64_t next_peer_id_ = 1;
  bool stopping_ = false;
};

} // namespace ztna
