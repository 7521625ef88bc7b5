#include "nat/nat_discovery.hpp"

#include <algorithm>
#include <stdexcept>

namespace ztna::nat {

namespace {

constexpr Timestamp kMs = 1'000'000;

bool same_ip(const Address& a, const Address& b) {
  return a.ip_bytes() == b.ip_bytes();
}

Address with_port(Address a, uint16_t port) {
  a.set_port(port);
  return a;
}

} // namespace

const char* to_string(Mapping m) {
  switch (m) {
  case Mapping::Unknown:
    return "unknown";
  case Mapping::None:
    return "none (no NAT)";
  case Mapping::EndpointIndependent:
    return "endpoint-independent";
  case Mapping::AddressDependent:
    return "address-dependent";
  case Mapping::AddressAndPortDependent:
    return "address-and-port-dependent";
  case Mapping::Dependent:
    return "destination-dependent";
  }
  return "?";
}

const char* to_string(Filtering f) {
  switch (f) {
  case Filtering::Unknown:
    return "unknown";
  case Filtering::EndpointIndependent:
    return "endpoint-independent";
  case Filtering::AddressDependent:
    return "address-dependent";
  case Filtering::AddressAndPortDependent:
    return "address-and-port-dependent";
  }
  return "?";
}

const char* to_string(Allocation a) {
  switch (a) {
  case Allocation::Unknown:
    return "unknown";
  case Allocation::Preserving:
    return "port-preserving";
  case Allocation::Sequential:
    return "sequential";
  case Allocation::Random:
    return "random";
  }
  return "?";
}

const char* to_string(Tristate t) {
  return t == Tristate::Yes ? "yes" : t == Tristate::No ? "no" : "unknown";
}

bool NatReport::hard() const {
  const bool dependent = mapping == Mapping::AddressDependent ||
                         mapping == Mapping::AddressAndPortDependent ||
                         mapping == Mapping::Dependent;
  return dependent && allocation != Allocation::Sequential;
}

std::string NatReport::summary() const {
  if (mapping == Mapping::Unknown && !reflexive) return "unknown (no STUN answer)";
  std::string s = mapping == Mapping::None ? std::string("no NAT")
                                           : std::string(to_string(mapping)) + " mapping";
  if (port_preserved != Tristate::Unknown && mapping != Mapping::None)
    s += port_preserved == Tristate::Yes ? " (port preserved)" : " (port changed)";
  if (allocation == Allocation::Sequential)
    s += ", sequential ports (step " + std::to_string(port_step) + ")";
  else if (allocation == Allocation::Random)
    s += ", random ports";
  s += std::string(", ") + to_string(filtering) + " filtering";
  if (mapping != Mapping::None) s += std::string(", hairpinning ") + to_string(hairpin);
  return s;
}

// The enums' values are the wire's (wire::Candidates::nat, docs/protocol.md §4.4).
uint8_t to_wire(const NatReport& r) {
  return static_cast<uint8_t>(static_cast<uint8_t>(r.mapping) << 4 |
                              static_cast<uint8_t>(r.allocation) << 2 |
                              static_cast<uint8_t>(r.filtering));
}

bool hard_on_wire(uint8_t nat) {
  NatReport r;
  r.mapping = static_cast<Mapping>(nat >> 4); // values past Dependent are never hard
  r.allocation = static_cast<Allocation>((nat >> 2) & 3);
  return r.hard();
}

std::string describe_wire(uint8_t nat) {
  if ((nat >> 4) > static_cast<int>(Mapping::Dependent)) return "?";
  const auto mapping = static_cast<Mapping>(nat >> 4);
  const auto allocation = static_cast<Allocation>((nat >> 2) & 3);
  std::string s = mapping == Mapping::None      ? std::string("no NAT")
                  : mapping == Mapping::Unknown ? std::string("unknown")
                                                : std::string(to_string(mapping)) + " mapping";
  if (allocation != Allocation::Unknown) s += std::string(", ") + to_string(allocation) + " ports";
  return s;
}

NatDiscovery::NatDiscovery(DiscoveryConfig config, Timestamp now) : config_(std::move(config)) {
  if (config_.servers.empty()) throw std::invalid_argument("NAT discovery needs a server");
  if (!config_.random) throw std::invalid_argument("NAT discovery needs a random source");
  if (config_.max_transmissions < 1) config_.max_transmissions = 1;
  for (size_t i = 0; i < config_.servers.size(); ++i)
    add(Kind::Server, config_.servers[i], std::nullopt, now, i);
  for (const auto& s : config_.servers)
    report_.servers.push_back({s, std::nullopt, std::nullopt});
}

void NatDiscovery::add(Kind kind, const Address& to, std::optional<wire::StunChangeRequest> change,
                       Timestamp at, size_t server) {
  Probe p;
  p.kind = kind;
  p.server = server;
  p.to = to;
  p.change = change;
  p.next_at = at;
  config_.random(p.tid);
  probes_.push_back(std::move(p));
}

std::chrono::nanoseconds NatDiscovery::rto() const {
  // Once the first server answered, its RTT says how long to wait: a lost request or a filtered
  // answer is then told apart in a few round trips, not in fixed seconds.
  if (first_rtt_) {
    const auto r = std::chrono::duration_cast<std::chrono::milliseconds>(*first_rtt_) * 3 +
                   std::chrono::milliseconds(20);
    return std::clamp(r, std::chrono::milliseconds(60), config_.initial_rto * 2);
  }
  return config_.initial_rto;
}

std::optional<Outgoing> NatDiscovery::poll(Timestamp now) {
  advance(now);
  for (auto& p : probes_) {
    if (p.finished || p.transmissions >= config_.max_transmissions || p.next_at > now) continue;
    p.last_sent = now;
    p.transmissions++;
    // RFC 8489 §6.2.1: a retransmission keeps the transaction ID; the wait doubles.
    const auto wait = static_cast<Timestamp>(rto().count()) << (p.transmissions - 1);
    p.next_at = now + wait;
    if (p.transmissions == config_.max_transmissions) p.give_up_at = now + wait;
    wire::StunBindingRequest req;
    req.transaction_id = p.tid;
    req.change = p.change;
    return Outgoing{p.to, wire::encode_binding_request(req)};
  }
  return std::nullopt;
}

Timestamp NatDiscovery::next_timeout() const {
  Timestamp t = kNever;
  for (const auto& p : probes_) {
    if (p.finished) continue;
    t = std::min(t, p.transmissions < config_.max_transmissions ? p.next_at : p.give_up_at);
  }
  return t;
}

bool NatDiscovery::on_datagram(const Address& /*from: answers to CHANGE-REQUEST come from
                                                 elsewhere; the transaction ID matches them*/
                               ,
                               std::span<const uint8_t> datagram, Timestamp now) {
  std::string error;
  auto m = wire::parse_stun(datagram, error);
  if (!m) return false;
  for (auto& p : probes_) {
    if (p.finished || p.transmissions == 0 || m->transaction_id != p.tid) continue;
    if (p.kind == Kind::Hairpin) {
      // Our own request, back through the NAT's hairpin (RFC 5780 §4.5).
      if (m->cls != wire::StunClass::Request) return false;
      p.answered = p.finished = true;
      advance(now);
      return true;
    }
    auto r = wire::read_binding_response(datagram, p.tid, error);
    if (!r) return false;
    p.finished = true;
    // An error response (a server without RFC 5780 refusing CHANGE-REQUEST, say) is an answer
    // that says nothing about the NAT.
    p.answered = r->success;
    if (r->success) {
      p.mapped = r->mapped;
      p.other = r->other_address;
      if (p.kind == Kind::Server) {
        auto& s = report_.servers[p.server];
        s.mapped = r->mapped;
        // From the latest transmission: an answer to an earlier one only makes it look faster.
        s.rtt = std::chrono::microseconds((now - p.last_sent) / 1000);
      }
    }
    advance(now);
    return true;
  }
  return false;
}

NatDiscovery::Probe* NatDiscovery::find(Kind kind) {
  for (auto& p : probes_)
    if (p.kind == kind) return &p;
  return nullptr;
}

bool NatDiscovery::finished(Kind kind) const {
  for (const auto& p : probes_)
    if (p.kind == kind && !p.finished) return false;
  return true;
}

void NatDiscovery::advance(Timestamp now) {
  // Probes whose last transmission went unanswered for its whole wait are over.
  for (auto& p : probes_)
    if (!p.finished && p.transmissions >= config_.max_transmissions && now >= p.give_up_at)
      p.finished = true;
  for (bool progress = true; progress;) {
    progress = false;
    switch (phase_) {
    case Phase::Servers: {
      const Probe& first = probes_.front(); // the first server's
      if (!first.finished) return;
      if (first.answered) first_rtt_ = report_.servers[0].rtt;
      if (first.answered && first.other && !first.other->empty() &&
          first.other->is_v6() == first.to.is_v6()) {
        other_ = *first.other;
        report_.rfc5780 = true;
        start_filtering(now);
      } else {
        start_mapping(now);
      }
      progress = true;
      break;
    }
    case Phase::Filtering: {
      Probe* both = find(Kind::FilterBoth);
      if (!both->finished) return;
      if (both->answered) {
        report_.filtering = Filtering::EndpointIndependent;
      } else {
        Probe* port = find(Kind::FilterPort);
        if (!port) {
          add(Kind::FilterPort, config_.servers[0], wire::StunChangeRequest{false, true}, now);
          return;
        }
        if (!port->finished) return;
        report_.filtering =
            port->answered ? Filtering::AddressDependent : Filtering::AddressAndPortDependent;
      }
      start_mapping(now);
      progress = true;
      break;
    }
    case Phase::Mapping:
      if (std::any_of(probes_.begin(), probes_.end(), [](const Probe& p) { return !p.finished; }))
        return;
      conclude();
      phase_ = Phase::Done;
      return;
    case Phase::Done:
      return;
    }
  }
}

void NatDiscovery::start_filtering(Timestamp now) {
  phase_ = Phase::Filtering;
  // RFC 5780 §4.4 test II: answered from the other IP and port only if anything may come in.
  add(Kind::FilterBoth, config_.servers[0], wire::StunChangeRequest{true, true}, now);
}

void NatDiscovery::start_mapping(Timestamp now) {
  phase_ = Phase::Mapping;
  const Address& primary = config_.servers[0];
  Timestamp at = now;
  const Timestamp pace = static_cast<Timestamp>(config_.pacing.count()) * kMs;
  if (other_) {
    // RFC 5780 §4.3 tests II and III, and the fourth address, one new mapping each on a NAT
    // that maps per destination: paced, so that a sequential allocator shows its step.
    add(Kind::MapAltIp, with_port(*other_, primary.port()), std::nullopt, at);
    add(Kind::MapAltBoth, *other_, std::nullopt, at += pace);
    add(Kind::MapAltPort, with_port(primary, other_->port()), std::nullopt, at += pace);
  }
  const Probe& first = probes_.front();
  if (first.mapped) {
    const Address& reflexive = *first.mapped;
    const bool ours = std::any_of(config_.local_addresses.begin(), config_.local_addresses.end(),
                                  [&](const Address& a) { return same_ip(a, reflexive); });
    if (!ours) add(Kind::Hairpin, reflexive, std::nullopt, at += pace);
  }
}

void NatDiscovery::conclude() {
  auto& r = report_;
  // The first server's view, else any other's (the servers are listed first-asked first).
  for (const auto& s : r.servers)
    if (!r.reflexive && s.mapped) r.reflexive = s.mapped;
  if (!r.reflexive) return; // no server answered: nothing is known
  const Address m1 = *r.reflexive;
  r.port_preserved = m1.port() == config_.local.port() ? Tristate::Yes : Tristate::No;
  const bool ours = std::any_of(config_.local_addresses.begin(), config_.local_addresses.end(),
                                [&](const Address& a) { return same_ip(a, m1); });

  std::vector<Address> fresh;
  for (Kind k : {Kind::MapAltIp, Kind::MapAltBoth, Kind::MapAltPort})
    if (Probe* p = find(k); p && p->mapped) fresh.push_back(*p->mapped);
  r.mapping_samples = fresh;

  if (ours) {
    r.mapping = Mapping::None;
  } else if (Probe* alt_ip = find(Kind::MapAltIp); alt_ip && alt_ip->mapped) {
    if (*alt_ip->mapped == m1) {
      r.mapping = Mapping::EndpointIndependent;
    } else if (Probe* both = find(Kind::MapAltBoth); both && both->mapped) {
      r.mapping = *both->mapped == *alt_ip->mapped ? Mapping::AddressDependent
                                                   : Mapping::AddressAndPortDependent;
    } else {
      r.mapping = Mapping::Dependent;
    }
  } else {
    // No alternate address: the servers' views of us, toward different addresses.
    // Only servers of the first one's family: an IPv6 mapping says nothing of the IPv4 NAT.
    std::vector<Address> seen;
    bool distinct_servers = false;
    for (const auto& s : r.servers) {
      if (s.server.is_v6() != r.servers[0].server.is_v6()) continue;
      if (s.mapped) seen.push_back(*s.mapped);
      distinct_servers = distinct_servers || !same_ip(s.server, r.servers[0].server);
    }
    if (seen.size() >= 2 && distinct_servers)
      r.mapping = std::all_of(seen.begin(), seen.end(), [&](const Address& a) { return a == m1; })
                      ? Mapping::EndpointIndependent
                      : Mapping::Dependent;
  }

  if (r.mapping == Mapping::None || r.mapping == Mapping::EndpointIndependent) {
    if (r.port_preserved == Tristate::Yes) r.allocation = Allocation::Preserving;
  } else {
    // The fresh mappings' ports, in the order their first requests left; a repeated port (an
    // address-dependent NAT reusing a mapping) is one mapping.
    std::vector<int> ports;
    for (const auto& a : fresh)
      if (ports.empty() || ports.back() != a.port()) ports.push_back(a.port());
    if (ports.size() >= 2) {
      int step = 0;
      bool sequential = true;
      for (size_t i = 1; i < ports.size(); ++i) {
        const int d = ports[i] - ports[i - 1];
        // A busy NAT hands out ports to others between ours: small forward steps still count.
        if (d < 1 || d > 64) sequential = false;
        step = step == 0 ? d : std::min(step, d);
      }
      r.allocation = sequential ? Allocation::Sequential : Allocation::Random;
      if (sequential) r.port_step = step;
    }
  }
  if (Probe* h = find(Kind::Hairpin); h && h->finished)
    r.hairpin = h->answered ? Tristate::Yes : Tristate::No;
}

} // namespace ztna::nat
