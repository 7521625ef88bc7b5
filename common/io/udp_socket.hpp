// The daemon's one UDP socket (DESIGN D1), on the Asio event loop.
#pragma once

#include "net/address.hpp"

#include <boost/asio.hpp>

#include <cstdint>
#include <functional>
#include <span>
#include <vector>

namespace ztna::io {

class UdpSocket {
public:
  using Receiver = std::function<void(const Address& from, std::span<const uint8_t> data)>;

  // Binds; "[::]:p" is dual-stack. Throws std::runtime_error naming the address on failure.
  UdpSocket(boost::asio::io_context& io, const Address& bind);
  void start(Receiver receiver);
  void stop();
  // Sends header + body as one datagram. Drops it (counted) if the kernel buffer is full:
  // QUIC recovers losses, and blocking the loop would be worse.
  void send(const Address& to, std::span<const uint8_t> body, std::span<const uint8_t> header = {});
  const Address& local() const { return local_; }
  uint64_t send_errors() const { return send_errors_; }

private:
  void wait();
  void drain();

  boost::asio::ip::udp::socket socket_;
  Address local_;
  bool v6_ = false;
  Receiver receiver_;
  std::vector<uint8_t> buffer_;
  uint64_t send_errors_ = 0;
};

} // namespace ztna::io
