// The paths of one end-to-end session as ngtcp2 sees them (DESIGN D3), sans-IO.
//
// ngtcp2 tells paths apart by their (local, remote) addresses. Ours are virtual local addresses
// from the discard-only prefix 100::/64 (RFC 6666), never a real interface address:
//
//   [100::1]:g   the relay path of generation g. Packets on it travel in relay frames to the
//                path's remote address, the intermediate (docs/protocol.md §3). Each move onto a
//                relay opens the next generation, so that the move is a QUIC migration with path
//                validation: the flow restarts at once instead of waiting out the backed-off loss
//                timers of packets lost while the relay was gone (DESIGN D10), and a return to an
//                intermediate used before is a new path (ngtcp2 0.12.1 will not move back onto a
//                path it left while it still validates that path).
//   [100::2]:n   the client's direct path n: one per (socket, remote address) it migrated to.
//   [100::3]:k   any other direct path on socket k: the server's (it follows the client's
//                migrations, RFC 9000 §9.3) and packets from a remote the client never moved to.
//
// Sockets: 0 is the daemon's shared socket (DESIGN D1); 1 and up are a session's probe sockets
// (birthday probing, the one exception to D1).
//
// This class maps packets in (a socket and a source, or a relay frame) to the path ngtcp2 knows,
// routes packets out (a path to a socket, a destination and whether to frame), and chooses the
// paths of the client's migrations. It sends nothing and owns no socket.
#pragma once

#include "net/address.hpp"
#include "quic/connection.hpp"

#include <cstdint>
#include <optional>
#include <vector>

namespace ztna::path {

using SocketId = uint16_t;
constexpr SocketId kSharedSocket = 0;

enum class Role { Client, Server };

// Where a packet on a path goes.
struct Route {
  SocketId socket = kSharedSocket;
  Address to;
  bool relay = false; // wrapped in a relay frame for the session
};

// The address scheme. Each is a comparison of the 16 address bytes: no allocation.
Address relay_local(uint16_t generation);
Address client_direct_local(uint16_t n);
Address socket_local(SocketId socket);
bool is_relay_local(const Address& a);
bool is_virtual_local(const Address& a); // any of the three

class SessionPaths {
public:
  // The session starts on the relay through `intermediate`, relay generation 1.
  SessionPaths(Role role, const Address& intermediate);

  Role role() const { return role_; }

  // --- moves ---
  // The relay path in use (or the one a fallback goes to).
  const quic::Path& relay_path() const { return relay_; }
  // Opens the next relay path, through `intermediate`, and returns it. The session is on the
  // relay from now on (the client migrates at once; the server follows).
  const quic::Path& next_relay_path(const Address& intermediate);
  // Client: the path of a move onto `remote` out of `socket` (the same one each time for the same
  // pair), remembered as the direct path most recently moved to. `immediate`: the move does not
  // wait for validation, so the path is current at once.
  quic::Path direct_path(const Address& remote, SocketId socket = kSharedSocket,
                         bool immediate = false);
  // QUIC path validation ended for `p` (RFC 9000 §8.2). A validated direct path that is the one
  // most recently moved to is the current direct path; one that failed is not.
  void on_path_validated(const quic::Path& p, bool success);
  // Client: the direct path moved to most recently is validated and in use.
  bool on_direct() const { return on_direct_; }
  const quic::Path& last_direct() const { return last_direct_; }

  // --- packets in ---
  // A relay frame from intermediate `from`; `current` is the path ngtcp2 is on.
  quic::Path map_relayed(const Address& from, const quic::Path& current) const;
  // A datagram from `from` on `socket`.
  quic::Path map_direct(SocketId socket, const Address& from) const;

  // --- packets out ---
  // nullopt for a path this session never made (nothing is sent).
  std::optional<Route> route(const quic::Path& p) const;

  // The probe socket `socket` is closed: its paths go, unless one is the current direct path.
  void forget_socket(SocketId socket);
  size_t direct_paths() const { return directs_.size(); }

  // The most direct paths the client remembers; beyond it the oldest unused one is forgotten.
  static constexpr size_t kMaxDirectPaths = 32;

private:
  struct Direct {
    uint16_t n;
    SocketId socket;
    Address remote;
  };
  const Direct* find_direct(SocketId socket, const Address& remote) const;
  const Direct* find_direct(uint16_t n) const;

  Role role_;
  quic::Path relay_;
  uint16_t relay_generation_ = 1;
  std::vector<Direct> directs_; // oldest first
  uint16_t next_direct_ = 0;
  quic::Path last_direct_;
  SocketId last_direct_socket_ = kSharedSocket;
  bool on_direct_ = false;
};

} // namespace ztna::path
