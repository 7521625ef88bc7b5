// Runs nat::NatDiscovery on the event loop (RFC 5780 behaviour discovery): its requests leave
// from the given socket (the daemon's one socket, so that the NAT measured is the one peers
// punch through, or netcheck's own), its timer, and the answers the daemon's STUN dispatch hands
// over first.
#pragma once

#include "io/control_plane.hpp"
#include "io/udp_socket.hpp"
#include "nat/nat_discovery.hpp"

#include <boost/asio.hpp>
#include <nlohmann/json.hpp>

#include <memory>
#include <optional>

namespace ztna::io {

class NatCheck {
public:
  // Told once per finished discovery.
  class Listener {
  public:
    virtual ~Listener() = default;
    virtual void on_nat_report(const nat::NatReport& report) = 0;
  };

  // Logs every report (one line); `listener` (optional) hears of it too.
  explicit NatCheck(UdpSocket& socket, Listener* listener = nullptr);
  ~NatCheck();
  NatCheck(const NatCheck&) = delete;
  NatCheck& operator=(const NatCheck&) = delete;

  // Starts a discovery against `servers` (the first is asked for RFC 5780), dropping one under
  // way. `local_addresses`: our interface addresses, so that a public host is told apart.
  void start(std::vector<Address> servers, std::vector<Address> local_addresses);
  bool running() const { return discovery_ != nullptr; }
  // A daemon's trigger: a discovery against its intermediates (the home first, then the others),
  // unless one runs or the last began less than 10 s ago with the same observed address. Called
  // when a control connection registers and when the observed address changes.
  void refresh(const ControlPlane& plane);
  // A STUN datagram that arrived on the socket: true if it was the discovery's (consumed).
  bool on_stun(const Address& from, std::span<const uint8_t> datagram);
  const std::optional<nat::NatReport>& last() const { return last_; }
  // The last report as Candidates carry it (0, unknown, before the first).
  uint8_t wire() const { return last_ ? nat::to_wire(*last_) : 0; }
  // {"state": "running"|"done"|"not run", and the last report's fields}.
  nlohmann::json status() const;

private:
  void pump();

  UdpSocket& socket_;
  Listener* listener_;
  std::chrono::steady_clock::time_point started_at_{};
  Address started_for_; // the observed address when the last discovery began
  std::unique_ptr<nat::NatDiscovery> discovery_;
  std::optional<nat::NatReport> last_;
  boost::asio::steady_timer timer_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

// The report as status JSON: mapping, filtering, allocation, port_step, port_preserved, hairpin,
// rfc5780, reflexive, hard, summary, and per server its address, mapped address and RTT.
nlohmann::json nat_report_json(const nat::NatReport& r);

} // namespace ztna::io
