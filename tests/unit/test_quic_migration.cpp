// Client migration between paths with their own virtual local addresses (DESIGN D3): the way a
// session moves between the relay and a direct path, over the in-memory link.
#include <catch2/catch.hpp>

#include "quic_harness.hpp"

using namespace ztna;
using namespace ztna::test;
using quic::Connection;

namespace {

const Address kRelayLocal = *Address::parse("[100::1]:1");
const Address kDirectLocal = *Address::parse("[100::2]:1");

// A download of `size` bytes from the server on a stream the client opened.
struct Download {
  QuicPair& q;
  Writer writer;
  int64_t id = -1;
  size_t size;
  Bytes data;

  Download(QuicPair& pair, size_t n) : q(pair), size(n), data(pattern(n, 7)) {
    q.server.on_open = [this](int64_t sid) {
      writer = Writer{q.server.conn.get(), sid, data};
      writer.pump();
    };
    q.server.on_writable = [this](int64_t) { writer.pump(); };
    id = *q.client.conn->open_bidi_stream();
    const uint8_t hello[] = {'g', 'o'};
    q.client.conn->send(id, hello);
  }
  size_t received() const {
    auto it = q.client.received.find(id);
    return it == q.client.received.end() ? 0 : it->second.data.size();
  }
  bool done() const {
    auto it = q.client.received.find(id);
    return it != q.client.received.end() && it->second.fin;
  }
};

void start_on_relay(QuicPair& q) {
  q.start();
  // The test's client starts on its relay path's virtual address, as the agent does.
  REQUIRE(q.handshake());
  REQUIRE(q.run_until([&] { return q.client.confirmed; }));
}

} // namespace

TEST_CASE("QUIC migration after validation keeps a download intact", "[quic][migration]") {
  QuicPair q;
  start_on_relay(q);
  const quic::Path before = q.client.conn->path();
  Download d(q, 8 << 20);
  REQUIRE(q.run_until([&] { return d.received() > (1 << 20); }));

  std::string error;
  const quic::Path direct{kDirectLocal, before.remote};
  REQUIRE(q.client.conn->migrate(direct, true, q.now, error));
  REQUIRE(q.run_until([&] { return !q.client.validations.empty(); }));
  CHECK(q.client.validations.back().second);
  CHECK(q.client.validations.back().first.local == kDirectLocal);
  CHECK(q.client.conn->path().local == kDirectLocal);
  // The server follows the client onto the new path (RFC 9000 §9.3).
  REQUIRE(q.run_until([&] { return q.server.conn->path().remote == kDirectLocal; }));

  REQUIRE(q.run_until([&] { return d.done(); }));
  CHECK(same(q.client.received[d.id].data, d.data).empty());
  CHECK_FALSE(q.client.finished());
}

TEST_CASE("QUIC migration to a dead path fails validation and stays put", "[quic][migration]") {
  QuicPair q;
  start_on_relay(q);
  const quic::Path before = q.client.conn->path();
  q.blackhole = [](const quic::Path& p) {
    return p.local == kDirectLocal || p.remote == kDirectLocal;
  };
  Download d(q, 4 << 20);
  std::string error;
  REQUIRE(q.client.conn->migrate({kDirectLocal, before.remote}, true, q.now, error));
  REQUIRE(q.run_until([&] { return !q.client.validations.empty(); }));
  CHECK_FALSE(q.client.validations.back().second);
  CHECK(q.client.conn->path().local == before.local);
  REQUIRE(q.run_until([&] { return d.done(); }));
  CHECK(same(q.client.received[d.id].data, d.data).empty());
}

TEST_CASE("QUIC immediate migration away from a dead path loses nothing", "[quic][migration]") {
  QuicPair q;
  start_on_relay(q);
  const quic::Path relay = q.client.conn->path();
  std::string error;
  REQUIRE(q.client.conn->migrate({kDirectLocal, relay.remote}, true, q.now, error));
  REQUIRE(q.run_until([&] { return !q.client.validations.empty(); }));
  REQUIRE(q.client.conn->path().local == kDirectLocal);

  Download d(q, 8 << 20);
  REQUIRE(q.run_until([&] { return d.received() > (2 << 20); }));
  // The direct path dies mid-transfer; everything in flight on it is lost.
  q.blackhole = [](const quic::Path& p) {
    return p.local == kDirectLocal || p.remote == kDirectLocal;
  };
  q.run_for(200 * kMillisecond);
  REQUIRE(q.client.conn->migrate({kRelayLocal, relay.remote}, false, q.now, error));
  CHECK(q.client.conn->path().local == kRelayLocal);
  REQUIRE(q.run_until([&] { return d.done(); }));
  CHECK(same(q.client.received[d.id].data, d.data).empty());
  CHECK_FALSE(q.client.finished());
  CHECK_FALSE(q.server.finished());
}

TEST_CASE("QUIC migration needs a confirmed handshake and a new local address",
          "[quic][migration]") {
  QuicPair q;
  q.start();
  std::string error;
  const quic::Path now_path = q.client.conn->path();
  CHECK_FALSE(q.client.conn->migrate({kDirectLocal, now_path.remote}, true, q.now, error));
  CHECK_FALSE(error.empty());
  REQUIRE(q.handshake());
  REQUIRE(q.run_until([&] { return q.client.confirmed; }));
  error.clear();
  CHECK_FALSE(q.client.conn->migrate(now_path, true, q.now, error));
  CHECK_FALSE(error.empty());
}
