// A service the agent exposes on this machine: a TCP listener or a UDP socket.
#pragma once

#include "control/service_spec.hpp"
#include "net/address.hpp"

#include <boost/asio.hpp>

#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <vector>

namespace ztna {

class LocalListener {
public:
  using tcp = boost::asio::ip::tcp;
  using udp = boost::asio::ip::udp;
  using TcpHandler = std::function<void(LocalListener&, tcp::socket)>;
  using UdpHandler =
      std::function<void(LocalListener&, const Address& from, std::span<const uint8_t>)>;

  // Binds at once; throws std::runtime_error naming the address if it cannot.
  LocalListener(boost::asio::io_context& io, ServiceSpec spec, TcpHandler on_tcp,
                UdpHandler on_udp);
  const ServiceSpec& spec() const { return spec_; }
  void send_udp(const Address& to, std::span<const uint8_t> payload);
  void stop();

private:
  void accept();
  void receive();

  ServiceSpec spec_;
  TcpHandler on_tcp_;
  UdpHandler on_udp_;
  std::optional<tcp::acceptor> acceptor_;
  std::optional<udp::socket> udp_;
  udp::endpoint from_;
  std::vector<uint8_t> buf_;
};

} // namespace ztna
