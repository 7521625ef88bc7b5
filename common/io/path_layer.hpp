// One session's path layer on the event loop (DESIGN D3, D4), the same for the agent (the QUIC
// client, which nominates and migrates) and the connector (the server, which follows):
//   - path::SessionPaths decides which path ngtcp2 sees a packet on, and where a packet on a
//     path goes: relay framing out, relay frames in, the virtual addresses of direct paths;
//   - ice::PathManager runs the connectivity checks; this class sends its STUN datagrams, arms
//     its timer, carries its signaling through the daemon and logs every path change with why;
//   - the migrations the manager asks for are carried out on the session's QUIC connection.
#pragma once

#include "ice/path_manager.hpp"
#include "io/endpoint.hpp"
#include "io/quic_peer.hpp"
#include "path/session_paths.hpp"

#include <boost/asio.hpp>

#include <memory>
#include <optional>
#include <span>
#include <vector>

namespace ztna::io {

// What a session's path layer needs from its daemon.
class PathSignaling {
public:
  virtual ~PathSignaling() = default;
  // To the intermediate that carries the session, which forwards it to the other end.
  virtual bool signal(uint64_t session_id, const wire::ControlMessage& m) = 0;
  // Controlling side: the intermediate a fallback onto the relay goes through (the agent's home),
  // or nullopt to stay with the session's relay.
  virtual std::optional<Address> fallback_relay(uint64_t session_id) = 0;
};

struct PathLayerCounters {
  uint64_t unroutable = 0; // packets on a path the session never made: not sent
};

class PathLayer : private ice::PathEvents {
public:
  PathLayer(Endpoint& endpoint, uint64_t session_id, path::Role role, const Address& intermediate,
            PathSignaling& signaling);
  ~PathLayer() override;
  PathLayer(const PathLayer&) = delete;
  PathLayer& operator=(const PathLayer&) = delete;

  uint64_t session_id() const { return session_id_; }
  const path::SessionPaths& paths() const { return paths_; }
  const PathLayerCounters& counters() const { return counters_; }

  // --- the session's QUIC connection ---
  // How its packets leave: along the route of their path, framed for the relay or not.
  QuicPeer::Transmit transmit();
  // How the path a packet arrived on becomes the path ngtcp2 knows it by.
  QuicPeer::PathMapper inbound();
  // The connection whose migrations we carry out. Must outlive nothing: QuicPeer is destroyed
  // before this layer (the session declares it after us).
  void attach(QuicPeer& quic) { quic_ = &quic; }
  // The payload of a relay frame for this session, from intermediate `from`.
  void receive_relayed(const Address& from, std::span<const uint8_t> packet);
  // Called from inside ngtcp2's callbacks: handled on the next loop turn.
  void on_handshake_confirmed();
  void on_path_validated(const quic::Path& path, bool success);

  // --- connectivity checks (not on a relay-only agent) ---
  void start_checks(ice::PathManagerConfig config, std::vector<ice::Candidate> locals);
  const ice::PathManager* manager() const { return manager_.get(); }
  void set_local_candidates(std::vector<ice::Candidate> candidates);
  // What our NAT does (nat::to_wire), signalled with our next candidates.
  void set_local_nat(uint8_t nat) {
    if (manager_) manager_->set_local_nat(nat);
  }
  void on_candidates(const wire::Candidates& m);
  void on_start_checks(uint32_t generation);
  ice::PathManager::StunResult on_stun(const Address& from, std::span<const uint8_t> datagram,
                                       const wire::StunMessage& m);

  // --- moves ---
  // Client: onto the relay through `intermediate`, at once (a new relay path).
  void move_to_relay(const Address& intermediate);
  // Server: the session is relayed by another intermediate from now on.
  void follow_relay(const Address& intermediate) { paths_.next_relay_path(intermediate); }
  // Smoothed RTT last measured on the relay path (ms), kept across upgrades for status.
  double relay_rtt_ms() const;

private:
  // ice::PathEvents
  void send_stun(const Address& to, std::span<const uint8_t> datagram) override;
  void send_candidates(const wire::Candidates& m) override;
  void use_direct(const Address& remote, const std::string& why) override;
  void use_relay(const std::string& why) override;
  void note(const std::string& line) override;

  void move_to_direct(const Address& remote);
  // The daemon's choice (the agent's home), else the session's relay.
  Address fallback_relay();
  void defer(std::function<void()> f);
  void arm();

  Endpoint& endpoint_;
  uint64_t session_id_;
  PathSignaling& signaling_;
  path::SessionPaths paths_;
  QuicPeer* quic_ = nullptr;
  std::unique_ptr<ice::PathManager> manager_;
  boost::asio::steady_timer timer_;
  ice::Timestamp armed_for_ = ice::kNever;
  double relay_rtt_ms_ = 0;
  bool immediate_ = false; // moves onto direct paths do not wait for validation
  PathLayerCounters counters_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

// Our candidates on `socket` (RFC 8445 §5.1.1): a host candidate per usable interface address
// of the socket's family (both for a dual-stack [::] socket, just the bound one otherwise), and
// the server-reflexive address the intermediate observed (none if `reflexive` is empty). Never
// an address the peer's filter refuses (ice::may_probe): a socket on loopback has no candidate.
std::vector<ice::Candidate> gather_candidates(const UdpSocket& socket, const Address& reflexive);

// Hands a STUN datagram to the session it belongs to: a request by the ufrag in its USERNAME
// (RFC 8445 §7.3), a response by its transaction ID.
// Counts what it could not hand over, for the daemon's status.
struct StunCounters {
  uint64_t malformed = 0;       // does not parse
  uint64_t unauthenticated = 0; // bad or missing USERNAME, bad MESSAGE-INTEGRITY: dropped
  uint64_t unmatched = 0;       // for no session of ours (e.g. one that has ended)
};
void dispatch_stun(const Address& from, std::span<const uint8_t> datagram,
                   const std::vector<PathLayer*>& layers, StunCounters& counters);

} // namespace ztna::io
