#include "stun_service.hpp"

#include "io/clock.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <stdexcept>

namespace ztna {

namespace {

// "192.0.2.1" or "2001:db8::1" as an address with port 0.
Address parse_ip(const std::string& text, const char* option) {
  const std::string with_port =
      text.find(':') == std::string::npos ? text + ":0" : "[" + text + "]:0";
  auto a = Address::parse(with_port);
  if (!a) throw std::runtime_error(std::string(option) + ": not an IP address: " + text);
  return *a;
}

bool unspecified(const Address& a) {
  const std::string ip = a.ip_bytes();
  return std::all_of(ip.begin(), ip.end(), [](char c) { return c == 0; });
}

Address with_port(Address a, uint16_t port) {
  a.set_port(port);
  return a;
}

unsigned index(stun::Socket s) {
  return static_cast<unsigned>(s);
}

} // namespace

StunService::StunService(boost::asio::io_context& io, io::Endpoint& endpoint,
                         const StunOptions& options)
    : endpoint_(endpoint) {
  const Address bound = endpoint_.socket().local();
  stun::BindingServer::Config config;
  // What clients are told (RESPONSE-ORIGIN, OTHER-ADDRESS): the bound IP, unless the operator
  // names the one clients reach (a wildcard bind, or a 1:1 NAT in front of the host).
  config.primary = bound;
  if (options.primary_address)
    config.primary =
        with_port(parse_ip(*options.primary_address, "--stun-primary-address"), bound.port());
  config.alternate_port = options.alternate_port;
  if (options.alternate_address) {
    if (unspecified(bound))
      throw std::runtime_error(
          "--stun-alternate-address needs --listen on a concrete IP, not " + bound.to_string() +
          ": a wildcard socket already holds port " + std::to_string(bound.port()) +
          " on every address, and RFC 5780 needs each answer to leave from a known address");
    config.alternate_address = parse_ip(*options.alternate_address, "--stun-alternate-address");
  }
  config.source_rate = options.source_rate;
  config.source_burst = 2 * options.source_rate;
  config.global_rate = options.global_rate;
  config.global_burst = options.global_rate;
  try {
    server_ = std::make_unique<stun::BindingServer>(config);
  } catch (const std::invalid_argument& e) {
    throw std::runtime_error(e.what()); // it names the option's value
  }
  // Bind addresses: the listen IP (maybe a wildcard) and the alternate IP, each with both ports.
  for (stun::Socket s : stun::kAllSockets) {
    if (s == stun::Socket::Primary || !server_->has(s)) continue;
    const Address ip = (index(s) & 2) ? *config.alternate_address : bound;
    const uint16_t port = (index(s) & 1) ? *config.alternate_port : bound.port();
    sockets_[index(s)] = std::make_unique<io::UdpSocket>(io, with_port(ip, port));
  }
}

StunService::~StunService() = default;

io::UdpSocket& StunService::socket(stun::Socket s) {
  return s == stun::Socket::Primary ? endpoint_.socket() : *sockets_[index(s)];
}

const io::UdpSocket& StunService::socket(stun::Socket s) const {
  return s == stun::Socket::Primary ? endpoint_.socket() : *sockets_[index(s)];
}

void StunService::start() {
  endpoint_.on_stun([this](const Address& from, std::span<const uint8_t> d) {
    on_datagram(stun::Socket::Primary, from, d);
  });
  std::string where = endpoint_.socket().local().to_string() + " (the shared socket)";
  for (stun::Socket s : stun::kAllSockets) {
    if (!sockets_[index(s)]) continue;
    sockets_[index(s)]->start(
        [this, s](const Address& from, std::span<const uint8_t> d) { on_datagram(s, from, d); });
    where += ", " + sockets_[index(s)]->local().to_string();
  }
  if (sockets_[1] || sockets_[2]) where += " (STUN only)";
  std::string discovery = "on, OTHER-ADDRESS " +
                          server_->address(stun::Socket::AlternateBoth).to_string() +
                          " for requests to the shared socket";
  if (!server_->rfc5780())
    discovery = server_->config().alternate_port && server_->config().alternate_address
                    ? "off (the primary IP is a wildcard: give --stun-primary-address)"
                    : "off (needs --stun-alternate-address and --stun-alternate-port)";
  spdlog::info("STUN Binding (RFC 8489) answered on udp {}; RFC 5780 behaviour discovery {}; "
               "at most {}/s per source, {}/s in all",
               where, discovery, server_->config().source_rate, server_->config().global_rate);
}

void StunService::stop() {
  for (auto& s : sockets_)
    if (s) s->stop();
}

void StunService::on_datagram(stun::Socket on, const Address& from,
                              std::span<const uint8_t> datagram) {
  auto reply = server_->on_datagram(io::now(), on, from, datagram);
  if (reply) socket(reply->via).send(reply->to, reply->datagram);
}

nlohmann::json StunService::status() const {
  nlohmann::json j;
  nlohmann::json sockets = nlohmann::json::object();
  uint64_t send_errors = 0;
  for (stun::Socket s : stun::kAllSockets) {
    if (!server_->has(s)) continue;
    const Address advertised = server_->address(s);
    nlohmann::json entry = {{"local", socket(s).local().to_string()}, {"advertised", nullptr}};
    if (!unspecified(advertised)) entry["advertised"] = advertised.to_string();
    sockets[to_string(s)] = entry;
    if (s != stun::Socket::Primary) send_errors += socket(s).send_errors();
  }
  j["sockets"] = sockets;
  j["rfc5780"] = server_->rfc5780();
  j["rate_per_source"] = server_->config().source_rate;
  j["rate_global"] = server_->config().global_rate;
  j["sources"] = server_->sources();
  const auto& c = server_->counters();
  j["counters"] = {{"received", c.received},
                   {"answered", c.answered},
                   {"answered_changed", c.answered_changed},
                   {"answered_to_port", c.answered_to_port},
                   {"answers_trimmed", c.answers_trimmed},
                   {"bad_request", c.bad_request},
                   {"unknown_attribute", c.unknown_attribute},
                   {"dropped_invalid", c.dropped_invalid},
                   {"dropped_oversize", c.dropped_oversize},
                   {"dropped_not_request", c.dropped_not_request},
                   {"dropped_credentials", c.dropped_credentials},
                   {"dropped_source_limit", c.dropped_source_limit},
                   {"dropped_global_limit", c.dropped_global_limit},
                   {"dropped_amplification", c.dropped_amplification},
                   {"sources_evicted", c.sources_evicted},
                   {"send_errors", send_errors}};
  return j;
}

} // namespace ztna
