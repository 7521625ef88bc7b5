// The daemon's one UDP socket (DESIGN D1), on the Asio event loop.
//
// Sends are batched with UDP GSO (UDP_SEGMENT): packets queued to the same destination within
// one turn of the event loop leave in one sendmsg, and receives use UDP_GRO, so a bulk
// transfer costs one system call per batch instead of one per packet. Both fall back to plain
// datagrams where the kernel or device refuses them.
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
  // Queues header + body as one datagram; it leaves before the event loop waits again. A
  // datagram the kernel cannot take is dropped and counted: QUIC recovers losses, and blocking
  // the loop would be worse.
  void send(const Address& to, std::span<const uint8_t> body, std::span<const uint8_t> header = {});
  // Sends everything queued now.
  void flush();
  const Address& local() const { return local_; }
  boost::asio::io_context& io() { return io_; }
  uint64_t send_errors() const { return send_errors_; }

private:
  void wait();
  void drain();
  void send_one(const Address& to, const uint8_t* data, size_t len, size_t segment);

  boost::asio::io_context& io_;
  boost::asio::ip::udp::socket socket_;
  Address local_;
  bool v6_ = false;
  bool gso_ = true;
  Receiver receiver_;
  std::vector<uint8_t> buffer_;
  // The pending GSO batch: equal-size segments to one destination; only the last may be shorter.
  std::vector<uint8_t> batch_;
  Address batch_to_;
  size_t batch_segment_ = 0;
  size_t batch_count_ = 0;
  bool batch_closed_ = false;
  bool flush_posted_ = false;
  uint64_t send_errors_ = 0;
};

} // namespace ztna::io
