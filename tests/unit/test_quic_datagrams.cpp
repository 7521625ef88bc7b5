// quic::Connection DATAGRAM frames (RFC 9221), over the in-memory link.
#include <catch2/catch.hpp>

#include "quic_harness.hpp"

using namespace ztna;
using namespace ztna::test;

namespace {

// The largest payload send_datagram() takes with the default 1400-byte packets.
constexpr size_t kMaxPayload = 1400 - 64;

Bytes payload(size_t n, uint8_t seed) {
  Bytes out(n);
  for (size_t i = 0; i < n; ++i)
    out[i] = static_cast<uint8_t>(seed + i * 7);
  return out;
}

void enable_datagrams(QuicPair& q) {
  q.client_config.datagrams = true;
  q.server_config.datagrams = true;
}

} // namespace

TEST_CASE("QUIC datagrams make a round trip", "[quic][datagram]") {
  QuicPair q;
  enable_datagrams(q);
  REQUIRE(q.handshake());
  REQUIRE(q.client.conn->send_datagram(bytes("ping")));
  REQUIRE(q.run_until([&] { return !q.server.datagrams.empty(); }, 5 * kSecond));
  CHECK(q.server.datagrams == std::vector<Bytes>{bytes("ping")});
  REQUIRE(q.server.conn->send_datagram(bytes("pong")));
  REQUIRE(q.run_until([&] { return !q.client.datagrams.empty(); }, 5 * kSecond));
  CHECK(q.client.datagrams == std::vector<Bytes>{bytes("pong")});

  auto cs = q.client.conn->stats();
  CHECK(cs.datagrams_sent == 1);
  CHECK(cs.datagrams_received == 1);
  CHECK(cs.datagrams_dropped == 0);
  auto ss = q.server.conn->stats();
  CHECK(ss.datagrams_sent == 1);
  CHECK(ss.datagrams_received == 1);
}

TEST_CASE("QUIC datagrams arrive intact and in order on a clean link", "[quic][datagram]") {
  QuicPair q;
  enable_datagrams(q);
  REQUIRE(q.handshake());
  std::vector<Bytes> sent;
  for (size_t i = 0; i < 200; ++i) {
    sent.push_back(payload(1 + (i * 37) % kMaxPayload, static_cast<uint8_t>(i)));
    REQUIRE(q.client.conn->send_datagram(sent.back()));
  }
  sent.push_back(payload(kMaxPayload, 0xee)); // the largest accepted payload fits a packet
  REQUIRE(q.client.conn->send_datagram(sent.back()));
  REQUIRE(q.run_until([&] { return q.server.datagrams.size() == sent.size(); }, 10 * kSecond));
  CHECK(q.server.datagrams == sent);
  CHECK(q.client.conn->stats().datagrams_sent == sent.size());
  CHECK(q.client.conn->stats().datagrams_dropped == 0);
}

TEST_CASE("QUIC send_datagram refuses oversize payloads", "[quic][datagram]") {
  QuicPair q;
  enable_datagrams(q);
  REQUIRE(q.handshake());
  CHECK_FALSE(q.client.conn->send_datagram(payload(kMaxPayload + 1, 1)));
  CHECK_FALSE(q.client.conn->send_datagram(payload(65536, 2)));
  CHECK(q.client.conn->stats().datagrams_dropped == 2);
  CHECK(q.client.conn->send_datagram(payload(kMaxPayload, 3)));
  REQUIRE(q.run_until([&] { return q.server.datagrams.size() == 1; }, 5 * kSecond));
  CHECK(q.server.datagrams[0] == payload(kMaxPayload, 3));
  q.run_for(kSecond);
  CHECK(q.server.datagrams.size() == 1); // the refused ones never went out
}

TEST_CASE("QUIC datagram queue is bounded", "[quic][datagram]") {
  QuicPair q;
  enable_datagrams(q);
  REQUIRE(q.handshake());
  size_t accepted = 0;
  for (size_t i = 0; i < quic::Connection::kMaxQueuedDatagrams + 10; ++i)
    accepted += q.client.conn->send_datagram(bytes("x")) ? 1 : 0;
  CHECK(accepted == quic::Connection::kMaxQueuedDatagrams);
  CHECK(q.client.conn->stats().datagrams_dropped == 10);
  // The queue drains and then takes datagrams again.
  REQUIRE(q.run_until([&] { return q.server.datagrams.size() == accepted; }, 10 * kSecond));
  CHECK(q.client.conn->send_datagram(bytes("y")));
}

TEST_CASE("QUIC datagrams queued during the handshake go out after it", "[quic][datagram]") {
  QuicPair q;
  enable_datagrams(q);
  q.start();
  REQUIRE(q.client.conn->send_datagram(bytes("early")));
  REQUIRE(q.handshake());
  REQUIRE(q.run_until([&] { return !q.server.datagrams.empty(); }, 5 * kSecond));
  CHECK(q.server.datagrams == std::vector<Bytes>{bytes("early")});
}

TEST_CASE("QUIC datagrams share the connection with stream data", "[quic][datagram]") {
  QuicPair q;
  enable_datagrams(q);
  REQUIRE(q.handshake());
  auto id = q.client.conn->open_bidi_stream();
  REQUIRE(id);
  auto data = payload(200 * 1024, 9);
  q.client.conn->send(*id, data);
  q.client.conn->finish(*id);
  for (int i = 0; i < 50; ++i)
    REQUIRE(q.client.conn->send_datagram(payload(500, static_cast<uint8_t>(i))));
  REQUIRE(q.run_until([&] {
    auto it = q.server.received.find(*id);
    return q.server.datagrams.size() == 50 && it != q.server.received.end() && it->second.fin;
  }));
  CHECK(same(q.server.received[*id].data, data).empty());
}

TEST_CASE("QUIC datagram to a peer without datagram support is dropped, not fatal",
          "[quic][datagram]") {
  QuicPair q;
  q.client_config.datagrams = true;
  q.server_config.datagrams = false; // the server does not advertise max_datagram_frame_size
  REQUIRE(q.handshake());
  CHECK(q.client.conn->send_datagram(bytes("nobody listens")));
  q.run_for(2 * kSecond);
  INFO(q.client.error());
  CHECK_FALSE(q.client.finished());
  CHECK_FALSE(q.server.finished());
  CHECK(q.server.datagrams.empty());
  CHECK(q.client.conn->stats().datagrams_dropped == 1);
  CHECK(q.client.conn->stats().datagrams_sent == 0);

  // Streams keep working on that connection.
  auto id = q.client.conn->open_bidi_stream();
  REQUIRE(id);
  q.client.conn->send(*id, bytes("hello"));
  q.client.conn->finish(*id);
  REQUIRE(q.run_until([&] {
    auto it = q.server.received.find(*id);
    return it != q.server.received.end() && it->second.fin;
  }));
  CHECK(q.server.received[*id].data == bytes("hello"));
}
