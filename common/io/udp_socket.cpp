#include "io/udp_socket.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

namespace ztna::io {

namespace {

// A dual-stack socket sees IPv4 peers as ::ffff:a.b.c.d; the rest of the code sees plain IPv4.
Address unmap(const Address& a) {
  if (!a.is_v6()) return a;
  auto* in6 = reinterpret_cast<const sockaddr_in6*>(a.sa());
  if (!IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr)) return a;
  uint32_t ip;
  std::memcpy(&ip, &in6->sin6_addr.s6_addr[12], 4);
  return Address::ipv4(ntohl(ip), a.port());
}

Address map_to_v6(const Address& a) {
  if (a.is_v6()) return a;
  auto* in = reinterpret_cast<const sockaddr_in*>(a.sa());
  sockaddr_in6 in6{};
  in6.sin6_family = AF_INET6;
  in6.sin6_port = in->sin_port;
  in6.sin6_addr.s6_addr[10] = 0xff;
  in6.sin6_addr.s6_addr[11] = 0xff;
  std::memcpy(&in6.sin6_addr.s6_addr[12], &in->sin_addr, 4);
  return Address::from_sockaddr(reinterpret_cast<sockaddr*>(&in6), sizeof in6);
}

} // namespace

UdpSocket::UdpSocket(boost::asio::io_context& io, const Address& bind)
    : socket_(io), buffer_(65536) {
  v6_ = bind.is_v6();
  int fd = ::socket(v6_ ? AF_INET6 : AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) throw std::runtime_error("socket: " + std::string(strerror(errno)));
  int off = 0, size = 4 << 20;
  if (v6_) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof off);
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
  setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
  if (::bind(fd, bind.sa(), bind.len()) != 0) {
    std::string why = strerror(errno);
    ::close(fd);
    throw std::runtime_error("cannot bind UDP " + bind.to_string() + ": " + why);
  }
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len);
  local_ = Address::from_sockaddr(reinterpret_cast<sockaddr*>(&ss), len);
  socket_.assign(v6_ ? boost::asio::ip::udp::v6() : boost::asio::ip::udp::v4(), fd);
}

void UdpSocket::start(Receiver receiver) {
  receiver_ = std::move(receiver);
  wait();
}

void UdpSocket::stop() {
  boost::system::error_code ec;
  socket_.cancel(ec);
}

void UdpSocket::wait() {
  socket_.async_wait(boost::asio::ip::udp::socket::wait_read, [this](boost::system::error_code ec) {
    if (ec) return;
    drain();
    wait();
  });
}

void UdpSocket::drain() {
  // Bounded so one busy socket cannot starve timers and TCP splices on the same loop.
  for (int i = 0; i < 256; ++i) {
    sockaddr_storage ss;
    socklen_t len = sizeof ss;
    ssize_t n = ::recvfrom(socket_.native_handle(), buffer_.data(), buffer_.size(), 0,
                           reinterpret_cast<sockaddr*>(&ss), &len);
    if (n < 0) return; // EAGAIN, or an ICMP error surfaced as ECONNREFUSED: nothing to read
    auto from = unmap(Address::from_sockaddr(reinterpret_cast<sockaddr*>(&ss), len));
    receiver_(from, {buffer_.data(), static_cast<size_t>(n)});
  }
}

void UdpSocket::send(const Address& to, std::span<const uint8_t> body,
                     std::span<const uint8_t> header) {
  Address dest = v6_ ? map_to_v6(to) : to;
  iovec iov[2];
  int n = 0;
  if (!header.empty()) iov[n++] = {const_cast<uint8_t*>(header.data()), header.size()};
  iov[n++] = {const_cast<uint8_t*>(body.data()), body.size()};
  msghdr msg{};
  msg.msg_name = const_cast<sockaddr*>(dest.sa());
  msg.msg_namelen = dest.len();
  msg.msg_iov = iov;
  msg.msg_iovlen = static_cast<size_t>(n);
  if (::sendmsg(socket_.native_handle(), &msg, 0) < 0) send_errors_++;
}

} // namespace ztna::io
