#include "path/session_paths.hpp"

#include <algorithm>
#include <cstring>

namespace ztna::path {

namespace {

// The last byte of the virtual addresses 100::1, 100::2 and 100::3.
enum : uint8_t { kRelay = 1, kClientDirect = 2, kSocket = 3 };

Address virtual_address(uint8_t kind, uint16_t port) {
  sockaddr_in6 sa{};
  sa.sin6_family = AF_INET6;
  sa.sin6_addr.s6_addr[0] = 0x01; // 100::/64, RFC 6666
  sa.sin6_addr.s6_addr[15] = kind;
  sa.sin6_port = htons(port);
  return Address::from_sockaddr(reinterpret_cast<const sockaddr*>(&sa), sizeof sa);
}

// The kind of a virtual address, 0 for any other address.
uint8_t virtual_kind(const Address& a) {
  if (!a.is_v6()) return 0;
  const auto* b = reinterpret_cast<const sockaddr_in6*>(a.sa())->sin6_addr.s6_addr;
  static const uint8_t prefix[15] = {0x01};
  if (std::memcmp(b, prefix, sizeof prefix) != 0) return 0;
  return b[15] >= kRelay && b[15] <= kSocket ? b[15] : 0;
}

} // namespace

Address relay_local(uint16_t generation) {
  return virtual_address(kRelay, generation);
}

Address client_direct_local(uint16_t n) {
  return virtual_address(kClientDirect, n);
}

Address socket_local(SocketId socket) {
  return virtual_address(kSocket, socket);
}

bool is_relay_local(const Address& a) {
  return virtual_kind(a) == kRelay;
}

bool is_virtual_local(const Address& a) {
  return virtual_kind(a) != 0;
}

SessionPaths::SessionPaths(Role role, const Address& intermediate)
    : role_(role), relay_{relay_local(1), intermediate} {}

const quic::Path& SessionPaths::next_relay_path(const Address& intermediate) {
  on_direct_ = false;
  // Port 0 is never a relay path: after 65535 moves, start again at 1.
  relay_generation_ = relay_generation_ == UINT16_MAX ? 1 : relay_generation_ + 1;
  relay_ = {relay_local(relay_generation_), intermediate};
  return relay_;
}

const SessionPaths::Direct* SessionPaths::find_direct(SocketId socket,
                                                      const Address& remote) const {
  for (const auto& d : directs_)
    if (d.socket == socket && d.remote == remote) return &d;
  return nullptr;
}

const SessionPaths::Direct* SessionPaths::find_direct(uint16_t n) const {
  for (const auto& d : directs_)
    if (d.n == n) return &d;
  return nullptr;
}

quic::Path SessionPaths::direct_path(const Address& remote, SocketId socket, bool immediate) {
  const Direct* d = find_direct(socket, remote);
  if (!d) {
    if (directs_.size() >= kMaxDirectPaths) {
      // The oldest that is not the current direct path: ngtcp2 has left it long ago.
      auto old = std::find_if(directs_.begin(), directs_.end(), [&](const Direct& x) {
        return client_direct_local(x.n) != last_direct_.local;
      });
      if (old != directs_.end()) directs_.erase(old);
    }
    // Port 0 is never a path; numbers in use are skipped after a wrap.
    do {
      next_direct_ = next_direct_ == UINT16_MAX ? 1 : next_direct_ + 1;
    } while (find_direct(next_direct_));
    directs_.push_back({next_direct_, socket, remote});
    d = &directs_.back();
  }
  last_direct_ = {client_direct_local(d->n), remote};
  last_direct_socket_ = socket;
  on_direct_ = immediate;
  return last_direct_;
}

void SessionPaths::on_path_validated(const quic::Path& p, bool success) {
  if (is_relay_local(p.local)) return;
  const bool latest = p.local == last_direct_.local && p.remote == last_direct_.remote;
  if (success)
    on_direct_ = latest;
  else if (latest)
    on_direct_ = false;
}

quic::Path SessionPaths::map_relayed(const Address& from, const quic::Path& current) const {
  if (role_ == Role::Server) return {relay_.local, from};
  // After each migration the server's ngtcp2 validates the path it left (the relay), and it
  // will not move back onto that path while the validation runs (up to seconds). Our ngtcp2
  // ignores packets from a path that is not current, so while we are direct, relay packets are
  // handed over as the current path's: the PATH_RESPONSE goes out on the direct path (ngtcp2
  // 0.12.1 servers match the data, not the path) and a fallback is followed at once.
  if (on_direct_) return last_direct_;
  // On the relay: the relay path ngtcp2 is on (a failed validation of a new relay path takes
  // it back to the one before).
  return is_relay_local(current.local) ? current : relay_;
}

quic::Path SessionPaths::map_direct(SocketId socket, const Address& from) const {
  if (role_ == Role::Client) {
    // The hot path: no lookup.
    if (socket == last_direct_socket_ && from == last_direct_.remote) return last_direct_;
    if (const Direct* d = find_direct(socket, from)) return {client_direct_local(d->n), from};
  }
  return {socket_local(socket), from};
}

std::optional<Route> SessionPaths::route(const quic::Path& p) const {
  if (p.local == last_direct_.local && !p.local.empty())
    return Route{last_direct_socket_, p.remote, false};
  const auto* sa6 = reinterpret_cast<const sockaddr_in6*>(p.local.sa());
  switch (virtual_kind(p.local)) {
  case kRelay:
    return Route{kSharedSocket, p.remote, true};
  case kClientDirect:
    if (const Direct* d = find_direct(ntohs(sa6->sin6_port))) return Route{d->socket, p.remote};
    return std::nullopt;
  case kSocket:
    return Route{static_cast<SocketId>(ntohs(sa6->sin6_port)), p.remote};
  default:
    return std::nullopt;
  }
}

void SessionPaths::forget_socket(SocketId socket) {
  if (socket == kSharedSocket) return;
  std::erase_if(directs_, [&](const Direct& d) {
    return d.socket == socket && client_direct_local(d.n) != last_direct_.local;
  });
}

} // namespace ztna::path
