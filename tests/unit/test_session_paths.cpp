// path::SessionPaths: the virtual addresses of a session's paths, the mapping of packets in, the
// routes of packets out, and the paths of the client's moves (DESIGN D3).
#include <catch2/catch.hpp>

#include "path/session_paths.hpp"

using namespace ztna;

using path::client_direct_local;
using path::is_relay_local;
using path::is_virtual_local;
using path::kSharedSocket;
using path::relay_local;
using path::SessionPaths;
using path::socket_local;

namespace {

Address addr(const char* text) {
  return *Address::parse(text);
}

const Address kIntermediate = addr("203.0.113.10:4433");
const Address kOther = addr("203.0.113.11:4433");
const Address kPeerA = addr("198.51.100.7:40000");
const Address kPeerB = addr("198.51.100.8:40001");

bool same(const quic::Path& a, const quic::Path& b) {
  return a.local == b.local && a.remote == b.remote;
}

} // namespace

TEST_CASE("virtual local addresses come from 100::/64 and say which kind they are") {
  CHECK(relay_local(7) == addr("[100::1]:7"));
  CHECK(client_direct_local(3) == addr("[100::2]:3"));
  CHECK(socket_local(0) == addr("[100::3]:0"));
  CHECK(is_relay_local(relay_local(1)));
  CHECK_FALSE(is_relay_local(client_direct_local(1)));
  CHECK_FALSE(is_relay_local(socket_local(1)));
  CHECK(is_virtual_local(client_direct_local(1)));
  CHECK(is_virtual_local(socket_local(9)));
  // Real addresses, and their neighbours in the prefix, are not ours.
  CHECK_FALSE(is_virtual_local(addr("[100::4]:1")));
  CHECK_FALSE(is_virtual_local(addr("[::1]:1")));
  CHECK_FALSE(is_virtual_local(addr("1.0.0.1:1")));
  CHECK_FALSE(is_virtual_local(kPeerA));
  CHECK_FALSE(is_relay_local(Address{}));
}

TEST_CASE("a session starts on the relay, whose packets leave framed toward the intermediate") {
  for (auto role : {path::Role::Client, path::Role::Server}) {
    SessionPaths p(role, kIntermediate);
    CHECK(same(p.relay_path(), {relay_local(1), kIntermediate}));
    auto r = p.route(p.relay_path());
    REQUIRE(r);
    CHECK(r->relay);
    CHECK(r->socket == kSharedSocket);
    CHECK(r->to == kIntermediate);
    CHECK_FALSE(p.on_direct());
  }
}

TEST_CASE("the client's direct paths: one virtual address per socket and remote, stable") {
  SessionPaths p(path::Role::Client, kIntermediate);
  const auto a = p.direct_path(kPeerA);
  CHECK(a.remote == kPeerA);
  CHECK(is_virtual_local(a.local));
  CHECK_FALSE(is_relay_local(a.local));
  CHECK(same(p.last_direct(), a));
  const auto b = p.direct_path(kPeerB);
  CHECK_FALSE(a.local == b.local);
  // Back to A: the same path as before, so ngtcp2 finds the path it knows.
  CHECK(same(p.direct_path(kPeerA), a));
  // The same remote out of a probe socket is another path.
  const auto a3 = p.direct_path(kPeerA, 3);
  CHECK_FALSE(a3.local == a.local);
  CHECK(p.direct_paths() == 3);

  auto ra = p.route(a);
  REQUIRE(ra);
  CHECK_FALSE(ra->relay);
  CHECK(ra->socket == kSharedSocket);
  CHECK(ra->to == kPeerA);
  auto r3 = p.route(a3);
  REQUIRE(r3);
  CHECK(r3->socket == 3);
  CHECK(r3->to == kPeerA);
}

TEST_CASE("packets in map to the paths ngtcp2 knows") {
  SessionPaths p(path::Role::Client, kIntermediate);
  const auto a = p.direct_path(kPeerA);
  const auto b3 = p.direct_path(kPeerB, 3);
  CHECK(same(p.map_direct(kSharedSocket, kPeerA), a));
  CHECK(same(p.map_direct(3, kPeerB), b3));
  // From a remote never moved to (or on another socket): the socket's own path, which routes
  // back out of that socket.
  const auto stray = p.map_direct(kSharedSocket, kPeerB);
  CHECK(same(stray, {socket_local(kSharedSocket), kPeerB}));
  auto r = p.route(stray);
  REQUIRE(r);
  CHECK(r->socket == kSharedSocket);
  CHECK(r->to == kPeerB);
  CHECK_FALSE(r->relay);
}

TEST_CASE("while the client is direct, relay packets are handed over as the direct path's") {
  SessionPaths p(path::Role::Client, kIntermediate);
  const quic::Path relay1 = p.relay_path();
  // On the relay: the relay path ngtcp2 is on.
  CHECK(same(p.map_relayed(kIntermediate, relay1), relay1));
  const auto a = p.direct_path(kPeerA);
  // Migrating, not yet validated: ngtcp2 is still on the relay.
  CHECK(same(p.map_relayed(kIntermediate, relay1), relay1));
  p.on_path_validated(a, true);
  CHECK(p.on_direct());
  CHECK(same(p.map_relayed(kIntermediate, a), a));
  // A failed validation elsewhere changes nothing; a validated relay path neither.
  p.on_path_validated(p.relay_path(), true);
  CHECK(p.on_direct());
  // Fallback: a new relay path, at once.
  const auto relay2 = p.next_relay_path(kOther);
  CHECK_FALSE(p.on_direct());
  CHECK(same(relay2, {relay_local(2), kOther}));
  // ngtcp2 still on the direct path (validation of relay2 running): the new relay path.
  CHECK(same(p.map_relayed(kOther, a), relay2));
  // ngtcp2 went back to relay1 after a failed validation of relay2: relay1.
  CHECK(same(p.map_relayed(kIntermediate, relay1), relay1));
}

TEST_CASE("a validated direct path other than the latest move is not the current one") {
  SessionPaths p(path::Role::Client, kIntermediate);
  const auto a = p.direct_path(kPeerA);
  p.direct_path(kPeerB); // the latest move
  p.on_path_validated(a, true);
  CHECK_FALSE(p.on_direct());
}

TEST_CASE("relay generations never use port 0") {
  SessionPaths p(path::Role::Client, kIntermediate);
  for (int i = 0; i < 65534; ++i)
    p.next_relay_path(kIntermediate);
  CHECK(p.relay_path().local == relay_local(65535));
  CHECK(p.next_relay_path(kIntermediate).local == relay_local(1));
}

TEST_CASE("the server follows: relay frames on its relay path, direct packets per socket") {
  SessionPaths p(path::Role::Server, kIntermediate);
  // Relay frames always arrive on the relay path of the intermediate that relays the session.
  CHECK(same(p.map_relayed(kIntermediate, {}), {relay_local(1), kIntermediate}));
  p.next_relay_path(kOther);
  CHECK(same(p.map_relayed(kOther, {}), {relay_local(2), kOther}));
  // Direct packets: the socket's path, whatever the remote; routed back out of that socket.
  const auto d = p.map_direct(5, kPeerA);
  CHECK(same(d, {socket_local(5), kPeerA}));
  auto r = p.route(d);
  REQUIRE(r);
  CHECK(r->socket == 5);
  CHECK(r->to == kPeerA);
  CHECK_FALSE(r->relay);
}

TEST_CASE("paths the session never made are not routed") {
  SessionPaths p(path::Role::Client, kIntermediate);
  CHECK_FALSE(p.route({client_direct_local(77), kPeerA}));
  CHECK_FALSE(p.route({addr("10.0.0.1:5"), kPeerA}));
  CHECK_FALSE(p.route({Address{}, kPeerA}));
}

TEST_CASE("the client remembers a bounded number of direct paths, never losing the current") {
  SessionPaths p(path::Role::Client, kIntermediate);
  const auto first = p.direct_path(kPeerA);
  p.on_path_validated(first, true);
  for (uint16_t port = 1; port <= 2 * SessionPaths::kMaxDirectPaths; ++port) {
    Address r = kPeerB;
    r.set_port(port);
    p.direct_path(r);
    CHECK(p.direct_paths() <= SessionPaths::kMaxDirectPaths);
  }
  // The last move is routable; the earliest ones have been forgotten.
  CHECK(p.route(p.last_direct()));
  Address early = kPeerB;
  early.set_port(1);
  CHECK(p.map_direct(kSharedSocket, early).local == socket_local(kSharedSocket));
}

TEST_CASE("closing a probe socket forgets its paths, but not the current one") {
  SessionPaths p(path::Role::Client, kIntermediate);
  const auto lost = p.direct_path(kPeerB, 4);
  const auto won = p.direct_path(kPeerA, 3);
  p.on_path_validated(won, true);
  p.forget_socket(4);
  p.forget_socket(3);
  CHECK_FALSE(p.route(lost));
  auto r = p.route(won);
  REQUIRE(r);
  CHECK(r->socket == 3);
  CHECK(same(p.map_direct(3, kPeerA), won));
}
