#include "io/nat_check.hpp"

#include "io/clock.hpp"
#include "io/interfaces.hpp"
#include "io/random.hpp"

#include <spdlog/spdlog.h>

namespace ztna::io {

NatCheck::NatCheck(UdpSocket& socket, Listener* listener)
    : socket_(socket), listener_(listener), timer_(socket.io()) {}

NatCheck::~NatCheck() {
  *alive_ = false;
}

void NatCheck::start(std::vector<Address> servers, std::vector<Address> local_addresses) {
  if (servers.empty()) return;
  nat::DiscoveryConfig c;
  c.servers = std::move(servers);
  c.local = socket_.local();
  c.local_addresses = std::move(local_addresses);
  c.random = random_fill;
  discovery_ = std::make_unique<nat::NatDiscovery>(std::move(c), now());
  pump();
}

void NatCheck::refresh(const ControlPlane& plane) {
  if (running()) return;
  const Address observed = plane.observed_address();
  const auto t = std::chrono::steady_clock::now();
  if (last_ && observed == started_for_ && t - started_at_ < std::chrono::seconds(10)) return;
  std::vector<Address> servers;
  const auto home = plane.home();
  if (home) servers.push_back(plane.address(*home));
  for (size_t i = 0; i < plane.size(); ++i)
    if (!home || i != *home) servers.push_back(plane.address(i));
  // Only the families our socket can reach (an IPv4 socket cannot send to IPv6 servers).
  if (!socket_.local().is_v6()) std::erase_if(servers, [](const Address& a) { return a.is_v6(); });
  if (servers.empty()) return;
  started_at_ = t;
  started_for_ = observed;
  start(std::move(servers), interface_addresses());
}

bool NatCheck::on_stun(const Address& from, std::span<const uint8_t> datagram) {
  if (!discovery_ || !discovery_->on_datagram(from, datagram, now())) return false;
  pump();
  return true;
}

void NatCheck::pump() {
  if (!discovery_) return;
  const auto t = now();
  while (auto out = discovery_->poll(t))
    socket_.send(out->to, out->datagram);
  if (discovery_->done()) {
    last_ = discovery_->report();
    discovery_.reset();
    timer_.cancel();
    spdlog::info("NAT: {}{}", last_->summary(),
                 last_->hard() ? " (hard: a peer cannot predict our port)" : "");
    if (listener_) listener_->on_nat_report(*last_);
    return;
  }
  const auto next = discovery_->next_timeout();
  if (next == nat::NatDiscovery::kNever) return;
  timer_.expires_after(std::chrono::nanoseconds(next > t ? next - t : 0));
  timer_.async_wait([this, alive = alive_](boost::system::error_code ec) {
    if (!ec && *alive) pump();
  });
}

nlohmann::json NatCheck::status() const {
  nlohmann::json j = last_ ? nat_report_json(*last_) : nlohmann::json::object();
  j["state"] = running() ? "running" : last_ ? "done" : "not run";
  return j;
}

nlohmann::json nat_report_json(const nat::NatReport& r) {
  nlohmann::json j{{"mapping", nat::to_string(r.mapping)},
                   {"filtering", nat::to_string(r.filtering)},
                   {"allocation", nat::to_string(r.allocation)},
                   {"port_preserved", nat::to_string(r.port_preserved)},
                   {"hairpin", nat::to_string(r.hairpin)},
                   {"rfc5780", r.rfc5780},
                   {"hard", r.hard()},
                   {"summary", r.summary()}};
  if (r.allocation == nat::Allocation::Sequential) j["port_step"] = r.port_step;
  if (r.reflexive) j["reflexive"] = r.reflexive->to_string();
  auto& samples = j["mapping_samples"] = nlohmann::json::array();
  for (const auto& a : r.mapping_samples)
    samples.push_back(a.to_string());
  auto& servers = j["servers"] = nlohmann::json::array();
  for (const auto& s : r.servers) {
    nlohmann::json e{{"server", s.server.to_string()}};
    if (s.mapped) e["mapped"] = s.mapped->to_string();
    if (s.rtt) e["rtt_ms"] = static_cast<double>(s.rtt->count()) / 1000.0;
    servers.push_back(std::move(e));
  }
  return j;
}

} // namespace ztna::io
