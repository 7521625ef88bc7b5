// Runs one session's ice::PathManager on the event loop (DESIGN D3, D4): its timer, its STUN
// datagrams out of the daemon's one socket, its signaling through the control connection, and
// one log line for every path change, saying why.
#pragma once

#include "ice/path_manager.hpp"
#include "io/random.hpp"
#include "io/udp_socket.hpp"

#include <boost/asio.hpp>
#include <nlohmann/json.hpp>

#include <functional>
#include <memory>
#include <optional>
#include <string>

namespace ztna::io {

class PathDriver : private ice::PathEvents {
public:
  struct Hooks {
    std::function<bool(const wire::ControlMessage&)> signal; // to the intermediate
    // Controlling side (agent) only.
    std::function<void(const Address& remote)> use_direct;
    std::function<void()> use_relay;
  };

  PathDriver(boost::asio::io_context& io, UdpSocket& socket, ice::PathManagerConfig config,
             Hooks hooks);
  ~PathDriver() override;
  PathDriver(const PathDriver&) = delete;
  PathDriver& operator=(const PathDriver&) = delete;

  const ice::PathManager& manager() const { return manager_; }

  // Each forwards to the PathManager with the current time, then re-arms the timer.
  void set_local_candidates(std::vector<ice::Candidate> candidates);
  void on_candidates(const wire::Candidates& m);
  void on_start_checks(uint32_t generation);
  ice::PathManager::StunResult on_stun(const Address& from, std::span<const uint8_t> datagram,
                                       const wire::StunMessage& m);
  void on_handshake_confirmed();
  void on_path_validated(bool direct, bool success);

private:
  // ice::PathEvents
  void send_stun(const Address& to, std::span<const uint8_t> datagram) override;
  void send_candidates(const wire::Candidates& m) override;
  void use_direct(const Address& remote, const std::string& why) override;
  void use_relay(const std::string& why) override;
  void note(const std::string& line) override;

  void arm();

  uint64_t session_id_;
  UdpSocket& socket_;
  Hooks hooks_;
  ice::PathManager manager_;
  boost::asio::steady_timer timer_;
  ice::Timestamp armed_for_ = ice::kNever;
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
                   const std::vector<PathDriver*>& drivers, StunCounters& counters);

// The path section of a session's status: phase, candidates and pairs with their states, the
// selected pair, direct RTT, time to direct, upgrades and fallbacks; the peer's candidates that
// the address filter refused (in all and by reason), checks held back by the budget or the
// round cap, rounds deferred by the rate limit, and the check budget.
nlohmann::json path_status(const ice::PathManager& m);

} // namespace ztna::io
