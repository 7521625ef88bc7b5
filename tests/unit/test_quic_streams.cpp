// quic::Connection streams: integrity, flow control and backpressure, stream limits, resets
// and loss recovery, over the in-memory link (simulated time, no sockets).
#include <catch2/catch.hpp>

#include <algorithm>
#include <set>

#include "quic_harness.hpp"

using namespace ztna;
using namespace ztna::test;
using quic::Connection;

namespace {

bool received_all(TestPeer& p, int64_t id, size_t size) {
  auto it = p.received.find(id);
  return it != p.received.end() && it->second.fin && it->second.data.size() == size;
}

} // namespace

TEST_CASE("QUIC stream carries 5 MiB each way intact, with FIN", "[quic][stream]") {
  constexpr size_t kSize = 5 << 20;
  QuicPair q;
  REQUIRE(q.handshake());

  Writer up, down;
  auto id = q.client.conn->open_bidi_stream();
  REQUIRE(id);
  CHECK(*id == 0); // the client's first bidirectional stream
  up = Writer{q.client.conn.get(), *id, pattern(kSize, 1)};
  q.client.on_writable = [&](int64_t s) {
    if (s == up.id) up.pump();
  };
  // The server answers on the same stream as soon as it sees it.
  q.server.on_open = [&](int64_t s) {
    down = Writer{q.server.conn.get(), s, pattern(kSize, 2)};
    down.pump();
  };
  q.server.on_writable = [&](int64_t s) {
    if (s == down.id) down.pump();
  };
  up.pump();
  CHECK(up.pos < kSize); // backpressure: the writer had to stop at the high-water mark

  REQUIRE(q.run_until(
      [&] { return received_all(q.server, *id, kSize) && received_all(q.client, *id, kSize); }));
  CHECK(q.server.opened == std::vector<int64_t>{*id});
  CHECK(same(q.server.received[*id].data, up.data).empty());
  CHECK(same(q.client.received[*id].data, down.data).empty());
  CHECK(q.server.received[*id].fins == 1);
  CHECK(q.client.received[*id].fins == 1);
  // Neither writer ever went far beyond the high-water mark.
  CHECK(up.max_outstanding < Connection::kStreamHighWater + 64 * 1024);
  CHECK(down.max_outstanding < Connection::kStreamHighWater + 64 * 1024);
  CHECK_FALSE(q.client.writable.empty());

  // Once everything is acknowledged both sides close the stream and free its buffers.
  REQUIRE(q.run_until([&] { return !q.client.closed.empty() && !q.server.closed.empty(); }));
  CHECK(q.client.closed == std::vector<int64_t>{*id});
  CHECK(q.server.closed == std::vector<int64_t>{*id});
  CHECK(q.client.conn->unacknowledged(*id) == 0);
  auto cs = q.client.conn->stats();
  CHECK(cs.stream_bytes_received == kSize);
  CHECK(cs.stream_bytes_sent >= kSize);
  CHECK(cs.open_streams == 0);
  CHECK(q.server.conn->stats().stream_bytes_received == kSize);
  CHECK(q.client.resets.empty());
  CHECK(q.server.resets.empty());
}

TEST_CASE("QUIC stream without consume() stalls at the flow-control window", "[quic][stream]") {
  constexpr size_t kSize = 3 << 20;
  QuicPair q;
  REQUIRE(q.handshake());
  const size_t window = q.server_config.stream_window;
  REQUIRE(window < kSize);
  q.server.auto_consume = false;

  auto id = q.client.conn->open_bidi_stream();
  REQUIRE(id);
  auto data = pattern(kSize, 3);
  q.client.conn->send(*id, data); // all at once: the buffer takes it, flow control holds it
  q.client.conn->finish(*id);

  q.run_for(10 * kSecond);
  auto got = q.server.received[*id].data.size();
  CHECK(got > 0);
  CHECK(got <= window); // the receiver got no more than it allowed
  CHECK_FALSE(q.server.received[*id].fin);
  CHECK(q.client.conn->unacknowledged(*id) >= kSize - window);
  CHECK_FALSE(q.client.finished());

  // A stall is stable: more time changes nothing.
  q.run_for(10 * kSecond);
  CHECK(q.server.received[*id].data.size() == got);

  // Consuming lets the rest through.
  q.server.consume_all();
  q.server.auto_consume = true;
  REQUIRE(q.run_until([&] { return received_all(q.server, *id, kSize); }));
  CHECK(same(q.server.received[*id].data, data).empty());
  REQUIRE(q.run_until([&] { return q.client.conn->unacknowledged(*id) == 0; }));
}

TEST_CASE("QUIC connection window is shared by all streams", "[quic][stream]") {
  QuicPair q;
  q.server_config.connection_window = 256 * 1024;
  q.server_config.stream_window = 1 << 20;
  REQUIRE(q.handshake());
  q.server.auto_consume = false;

  std::vector<int64_t> ids;
  std::vector<Bytes> sent;
  for (uint32_t i = 0; i < 4; ++i) {
    auto id = q.client.conn->open_bidi_stream();
    REQUIRE(id);
    ids.push_back(*id);
    sent.push_back(pattern(200 * 1024, 10 + i));
    q.client.conn->send(*id, sent.back());
    q.client.conn->finish(*id);
  }
  q.run_for(10 * kSecond);
  size_t total = 0;
  for (auto id : ids)
    total += q.server.received[id].data.size();
  CHECK(total > 0);
  CHECK(total <= 256 * 1024);

  // Credit for the connection alone (no stream near its own limit) resumes every stream.
  q.server.consume_all();
  q.server.auto_consume = true;
  REQUIRE(q.run_until([&] {
    for (size_t i = 0; i < ids.size(); ++i)
      if (!received_all(q.server, ids[i], sent[i].size())) return false;
    return true;
  }));
  for (size_t i = 0; i < ids.size(); ++i)
    CHECK(same(q.server.received[ids[i]].data, sent[i]).empty());
}

TEST_CASE("QUIC stream limit: open_bidi_stream waits for the peer to allow more",
          "[quic][stream]") {
  constexpr int kStreams = 300;
  QuicPair q;
  REQUIRE(q.server_config.max_bidi_streams == 256);
  REQUIRE(q.handshake());
  q.client.streams_available = 0; // the count from the handshake's transport parameters

  // The server echoes each request and ends its side.
  q.server.on_data = [&](int64_t id, bool fin) {
    if (!fin) return;
    q.server.conn->send(id, q.server.received[id].data);
    q.server.conn->finish(id);
  };
  std::map<int64_t, Bytes> requests;
  int refused = 0;
  auto open_more = [&] {
    while (requests.size() < kStreams) {
      auto id = q.client.conn->open_bidi_stream();
      if (!id) {
        refused++;
        return;
      }
      auto body = pattern(100 + requests.size(), static_cast<uint32_t>(requests.size()));
      requests[*id] = body;
      q.client.conn->send(*id, body);
      q.client.conn->finish(*id);
    }
  };
  open_more();
  CHECK(requests.size() == 256); // the limit the server advertised
  CHECK(refused == 1);
  q.client.on_available = open_more;

  REQUIRE(q.run_until([&] {
    if (requests.size() < kStreams) return false;
    for (auto& [id, body] : requests)
      if (!received_all(q.client, id, body.size())) return false;
    return true;
  }));
  CHECK(q.client.streams_available > 0); // fired as server streams closed
  std::set<int64_t> ids;
  for (auto& [id, body] : requests) {
    CHECK(same(q.client.received[id].data, body).empty());
    ids.insert(id);
  }
  CHECK(ids.size() == kStreams);
  CHECK(q.server.opened.size() == kStreams);
  REQUIRE(q.run_until([&] {
    return q.client.conn->stats().open_streams == 0 && q.server.conn->stats().open_streams == 0;
  }));
  CHECK(q.client.closed.size() == kStreams);
  CHECK(q.server.closed.size() == kStreams);
}

TEST_CASE("QUIC reset() reaches the peer with the application error", "[quic][stream]") {
  QuicPair q;
  REQUIRE(q.handshake());
  auto id = q.client.conn->open_bidi_stream();
  REQUIRE(id);
  q.client.conn->send(*id, pattern(5000, 4));
  REQUIRE(q.run_until([&] { return !q.server.opened.empty(); }));

  bool from_client = GENERATE(true, false);
  auto& resetter = from_client ? q.client : q.server;
  auto& peer = from_client ? q.server : q.client;
  resetter.conn->reset(*id, 77);
  REQUIRE(q.run_until([&] { return !peer.resets.empty(); }));
  for (auto& [sid, code] : peer.resets) {
    CHECK(sid == *id);
    CHECK(code == 77);
  }
  // Both ends then close the stream; the connection itself lives on.
  REQUIRE(q.run_until([&] { return !q.client.closed.empty() && !q.server.closed.empty(); }));
  CHECK(q.client.conn->unacknowledged(*id) == 0);
  CHECK_FALSE(q.client.finished());
  CHECK_FALSE(q.server.finished());
  auto next = q.client.conn->open_bidi_stream();
  REQUIRE(next);
  q.client.conn->send(*next, bytes("still here"));
  q.client.conn->finish(*next);
  REQUIRE(q.run_until([&] { return received_all(q.server, *next, 10); }));
}

TEST_CASE("QUIC stream calls on closed or unknown streams are ignored", "[quic][stream]") {
  QuicPair q;
  REQUIRE(q.handshake());
  auto id = q.client.conn->open_bidi_stream();
  REQUIRE(id);
  q.client.conn->send(*id, bytes("abc"));
  q.client.conn->finish(*id);
  q.client.conn->send(*id, bytes("after FIN")); // ignored
  q.client.conn->finish(*id);                   // once is enough
  q.client.conn->send(1000, bytes("nobody"));   // never opened
  q.client.conn->reset(1000, 1);
  q.client.conn->consume(1000, 10);
  CHECK(q.client.conn->unacknowledged(1000) == 0);
  REQUIRE(q.run_until([&] { return received_all(q.server, *id, 3); }));
  CHECK(q.server.received[*id].data == bytes("abc"));
  q.run_for(kSecond);
  CHECK(q.server.received[*id].data == bytes("abc"));
  CHECK(q.server.received[*id].fins == 1);
  CHECK(q.server.opened.size() == 1);
  CHECK_FALSE(q.client.finished());
  CHECK_FALSE(q.server.finished());
}

TEST_CASE("QUIC stream data survives packet loss", "[quic][stream][loss]") {
  constexpr size_t kSize = 2 << 20;
  QuicPair q;
  REQUIRE(q.handshake());
  // Every 7th packet in each direction is lost while the transfer runs.
  q.drop = [](bool, uint64_t i) { return i % 7 == 3 && i < 4000; };

  auto id = q.client.conn->open_bidi_stream();
  REQUIRE(id);
  Writer up{q.client.conn.get(), *id, pattern(kSize, 5)}, down;
  q.client.on_writable = [&](int64_t) { up.pump(); };
  q.server.on_open = [&](int64_t s) {
    down = Writer{q.server.conn.get(), s, pattern(kSize, 6)};
    down.pump();
  };
  q.server.on_writable = [&](int64_t) { down.pump(); };
  up.pump();

  REQUIRE(q.run_until(
      [&] { return received_all(q.server, *id, kSize) && received_all(q.client, *id, kSize); },
      300 * kSecond));
  CHECK(q.dropped > 100);
  CHECK(same(q.server.received[*id].data, up.data).empty());
  CHECK(same(q.client.received[*id].data, down.data).empty());
  REQUIRE(q.run_until([&] {
    return q.client.conn->unacknowledged(*id) == 0 && q.server.conn->unacknowledged(*id) == 0;
  }));
  CHECK_FALSE(q.client.finished());
  CHECK_FALSE(q.server.finished());
}

TEST_CASE("QUIC stream data survives a burst of loss", "[quic][stream][loss]") {
  QuicPair q;
  REQUIRE(q.handshake());
  auto id = q.client.conn->open_bidi_stream();
  REQUIRE(id);
  auto data = pattern(300 * 1024, 7);
  q.client.conn->send(*id, data);
  q.client.conn->finish(*id);
  // The link goes dark for 3 s in both directions, then recovers.
  auto dark_until = q.now + 3 * kSecond;
  q.drop = [&](bool, uint64_t) { return q.now < dark_until; };
  REQUIRE(q.run_until([&] { return received_all(q.server, *id, data.size()); }, 60 * kSecond));
  CHECK(q.dropped > 0);
  CHECK(same(q.server.received[*id].data, data).empty());
  CHECK(q.server.received[*id].fins == 1);
}
