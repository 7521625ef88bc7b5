// ztna-intermediate: authenticates peers, tells them their observed address, brokers
// sessions between agents and connectors, and relays their end-to-end encrypted packets.
#pragma once

#include "control/check_coordinator.hpp"
#include "control/control_stream.hpp"
#include "control/service_directory.hpp"
#include "io/endpoint.hpp"
#include "io/quic_peer.hpp"
#include "quic/tls_identity.hpp"
#include "relay/relay_table.hpp"

#include <boost/asio.hpp>
#include <nlohmann/json.hpp>

#include <chrono>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <unordered_map>

namespace ztna {

struct IntermediateOptions {
  Address listen;
  quic::TlsFiles tls;
  std::chrono::seconds idle_timeout{30};
  size_t max_peers = 10000;
};

struct IntermediateCounters {
  uint64_t tls_handshake_failures = 0;
  uint64_t control_messages_malformed = 0;
  uint64_t control_messages_unexpected = 0;
  uint64_t sessions_opened = 0;
  uint64_t sessions_rejected = 0;
  uint64_t relay_frames_forwarded = 0;
  uint64_t relay_bytes_forwarded = 0;
  uint64_t relay_frames_unauthorized = 0;
  uint64_t peers_refused = 0;
  uint64_t peers_replaced = 0;
  uint64_t candidates_forwarded = 0;
  uint64_t candidates_unauthorized = 0; // Candidates for a session the sender is not an end of
  uint64_t check_rounds_started = 0;
};

class Intermediate {
public:
  Intermediate(boost::asio::io_context& io, IntermediateOptions options);
  ~Intermediate();
  void start();
  // Sends CONNECTION_CLOSE on every connection, then stops the endpoint.
  void shutdown();
  nlohmann::json status() const;

private:
  struct Peer;
  struct Session {
    uint64_t id = 0;
    uint64_t agent = 0; // peer ids
    uint64_t connector = 0;
    std::set<std::string> services;
    std::vector<uint32_t> waiting_requests; // agent requests answered once the connector accepts
    bool accepted = false;
    std::chrono::steady_clock::time_point offered_at;
    uint64_t relayed_bytes = 0;
  };

  void accept(const Address& from, std::span<const uint8_t> packet, const ngtcp2_pkt_hd& hd);
  void on_relay(const Address& from, std::span<const uint8_t> datagram);
  void on_message(Peer& peer, const wire::ControlMessage& m);
  void on_hello(Peer& peer, const wire::Hello& m);
  void on_open_session(Peer& agent, const wire::OpenSession& m);
  void on_session_accept(Peer& connector, const wire::SessionAccept& m);
  void on_session_closed(Peer& peer, const wire::SessionClosed& m);
  void on_candidates(Peer& peer, const wire::Candidates& m);
  void on_address_change(Peer& peer, const Address& now_seen);
  void on_peer_gone(uint64_t peer_id, const std::string& why);
  void end_session(uint64_t session_id, wire::ErrorCode code, uint64_t notify_not);
  void sweep();
  Peer* find_peer(uint64_t id);
  uint64_t random_u64();

  boost::asio::io_context& io_;
  IntermediateOptions options_;
  quic::TlsIdentity tls_;
  io::Endpoint endpoint_;
  std::map<uint64_t, std::unique_ptr<Peer>> peers_;
  std::unordered_map<uint64_t, Session> sessions_;
  RelayTable relay_;
  CheckCoordinator checks_;
  ServiceDirectory directory_;
  IntermediateCounters counters_;
  boost::asio::steady_timer sweep_timer_;
  std::mt19937_64 rng_{std::random_device{}()};
  uint64_t next_peer_id_ = 1;
  bool stopping_ = false;
};

} // namespace ztna
