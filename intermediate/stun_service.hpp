// The intermediate's STUN Binding service (docs/protocol.md §12): the I/O shell around the
// sans-IO stun::BindingServer. STUN datagrams on the shared socket (first byte 0x00-0x03, which
// io::Endpoint hands over) and everything that arrives on the STUN-only sockets go to the server;
// each answer leaves from the socket it names.
//
// The STUN-only sockets (an alternate port, an alternate address, both) are the documented
// exception to one socket per daemon (DESIGN D1): they exist so that peers can see their mapping
// from a second destination and test their NAT's filtering (RFC 5780, DESIGN D4). They carry no
// QUIC and no relay frames; anything else that arrives on them is counted and dropped.
#pragma once

#include "io/endpoint.hpp"
#include "io/udp_socket.hpp"
#include "stun/binding_server.hpp"

#include <boost/asio.hpp>
#include <nlohmann/json.hpp>

#include <array>
#include <memory>
#include <optional>
#include <string>

namespace ztna {

struct StunOptions {
  std::optional<uint16_t> alternate_port;       // --stun-alternate-port
  std::optional<std::string> alternate_address; // --stun-alternate-address (an IP)
  std::optional<std::string> primary_address;   // --stun-primary-address (an IP, advertised)
  double source_rate = 20;                      // --stun-rate-per-source (burst: twice as many)
  double global_rate = 2000;                    // --stun-rate-global (burst: as many)
};

class StunService {
public:
  // Binds the STUN-only sockets next to the endpoint's. Throws std::runtime_error naming the
  // option for a configuration that cannot work: an IP that does not parse, an alternate
  // address with a wildcard --listen (it would share the primary port of every IP), a port or
  // address equal to the primary one, another family, a socket that cannot be bound.
  StunService(boost::asio::io_context& io, io::Endpoint& endpoint, const StunOptions& options);
  ~StunService();

  // Starts answering, and says where in one log line.
  void start();
  void stop();
  nlohmann::json status() const;

private:
  void on_datagram(stun::Socket on, const Address& from, std::span<const uint8_t> datagram);
  io::UdpSocket& socket(stun::Socket s);
  const io::UdpSocket& socket(stun::Socket s) const;

  io::Endpoint& endpoint_;
  std::unique_ptr<stun::BindingServer> server_;
  // Indexed by stun::Socket; the primary entry stays empty (it is the endpoint's socket).
  std::array<std::unique_ptr<io::UdpSocket>, 4> sockets_;
};

} // namespace ztna
