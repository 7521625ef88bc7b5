#include "local_listener.hpp"

#include <spdlog/spdlog.h>

#include <cstring>
#include <stdexcept>

namespace ztna {

LocalListener::LocalListener(boost::asio::io_context& io, ServiceSpec spec, TcpHandler on_tcp,
                             UdpHandler on_udp)
    : spec_(std::move(spec)), on_tcp_(std::move(on_tcp)), on_udp_(std::move(on_udp)) {
  boost::system::error_code ec;
  auto ip = boost::asio::ip::make_address(spec_.host, ec);
  if (ec)
    throw std::runtime_error("expose '" + spec_.name + "': " + spec_.host +
                             " is not an IP address");
  if (spec_.proto == ServiceSpec::Proto::Tcp) {
    acceptor_.emplace(io);
    tcp::endpoint ep(ip, spec_.port);
    acceptor_->open(ep.protocol(), ec);
    if (!ec) acceptor_->set_option(tcp::acceptor::reuse_address(true), ec);
    if (!ec) acceptor_->bind(ep, ec);
    if (!ec) acceptor_->listen(boost::asio::socket_base::max_listen_connections, ec);
    if (ec)
      throw std::runtime_error("expose '" + spec_.name + "': cannot listen on tcp " +
                               spec_.endpoint() + ": " + ec.message());
    accept();
  } else {
    udp_.emplace(io);
    udp::endpoint ep(ip, spec_.port);
    udp_->open(ep.protocol(), ec);
    if (!ec) udp_->bind(ep, ec);
    if (ec)
      throw std::runtime_error("expose '" + spec_.name + "': cannot bind udp " + spec_.endpoint() +
                               ": " + ec.message());
    buf_.resize(65536);
    receive();
  }
}

void LocalListener::accept() {
  acceptor_->async_accept([this](boost::system::error_code ec, tcp::socket s) {
    if (ec == boost::asio::error::operation_aborted) return;
    if (!ec)
      on_tcp_(*this, std::move(s));
    else
      spdlog::warn("expose '{}': accept failed: {}", spec_.name, ec.message());
    accept();
  });
}

void LocalListener::receive() {
  udp_->async_receive_from(
      boost::asio::buffer(buf_), from_, [this](boost::system::error_code ec, size_t n) {
        if (ec == boost::asio::error::operation_aborted) return;
        if (!ec)
          on_udp_(*this, Address::from_sockaddr(from_.data(), static_cast<socklen_t>(from_.size())),
                  {buf_.data(), n});
        receive();
      });
}

void LocalListener::send_udp(const Address& to, std::span<const uint8_t> payload) {
  udp::endpoint ep;
  ep.resize(to.len());
  std::memcpy(ep.data(), to.sa(), to.len());
  boost::system::error_code ec;
  udp_->send_to(boost::asio::buffer(payload.data(), payload.size()), ep, 0, ec);
}

void LocalListener::stop() {
  boost::system::error_code ec;
  if (acceptor_) acceptor_->close(ec);
  if (udp_) udp_->close(ec);
}

} // namespace ztna
