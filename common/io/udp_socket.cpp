#include "io/udp_socket.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <sys/socket.h>

#include <cerrno>
#include <algorithm>
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

namespace {
constexpr size_t kMaxBatchSegments = 64;
constexpr size_t kMaxBatchBytes = 65000; // a GSO send is one IP datagram's worth at most
} // namespace

UdpSocket::UdpSocket(boost::asio::io_context& io, const Address& bind)
    : io_(io), socket_(io), buffer_(65536) {
  v6_ = bind.is_v6();
  int fd = ::socket(v6_ ? AF_INET6 : AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) throw std::runtime_error("socket: " + std::string(strerror(errno)));
  int off = 0, size = 4 << 20;
  if (v6_) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof off);
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
  setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
  int on = 1;
  setsockopt(fd, IPPROTO_UDP, UDP_GRO, &on, sizeof on); // optional: fine if refused
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
  flush(); // what is queued (a CONNECTION_CLOSE at shutdown) still leaves
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
  for (int i = 0; i < 64; ++i) {
    sockaddr_storage ss;
    iovec iov{buffer_.data(), buffer_.size()};
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))];
    msghdr msg{};
    msg.msg_name = &ss;
    msg.msg_namelen = sizeof ss;
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    ssize_t n = ::recvmsg(socket_.native_handle(), &msg, 0);
    if (n < 0) break; // EAGAIN, or an ICMP error surfaced as ECONNREFUSED: nothing to read
    size_t segment = static_cast<size_t>(n);
    for (auto* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
      if (c->cmsg_level == IPPROTO_UDP && c->cmsg_type == UDP_GRO) {
        int gso;
        std::memcpy(&gso, CMSG_DATA(c), sizeof gso);
        if (gso > 0) segment = static_cast<size_t>(gso);
      }
    }
    auto from = unmap(Address::from_sockaddr(reinterpret_cast<sockaddr*>(&ss), msg.msg_namelen));
    // With GRO, one read holds several datagrams of `segment` bytes (the last may be shorter).
    for (size_t off = 0; off < static_cast<size_t>(n); off += segment)
      receiver_(from, {buffer_.data() + off, std::min(segment, static_cast<size_t>(n) - off)});
  }
  flush();
}

void UdpSocket::send(const Address& to, std::span<const uint8_t> body,
                     std::span<const uint8_t> header) {
  size_t len = header.size() + body.size();
  if (batch_count_ > 0 &&
      (batch_closed_ || len > batch_segment_ || batch_count_ == kMaxBatchSegments ||
       batch_.size() + len > kMaxBatchBytes || !(to == batch_to_)))
    flush();
  if (batch_count_ == 0) {
    batch_to_ = to;
    batch_segment_ = len;
  }
  batch_.insert(batch_.end(), header.begin(), header.end());
  batch_.insert(batch_.end(), body.begin(), body.end());
  batch_count_++;
  if (len < batch_segment_ || !gso_) batch_closed_ = true; // a short segment ends a GSO batch
  if (!gso_) return flush();
  if (!flush_posted_) {
    flush_posted_ = true;
    boost::asio::post(io_, [this] {
      flush_posted_ = false;
      flush();
    });
  }
}

void UdpSocket::flush() {
  if (batch_count_ == 0) return;
  send_one(batch_to_, batch_.data(), batch_.size(), batch_count_ > 1 ? batch_segment_ : 0);
  batch_.clear();
  batch_count_ = 0;
  batch_closed_ = false;
}

void UdpSocket::send_one(const Address& to, const uint8_t* data, size_t len, size_t segment) {
  Address dest = v6_ ? map_to_v6(to) : to;
  iovec iov{const_cast<uint8_t*>(data), len};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(uint16_t))] = {};
  msghdr msg{};
  msg.msg_name = const_cast<sockaddr*>(dest.sa());
  msg.msg_namelen = dest.len();
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  if (segment) {
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    auto* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = IPPROTO_UDP;
    c->cmsg_type = UDP_SEGMENT;
    c->cmsg_len = CMSG_LEN(sizeof(uint16_t));
    uint16_t seg = static_cast<uint16_t>(segment);
    std::memcpy(CMSG_DATA(c), &seg, sizeof seg);
  }
  if (::sendmsg(socket_.native_handle(), &msg, 0) >= 0) return;
  if (segment && (errno == EIO || errno == EINVAL || errno == EOPNOTSUPP)) {
    // No GSO here (old kernel, device without checksum offload): plain datagrams from now on.
    gso_ = false;
    for (size_t off = 0; off < len; off += segment)
      send_one(to, data + off, std::min(segment, len - off), 0);
    return;
  }
  send_errors_++;
}

} // namespace ztna::io
