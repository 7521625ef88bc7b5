#include "stun/binding_server.hpp"

#include "wire/stun_message.hpp"

#include <algorithm>
#include <stdexcept>

namespace ztna::stun {

namespace {

// An answer may be at most this many times the size of its request: a spoofed source gets
// little more than it sent (the bound QUIC puts on unvalidated addresses, RFC 9000 §8).
constexpr size_t kAmplificationFactor = 3;

bool unspecified(const Address& a) {
  const std::string ip = a.ip_bytes();
  return std::all_of(ip.begin(), ip.end(), [](char c) { return c == 0; });
}

bool has_ip(const Address& a) {
  const size_t n = a.ip_bytes().size();
  return n == 4 || n == 16;
}

// One IPv6 host usually owns a whole /64, so that is one source (as for QUIC handshakes).
std::string source_key(const Address& a) {
  std::string ip = a.ip_bytes();
  if (ip.size() == 16) ip.resize(8);
  return ip;
}

Address with_port(Address a, uint16_t port) {
  a.set_port(port);
  return a;
}

unsigned bits(Socket s) {
  return static_cast<unsigned>(s);
}

} // namespace

const char* to_string(Socket s) {
  switch (s) {
  case Socket::Primary:
    return "primary";
  case Socket::AlternatePort:
    return "alternate_port";
  case Socket::AlternateAddress:
    return "alternate_address";
  case Socket::AlternateBoth:
    return "alternate_both";
  }
  return "?";
}

BindingServer::BindingServer(Config config)
    : config_(std::move(config)), global_(config_.global_rate, config_.global_burst) {
  if (!has_ip(config_.primary) || config_.primary.port() == 0)
    throw std::invalid_argument("STUN: the primary address needs an IP and a port");
  if (config_.alternate_port &&
      (*config_.alternate_port == 0 || *config_.alternate_port == config_.primary.port()))
    throw std::invalid_argument("STUN: the alternate port must be a port other than the "
                                "primary one (" +
                                std::to_string(config_.primary.port()) + ")");
  if (config_.alternate_address) {
    const Address& alt = *config_.alternate_address;
    if (!has_ip(alt) || unspecified(alt))
      throw std::invalid_argument("STUN: the alternate address must be a concrete IP");
    if (alt.is_v6() != config_.primary.is_v6())
      throw std::invalid_argument("STUN: the alternate address " + alt.ip_string() +
                                  " is not of the primary address's family");
    if (alt.ip_bytes() == config_.primary.ip_bytes())
      throw std::invalid_argument("STUN: the alternate address must differ from the primary "
                                  "one (" +
                                  alt.ip_string() + ")");
  }
  if (!(config_.source_rate > 0) || !(config_.source_burst >= 1) || !(config_.global_rate > 0) ||
      !(config_.global_burst >= 1))
    throw std::invalid_argument("STUN: rates must be above 0 and bursts at least 1");
  if (config_.max_sources == 0)
    throw std::invalid_argument("STUN: the per-source table needs room for one source");
  if (config_.software.size() > wire::kMaxStunSoftware)
    throw std::invalid_argument("STUN: SOFTWARE longer than 763 bytes");
  rfc5780_ = config_.alternate_port && config_.alternate_address && !unspecified(config_.primary);
}

bool BindingServer::has(Socket s) const {
  const bool port = bits(s) & 1, address = bits(s) & 2;
  return (!port || config_.alternate_port) && (!address || config_.alternate_address);
}

Address BindingServer::address(Socket s) const {
  const Address ip = (bits(s) & 2) ? *config_.alternate_address : config_.primary;
  return with_port(ip, (bits(s) & 1) ? *config_.alternate_port : config_.primary.port());
}

bool BindingServer::admit(uint64_t now_ns, const Address& from) {
  std::string key = source_key(from);
  auto it = sources_.find(key);
  if (it == sources_.end()) {
    if (sources_.size() >= config_.max_sources) {
      sources_.erase(lru_.back().key);
      lru_.pop_back();
      counters_.sources_evicted++;
    }
    lru_.push_front(Source{key, RateLimiter(config_.source_rate, config_.source_burst)});
    it = sources_.emplace(std::move(key), lru_.begin()).first;
  } else {
    lru_.splice(lru_.begin(), lru_, it->second);
  }
  // The source first: one busy source must not spend the global budget that others share.
  if (!it->second->bucket.allow(now_ns)) {
    counters_.dropped_source_limit++;
    return false;
  }
  if (!global_.allow(now_ns)) {
    counters_.dropped_global_limit++;
    return false;
  }
  return true;
}

std::optional<BindingServer::Reply> BindingServer::on_datagram(uint64_t now_ns, Socket on,
                                                               const Address& from,
                                                               std::span<const uint8_t> datagram) {
  if (!has(on)) throw std::invalid_argument("STUN: no " + std::string(to_string(on)) + " socket");
  if (!has_ip(from)) throw std::invalid_argument("STUN: a source without an IP address");
  counters_.received++;
  if (datagram.size() > wire::kMaxStunDatagram) {
    counters_.dropped_oversize++;
    return std::nullopt;
  }
  const wire::StunInspection in = wire::inspect_stun(datagram);
  using Verdict = wire::StunInspection::Verdict;
  if (in.verdict == Verdict::Invalid) {
    counters_.dropped_invalid++;
    return std::nullopt;
  }
  // Answering a response or an indication could start a loop between two servers (RFC 8489
  // §6.3.2, §6.3.3: they are never answered).
  if (in.cls != wire::StunClass::Request) {
    counters_.dropped_not_request++;
    return std::nullopt;
  }
  if (in.credentials) {
    counters_.dropped_credentials++;
    return std::nullopt;
  }
  if (!admit(now_ns, from)) return std::nullopt;

  const size_t budget = kAmplificationFactor * datagram.size();
  Reply reply{on, from, {}};
  auto error = [&](uint16_t code, const char* reason,
                   std::vector<uint16_t> unknown) -> std::optional<Reply> {
    wire::StunMessage e;
    e.cls = wire::StunClass::ErrorResponse;
    e.method = in.method;
    e.transaction_id = in.transaction_id;
    e.error_code = code;
    e.error_reason = reason;
    e.unknown_attributes = std::move(unknown);
    if (wire::stun_encoded_size(e, false) > budget) e.error_reason.clear();
    if (wire::stun_encoded_size(e, false) > budget) {
      counters_.dropped_amplification++;
      return std::nullopt;
    }
    (code == 420 ? counters_.unknown_attribute : counters_.bad_request)++;
    if (reply.to.port() != from.port()) counters_.answered_to_port++;
    reply.datagram = wire::encode_stun(e, {});
    return reply;
  };

  // RFC 8489 §6.3.1: a method we do not serve, or an attribute we cannot read, is a 400.
  if (in.method != wire::kStunBindingMethod || in.verdict == Verdict::BadAttribute)
    return error(400, "Bad Request", {});
  const wire::StunMessage& m = *in.message;
  if (m.response_port) {
    if (*m.response_port == 0) return error(400, "Bad Request", {});
    // RFC 5780 §6.1: to the source IP, at this port. Only ever the requester's own IP, within
    // its own rate limit and 3x budget.
    reply.to.set_port(*m.response_port);
  }
  // RFC 8489 §6.3.1; PADDING (RFC 5780 §7.6) lands here too: we do not pad answers up to the
  // MTU, which would be an amplifier.
  if (in.verdict == Verdict::UnknownRequired) return error(420, "Unknown Attribute", in.unknown);
  if (m.change_request) {
    // RFC 5780 §6.1: without an alternate address and port, CHANGE-REQUEST is not understood.
    if (!rfc5780_) return error(420, "Unknown Attribute", {wire::kStunAttrChangeRequest});
    reply.via = static_cast<Socket>(bits(on) ^ (m.change_request->change_ip ? 2u : 0u) ^
                                    (m.change_request->change_port ? 1u : 0u));
  }

  wire::StunMessage s;
  s.cls = wire::StunClass::SuccessResponse;
  s.method = wire::kStunBindingMethod;
  s.transaction_id = in.transaction_id;
  s.xor_mapped_address = from;
  if (wire::stun_encoded_size(s, false) > budget) {
    counters_.dropped_amplification++; // cannot happen for a request of 20 bytes or more
    return std::nullopt;
  }
  // Optional attributes, most useful first; each goes in only if the answer still fits.
  bool trimmed = false;
  auto offer = [&](auto& field, auto value) {
    field = std::move(value);
    if (wire::stun_encoded_size(s, false) <= budget) return;
    field.reset();
    trimmed = true;
  };
  // OTHER-ADDRESS: where the client sends its next tests; always relative to the socket the
  // request arrived on (RFC 5780 §6.1, table).
  if (rfc5780_) offer(s.other_address, address(static_cast<Socket>(bits(on) ^ 3u)));
  const Address origin = address(reply.via);
  if (!unspecified(origin)) offer(s.response_origin, origin);
  // MAPPED-ADDRESS for clients older than RFC 5389; RFC 5780 §6.1 asks for it too.
  offer(s.mapped_address, from);
  if (!config_.software.empty()) offer(s.software, config_.software);

  counters_.answered++;
  if (reply.via != on) counters_.answered_changed++;
  if (reply.to.port() != from.port()) counters_.answered_to_port++;
  if (trimmed) counters_.answers_trimmed++;
  reply.datagram = wire::encode_stun(s, {});
  return reply;
}

} // namespace ztna::stun
