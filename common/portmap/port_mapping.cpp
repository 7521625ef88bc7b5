#include "portmap/port_mapping.hpp"

#include <algorithm>
#include <cstring>
#include <stdexcept>

namespace ztna::portmap {

namespace {

constexpr Timestamp kMs = 1'000'000;
constexpr Timestamp kSecond = 1'000'000'000;

Timestamp ns(std::chrono::milliseconds d) {
  return static_cast<Timestamp>(d.count()) * kMs;
}

Timestamp add(Timestamp t, Timestamp d) {
  return t > kNever - d ? kNever : t + d;
}

size_t epoch_slot(Protocol p) {
  return p == Protocol::Pcp ? 0 : 1;
}

} // namespace

const char* to_string(Protocol p) {
  switch (p) {
  case Protocol::Pcp:
    return "pcp";
  case Protocol::NatPmp:
    return "natpmp";
  case Protocol::Upnp:
    return "upnp";
  }
  return "?";
}

const char* display_name(Protocol p) {
  switch (p) {
  case Protocol::Pcp:
    return "PCP";
  case Protocol::NatPmp:
    return "NAT-PMP";
  case Protocol::Upnp:
    return "UPnP-IGD";
  }
  return "?";
}

std::optional<Protocol> parse_protocol(std::string_view text) {
  for (auto p : {Protocol::Pcp, Protocol::NatPmp, Protocol::Upnp})
    if (text == to_string(p)) return p;
  return std::nullopt;
}

std::vector<Protocol> default_protocols() {
  return {Protocol::Pcp, Protocol::NatPmp, Protocol::Upnp};
}

const char* natpmp_result_name(uint16_t result) {
  switch (result) { // RFC 6886 §3.5
  case 0:
    return "Success";
  case 1:
    return "Unsupported Version";
  case 2:
    return "Not Authorized/Refused";
  case 3:
    return "Network Failure";
  case 4:
    return "Out of resources";
  case 5:
    return "Unsupported opcode";
  }
  return "unknown";
}

const char* to_string(PortMapping::State s) {
  switch (s) {
  case PortMapping::State::Idle:
    return "idle";
  case PortMapping::State::Trying:
    return "trying";
  case PortMapping::State::Mapped:
    return "mapped";
  case PortMapping::State::Waiting:
    return "waiting";
  case PortMapping::State::Stopping:
    return "stopping";
  case PortMapping::State::Stopped:
    return "stopped";
  }
  return "?";
}

const char* to_string(PortMapping::Step s) {
  switch (s) {
  case PortMapping::Step::PcpMap:
    return "pcp-map";
  case PortMapping::Step::PcpAnnounce:
    return "pcp-announce";
  case PortMapping::Step::NatPmpAddress:
    return "natpmp-address";
  case PortMapping::Step::NatPmpMap:
    return "natpmp-map";
  case PortMapping::Step::Upnp:
    return "upnp";
  }
  return "?";
}

const char* to_string(PortMapping::Purpose p) {
  switch (p) {
  case PortMapping::Purpose::Obtain:
    return "obtain";
  case PortMapping::Purpose::Renew:
    return "renew";
  case PortMapping::Purpose::EpochCheck:
    return "epoch-check";
  case PortMapping::Purpose::Delete:
    return "delete";
  }
  return "?";
}

PortMapping::PortMapping(Config config)
    : config_(std::move(config)),
      backoff_(std::chrono::duration_cast<Backoff::ms>(config_.retry_initial),
               std::chrono::duration_cast<Backoff::ms>(config_.retry_max)) {
  if (!config_.random) throw std::invalid_argument("port mapping: no random source");
  if (config_.internal_port == 0) throw std::invalid_argument("port mapping: internal port 0");
  if (config_.protocols.empty()) throw std::invalid_argument("port mapping: no protocol");
  for (size_t i = 0; i < config_.protocols.size(); ++i)
    for (size_t j = i + 1; j < config_.protocols.size(); ++j)
      if (config_.protocols[i] == config_.protocols[j])
        throw std::invalid_argument(std::string("port mapping: ") +
                                    display_name(config_.protocols[i]) + " listed twice");
  if (config_.initial_rto.count() <= 0 || config_.max_transmissions == 0 ||
      config_.delete_transmissions == 0 || config_.upnp_timeout.count() <= 0 ||
      config_.stop_timeout.count() <= 0 || config_.retry_initial.count() <= 0 ||
      config_.retry_max < config_.retry_initial)
    throw std::invalid_argument("port mapping: a zero interval or count");
  // Renewal at half the lifetime needs whole seconds on both sides.
  if (config_.lifetime.count() < 2 || config_.lifetime.count() > UINT32_MAX)
    throw std::invalid_argument("port mapping: lifetime must be 2 s or more");
  // One nonce for the life of this object: every renewal and the deletion must repeat the one
  // that created the mapping (RFC 6887 §11.2).
  config_.random(nonce_);
}

std::vector<Action> PortMapping::take_actions() {
  std::vector<Action> out;
  out.swap(actions_);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Rounds: each protocol in turn until one gives a mapping.

void PortMapping::start(Timestamp now) {
  if (state_ != State::Idle) return;
  begin_round(now);
}

void PortMapping::begin_round(Timestamp now) {
  state_ = State::Trying;
  round_index_ = 0;
  round_failures_.clear();
  port_refused_ = false;
  error_hint_s_ = 0;
  epochs_ = {};
  exchange_.reset();
  try_next(now);
}

void PortMapping::try_next(Timestamp now) {
  while (round_index_ < config_.protocols.size()) {
    Protocol p = config_.protocols[round_index_];
    if (p != Protocol::Upnp && !config_.gateway) {
      round_failures_.emplace_back(p, "not tried: no default gateway known");
      ++round_index_;
      continue;
    }
    if (p == Protocol::NatPmp && port_refused_) {
      round_failures_.emplace_back(p, "not tried: " + gateway_text() + " refused port 5351");
      ++round_index_;
      continue;
    }
    begin_exchange(now, p,
                   p == Protocol::Pcp      ? Step::PcpMap
                   : p == Protocol::NatPmp ? Step::NatPmpAddress
                                           : Step::Upnp,
                   Purpose::Obtain);
    return;
  }
  round_failed(now);
}

void PortMapping::protocol_failed(Timestamp now, const std::string& reason) {
  exchange_.reset();
  if (round_index_ < config_.protocols.size()) {
    round_failures_.emplace_back(config_.protocols[round_index_], reason);
    ++round_index_;
  }
  try_next(now);
}

void PortMapping::round_failed(Timestamp now) {
  state_ = State::Waiting;
  ++counters_.rounds_failed;
  std::string reason = "no gateway gave a port mapping:";
  for (size_t i = 0; i < round_failures_.size(); ++i) {
    reason += i == 0 ? " " : "; ";
    reason += display_name(round_failures_[i].first);
    reason += ": ";
    reason += round_failures_[i].second;
  }
  uint32_t r = 0;
  std::array<uint8_t, 4> rb{};
  config_.random(rb);
  std::memcpy(&r, rb.data(), sizeof r);
  Timestamp delay = ns(backoff_.next(r));
  // A gateway's error says how long it will last (RFC 6887 §7.2): no point asking sooner.
  Timestamp hint = std::min(static_cast<Timestamp>(error_hint_s_) * kSecond, ns(config_.retry_max));
  retry_at_ = add(now, std::max(delay, hint));
  last_failure_ = reason;
  actions_.push_back(Failed{reason, retry_at_});
}

// ---------------------------------------------------------------------------------------------
// Exchanges: one request in flight, retransmitted on the schedule, or one UPnP-IGD job.

void PortMapping::begin_exchange(Timestamp now, Protocol p, Step step, Purpose purpose) {
  Exchange x;
  x.protocol = p;
  x.step = step;
  x.purpose = purpose;
  x.started_at = now;
  x.max_transmissions =
      purpose == Purpose::Delete ? config_.delete_transmissions : config_.max_transmissions;
  exchange_ = x;
  if (step != Step::Upnp) {
    transmit(now);
    return;
  }
  UpnpJob job;
  job.id = ++next_job_;
  job.remove = purpose == Purpose::Delete;
  job.internal_port = config_.internal_port;
  job.external_port = suggested_port();
  job.lifetime = static_cast<uint32_t>(config_.lifetime.count());
  exchange_->upnp_job = job.id;
  exchange_->transmissions = 1;
  exchange_->next_at =
      add(now, ns(purpose == Purpose::Delete ? config_.stop_timeout : config_.upnp_timeout));
  ++counters_.requests;
  actions_.push_back(RunUpnp{job});
}

uint16_t PortMapping::suggested_port() const {
  if (mapping_) return mapping_->external.port();
  if (last_external_) return last_external_->port();
  return config_.internal_port;
}

void PortMapping::transmit(Timestamp now) {
  auto& x = *exchange_;
  bool remove = x.purpose == Purpose::Delete;
  uint32_t lifetime = remove ? 0 : static_cast<uint32_t>(config_.lifetime.count());
  switch (x.step) {
  case Step::PcpMap: {
    pcp::MapRequest req;
    req.lifetime = lifetime;
    req.client = pcp::ip16_of(config_.client);
    req.nonce = nonce_;
    req.internal_port = config_.internal_port;
    // The port and address we had, if any: a gateway that restarted may give them back
    // (RFC 6887 §11.2.1).
    const Address* prev = mapping_         ? &mapping_->external
                          : last_external_ ? &*last_external_
                                           : nullptr;
    req.external_port = prev ? prev->port() : config_.internal_port;
    if (prev && !prev->is_v6()) req.external_address = pcp::ip16_of(*prev);
    actions_.push_back(SendPcp{pcp::encode_map_request(req)});
    break;
  }
  case Step::PcpAnnounce:
    actions_.push_back(SendPcp{pcp::encode_announce_request(pcp::ip16_of(config_.client))});
    break;
  case Step::NatPmpAddress: {
    NatPmpRequest req;
    req.public_address = true;
    actions_.push_back(SendNatPmp{req});
    break;
  }
  case Step::NatPmpMap: {
    NatPmpRequest req;
    req.internal_port = config_.internal_port;
    req.external_port = remove ? 0 : suggested_port(); // zero when deleting (RFC 6886 §3.4)
    req.lifetime = lifetime;
    actions_.push_back(SendNatPmp{req});
    break;
  }
  case Step::Upnp:
    return; // jobs are not retransmitted
  }
  ++x.transmissions;
  ++counters_.requests;
  // 250 ms, 500 ms, 1 s...: after the last transmission, one more interval before giving up.
  Timestamp rto = ns(config_.initial_rto) << std::min(x.transmissions - 1, 20u);
  x.next_at = add(now, rto);
}

void PortMapping::handle_timeout(Timestamp now) {
  if (exchange_ && now >= exchange_->next_at) {
    if (exchange_->step != Step::Upnp && exchange_->transmissions < exchange_->max_transmissions)
      transmit(now);
    else
      exchange_timed_out(now);
  }
  if (state_ == State::Mapped) {
    if (now >= mapping_->expires_at) {
      lose(now, "it expired: no renewal was answered in its lifetime of " +
                    std::to_string(mapping_->lifetime_s) + " s");
    } else if (!exchange_ && now >= renew_at_) {
      Protocol p = mapping_->protocol;
      begin_exchange(now, p,
                     p == Protocol::Pcp      ? Step::PcpMap
                     : p == Protocol::NatPmp ? Step::NatPmpMap
                                             : Step::Upnp,
                     Purpose::Renew);
    } else if (!exchange_ && now >= epoch_check_at_) {
      begin_exchange(now, mapping_->protocol,
                     mapping_->protocol == Protocol::Pcp ? Step::PcpAnnounce : Step::NatPmpAddress,
                     Purpose::EpochCheck);
    }
  }
  if (state_ == State::Waiting && now >= retry_at_) begin_round(now);
}

Timestamp PortMapping::next_timeout() const {
  Timestamp t = kNever;
  if (exchange_) t = std::min(t, exchange_->next_at);
  if (state_ == State::Mapped) {
    t = std::min(t, mapping_->expires_at);
    if (!exchange_) t = std::min({t, renew_at_, epoch_check_at_});
  }
  if (state_ == State::Waiting) t = std::min(t, retry_at_);
  return t;
}

void PortMapping::exchange_timed_out(Timestamp now) {
  Exchange x = *exchange_;
  exchange_.reset();
  std::string what;
  if (x.step == Step::Upnp) {
    stale_jobs_.insert(x.upnp_job);
    what = "no answer within " + std::to_string((x.next_at - x.started_at) / kMs) + " ms";
  } else {
    // The schedule's time (250 ms x (2^n - 1)), not the clock's: the text is the same however
    // late the timers ran.
    Timestamp scheduled =
        ns(config_.initial_rto) * ((Timestamp{1} << std::min(x.transmissions, 20u)) - 1);
    what = "no answer from " + gateway_text() + ":5351 (" + std::to_string(x.transmissions) +
           " requests in " + std::to_string(scheduled / kMs) + " ms)";
  }
  switch (x.purpose) {
  case Purpose::Obtain:
    protocol_failed(now, x.step == Step::NatPmpMap ? what + " to the mapping request" : what);
    break;
  case Purpose::Renew:
    renewal_missed(now);
    break;
  case Purpose::EpochCheck:
    // Silence alone is not a restart: the renewal will find out.
    epoch_check_at_ = next_epoch_check(now);
    break;
  case Purpose::Delete:
    finish_stop(false, "the deletion got " + what);
    break;
  }
}

// A renewal without an answer: the mapping still holds until it expires. Try again halfway to
// the expiry (RFC 6887 §11.2.1 keeps trying until then).
void PortMapping::renewal_missed(Timestamp now) {
  ++counters_.renewals_missed;
  if (mapping_->expires_at == kNever) { // a permanent UPnP-IGD lease: nothing to wait for
    lose(now, "the renewal failed and the lease has no expiry to wait for");
    return;
  }
  Timestamp left = mapping_->expires_at > now ? mapping_->expires_at - now : 0;
  renew_at_ = add(now, std::max(left / 2, kSecond));
  if (renew_at_ > mapping_->expires_at) renew_at_ = mapping_->expires_at;
}

// ---------------------------------------------------------------------------------------------
// Answers

void PortMapping::on_pcp(Timestamp now, std::span<const uint8_t> datagram) {
  auto r = pcp::decode_response(datagram);
  if (!r) {
    ++counters_.malformed;
    return;
  }
  bool pcp_exchange = exchange_ && exchange_->protocol == Protocol::Pcp;
  if (r->version != pcp::kVersion) {
    // RFC 6887 §9: the server speaks another version and says so. Version 0 is NAT-PMP's
    // format: a NAT-PMP-only gateway, which the next protocol may use.
    if (pcp_exchange && exchange_->purpose == Purpose::Obtain) {
      ++counters_.responses;
      protocol_failed(now, r->version == 0
                               ? "the gateway speaks NAT-PMP only (answered in NAT-PMP's format, "
                                 "result " +
                                     std::to_string(r->result) + ")"
                               : "the gateway speaks PCP version " + std::to_string(r->version) +
                                     " (result " + pcp::result_name(r->result) + ")");
    } else {
      ++counters_.ignored;
    }
    return;
  }
  if (r->opcode == static_cast<uint8_t>(pcp::Opcode::Announce)) {
    // Asked for (the epoch check) or not (a restarted server's announcement, RFC 6887 §14.1.3):
    // either way the epoch tells whether our mapping survived.
    if (r->result != static_cast<uint8_t>(pcp::Result::Success)) {
      ++counters_.ignored;
      return;
    }
    bool ours = pcp_exchange && exchange_->step == Step::PcpAnnounce;
    if (ours) {
      ++counters_.responses;
      exchange_.reset();
      epoch_check_at_ = next_epoch_check(now);
    }
    bool pcp_mapped = state_ == State::Mapped && mapping_->protocol == Protocol::Pcp;
    if (!pcp_mapped) {
      if (!ours) ++counters_.ignored;
      return;
    }
    uint32_t before = epochs_[0].server;
    if (!epoch_valid(now, Protocol::Pcp, r->epoch))
      restarted(now, Protocol::Pcp, before, r->epoch, false);
    return;
  }
  const auto& m = r->map;
  if (r->opcode != static_cast<uint8_t>(pcp::Opcode::Map) || !m || m->nonce != nonce_ ||
      m->protocol != pcp::kProtocolUdp || m->internal_port != config_.internal_port ||
      !pcp_exchange || exchange_->step != Step::PcpMap) {
    ++counters_.ignored; // not ours, or a late duplicate
    return;
  }
  Exchange x = *exchange_;
  if (x.purpose == Purpose::Delete && r->result == 0 && r->lifetime != 0) {
    ++counters_.ignored; // the late answer to the request that created it, not the deletion
    return;
  }
  ++counters_.responses;
  uint32_t before = epochs_[0].server;
  bool epoch_ok = epoch_valid(now, Protocol::Pcp, r->epoch);
  if (r->result != static_cast<uint8_t>(pcp::Result::Success) ||
      (x.purpose != Purpose::Delete && r->lifetime == 0)) {
    std::string why = r->result != 0 ? std::string(pcp::result_name(r->result)) + " (result " +
                                           std::to_string(r->result) + ")"
                                     : std::string("a lifetime of 0 s");
    error_hint_s_ = std::max(error_hint_s_, r->lifetime);
    switch (x.purpose) {
    case Purpose::Obtain:
      protocol_failed(now, "the gateway refused: " + why);
      break;
    case Purpose::Renew:
      lose(now, "the gateway refused the renewal: " + why);
      break;
    case Purpose::Delete:
      finish_stop(false, "the gateway refused the deletion: " + why);
      break;
    case Purpose::EpochCheck:
      break; // not a MAP exchange
    }
    return;
  }
  exchange_.reset();
  if (x.purpose == Purpose::Delete) {
    finish_stop(true, "deleted");
    return;
  }
  if (!epoch_ok && x.purpose == Purpose::Renew)
    restarted(now, Protocol::Pcp, before, r->epoch, true);
  mapped(now, Protocol::Pcp, pcp::address_of(m->external_address, m->external_port), r->lifetime,
         x.purpose);
}

void PortMapping::on_natpmp(Timestamp now, const NatPmpAnswer& a) {
  if (!exchange_ || exchange_->protocol != Protocol::NatPmp) {
    ++counters_.ignored;
    return;
  }
  Exchange x = *exchange_;
  bool expect_address = x.step == Step::NatPmpAddress;
  if (a.result == 0 && (a.public_address != expect_address ||
                        (!a.public_address && a.internal_port != config_.internal_port))) {
    ++counters_.ignored;
    return;
  }
  if (x.purpose == Purpose::Delete && a.result == 0 && a.lifetime != 0) {
    ++counters_.ignored; // the late answer to the request that created it, not the deletion
    return;
  }
  ++counters_.responses;
  uint32_t before = epochs_[1].server;
  bool epoch_ok = epoch_valid(now, Protocol::NatPmp, a.epoch);
  bool mapped_here = state_ == State::Mapped && mapping_->protocol == Protocol::NatPmp;
  std::string why;
  if (a.result != 0)
    why = std::string(natpmp_result_name(a.result)) + " (result " + std::to_string(a.result) + ")";
  else if (expect_address && a.public_ip == 0)
    why = "no external address (0.0.0.0)";
  else if (!expect_address && x.purpose != Purpose::Delete && a.lifetime == 0)
    why = "a lifetime of 0 s";
  if (!why.empty()) {
    switch (x.purpose) {
    case Purpose::Obtain:
      protocol_failed(now, "the gateway refused: " + why);
      break;
    case Purpose::Renew:
      lose(now, "the gateway refused the renewal: " + why);
      break;
    case Purpose::Delete:
      finish_stop(false, "the gateway refused the deletion: " + why);
      break;
    case Purpose::EpochCheck:
      exchange_.reset();
      epoch_check_at_ = next_epoch_check(now);
      break;
    }
    return;
  }
  if (expect_address) {
    uint32_t old_ip = natpmp_public_ip_;
    natpmp_public_ip_ = a.public_ip;
    if (x.purpose == Purpose::Obtain) {
      begin_exchange(now, Protocol::NatPmp, Step::NatPmpMap, Purpose::Obtain);
      return;
    }
    // The epoch check while mapped.
    exchange_.reset();
    epoch_check_at_ = next_epoch_check(now);
    if (!mapped_here) return;
    if (!epoch_ok) {
      restarted(now, Protocol::NatPmp, before, a.epoch, false);
    } else if (a.public_ip != old_ip) {
      // The gateway's external address changed (RFC 6886 §3.2.1): the port stays ours.
      Mapping m = *mapping_;
      m.external = Address::ipv4(a.public_ip, m.external.port());
      m.obtained_at = now;
      mapping_ = m;
      last_external_ = m.external;
      ++counters_.changes;
      actions_.push_back(Obtained{m, true});
    }
    return;
  }
  exchange_.reset();
  if (x.purpose == Purpose::Delete) {
    finish_stop(true, "deleted");
    return;
  }
  if (!epoch_ok && x.purpose == Purpose::Renew)
    restarted(now, Protocol::NatPmp, before, a.epoch, true);
  mapped(now, Protocol::NatPmp, Address::ipv4(natpmp_public_ip_, a.external_port), a.lifetime,
         x.purpose);
}

void PortMapping::on_upnp(Timestamp now, const UpnpAnswer& a) {
  if (!exchange_ || exchange_->step != Step::Upnp || exchange_->upnp_job != a.id) {
    ++counters_.ignored;
    // A job given up on that mapped a port after all: the port must not stay open. The worker
    // deletes what it mapped last, so only while no UPnP-IGD mapping of ours is in use.
    bool upnp_in_use = (mapping_ && mapping_->protocol == Protocol::Upnp) ||
                       (exchange_ && exchange_->step == Step::Upnp);
    if (stale_jobs_.erase(a.id) && a.ok && !upnp_in_use && state_ != State::Stopped) {
      UpnpJob job;
      job.id = ++next_job_;
      job.remove = true;
      job.internal_port = config_.internal_port;
      ++counters_.requests;
      actions_.push_back(RunUpnp{job});
    }
    return;
  }
  ++counters_.responses;
  Exchange x = *exchange_;
  exchange_.reset();
  switch (x.purpose) {
  case Purpose::Delete:
    if (a.ok)
      finish_stop(true, "deleted");
    else
      finish_stop(false, "the deletion failed: " + a.error);
    return;
  case Purpose::Obtain:
    if (!a.ok) {
      protocol_failed(now, a.error);
      return;
    }
    break;
  case Purpose::Renew:
    if (!a.ok) {
      renewal_missed(now);
      return;
    }
    break;
  case Purpose::EpochCheck:
    return;
  }
  mapped(now, Protocol::Upnp, a.external, a.lifetime, x.purpose);
}

void PortMapping::on_unreachable(Timestamp now, Protocol p) {
  if (p == Protocol::Upnp || !exchange_ || exchange_->protocol != p) return;
  switch (exchange_->purpose) {
  case Purpose::Obtain:
    port_refused_ = true; // NAT-PMP listens on the same port: not worth a try this round
    protocol_failed(now, gateway_text() + " refused port 5351 (ICMP port unreachable)");
    break;
  case Purpose::Delete:
    finish_stop(false, gateway_text() + " refused port 5351");
    break;
  case Purpose::Renew:
  case Purpose::EpochCheck:
    break; // the retransmissions go on; a gateway that comes back answers one of them
  }
}

// ---------------------------------------------------------------------------------------------
// Mapped, lost, restarted, stopped

Timestamp PortMapping::next_epoch_check(Timestamp now) const {
  if (config_.epoch_check.count() <= 0) return kNever;
  return add(now, static_cast<Timestamp>(config_.epoch_check.count()) * kSecond);
}

Timestamp PortMapping::renewal_interval(const Mapping& m) const {
  uint64_t s = m.lifetime_s > 0 ? m.lifetime_s : static_cast<uint64_t>(config_.lifetime.count());
  return std::max<Timestamp>(s * kSecond / 2, kSecond);
}

void PortMapping::mapped(Timestamp now, Protocol p, const Address& external, uint32_t lifetime,
                         Purpose purpose) {
  bool had = mapping_.has_value();
  bool changed = had && !(mapping_->external == external && mapping_->protocol == p);
  Mapping m;
  m.protocol = p;
  m.external = external;
  m.internal_port = config_.internal_port;
  m.lifetime_s = lifetime;
  m.obtained_at = had && !changed ? mapping_->obtained_at : now;
  m.renewed_at = now;
  m.expires_at = lifetime > 0 ? add(now, static_cast<Timestamp>(lifetime) * kSecond) : kNever;
  mapping_ = m;
  last_external_ = external;
  state_ = State::Mapped;
  backoff_.reset();
  round_failures_.clear();
  renew_at_ = add(now, renewal_interval(m));
  epoch_check_at_ = p != Protocol::Upnp ? next_epoch_check(now) : kNever;
  if (purpose == Purpose::Renew && !changed) {
    ++counters_.renewals;
    actions_.push_back(Renewed{m});
    return;
  }
  ++(changed ? counters_.changes : counters_.obtained);
  actions_.push_back(Obtained{m, changed});
}

void PortMapping::lose(Timestamp now, const std::string& reason) {
  Mapping old = *mapping_;
  mapping_.reset();
  exchange_.reset();
  ++counters_.losses;
  actions_.push_back(Lost{old, reason});
  begin_round(now);
}

// RFC 6887 §8.5 (RFC 6886 §3.6 is the same idea): the server's epoch must advance with our
// clock, within 2 s and 1/16 either way. Going back more than 1 s, or drifting further, means
// the server lost its state.
bool PortMapping::epoch_valid(Timestamp now, Protocol p, uint32_t server) {
  Epoch& e = epochs_[epoch_slot(p)];
  bool valid = true;
  if (e.known) {
    int64_t prev = e.server, cur = server;
    if (cur < prev - 1) {
      valid = false;
    } else {
      int64_t client_delta = static_cast<int64_t>((now - e.client) / kSecond);
      int64_t server_delta = cur - prev;
      if (client_delta + 2 < server_delta - server_delta / 16 ||
          server_delta + 2 < client_delta - client_delta / 16)
        valid = false;
    }
  }
  e = Epoch{true, server, now};
  return valid;
}

void PortMapping::restarted(Timestamp now, Protocol p, uint32_t before, uint32_t epoch,
                            bool renewed) {
  ++counters_.gateway_restarts;
  actions_.push_back(GatewayRestarted{p, before, epoch});
  // Its mappings are gone; unless this very answer renewed ours, ask again now.
  if (!renewed && state_ == State::Mapped) {
    exchange_.reset();
    renew_at_ = now;
    handle_timeout(now);
  }
}

void PortMapping::stop(Timestamp now) {
  switch (state_) {
  case State::Stopping:
  case State::Stopped:
    return;
  case State::Idle:
  case State::Waiting:
    finish_stop(false, "nothing was mapped");
    return;
  case State::Mapped: {
    Protocol p = mapping_->protocol;
    state_ = State::Stopping;
    begin_exchange(now, p,
                   p == Protocol::Pcp      ? Step::PcpMap
                   : p == Protocol::NatPmp ? Step::NatPmpMap
                                           : Step::Upnp,
                   Purpose::Delete);
    return;
  }
  case State::Trying: {
    // A request in flight may have created a mapping whose answer has not come yet: delete it
    // too. The public address request creates nothing.
    Exchange x = *exchange_;
    if (x.step == Step::NatPmpAddress) {
      finish_stop(false, "nothing was mapped");
      return;
    }
    state_ = State::Stopping;
    begin_exchange(now, x.protocol, x.step, Purpose::Delete);
    return;
  }
  }
}

void PortMapping::finish_stop(bool deleted, const std::string& detail) {
  exchange_.reset();
  state_ = State::Stopped;
  auto m = mapping_;
  mapping_.reset();
  if (deleted) ++counters_.deletions;
  actions_.push_back(Stopped{deleted, detail, m});
}

std::string PortMapping::gateway_text() const {
  return config_.gateway ? config_.gateway->ip_string() : std::string("the gateway");
}

} // namespace ztna::portmap
