// quic::Connection: handshake, mutual TLS, idle timeout and close, over the in-memory link.
#include <catch2/catch.hpp>

#include <string>

#include "quic_harness.hpp"

using namespace ztna;
using namespace ztna::test;

namespace {

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

bool both_finished(QuicPair& q) {
  return q.client.finished() && q.server.finished();
}

} // namespace

TEST_CASE("QUIC handshake completes with mutual TLS", "[quic][handshake]") {
  QuicPair q;
  REQUIRE(q.handshake());
  CHECK(q.client.handshakes == 1);
  CHECK(q.server.handshakes == 1);
  // Each side knows the other by its verified certificate's CN.
  CHECK(q.client.conn->peer_name() == TestPki::kServerName);
  CHECK(q.server.conn->peer_name() == TestPki::kClientName);
  CHECK(q.client.error().empty());
  CHECK(q.server.error().empty());
  CHECK(q.server_create_error.empty());

  CHECK(q.client.conn->path().local == QuicPair::kClientAddress);
  CHECK(q.client.conn->path().remote == QuicPair::kServerAddress);
  CHECK(q.server.conn->path().local == QuicPair::kServerAddress);
  CHECK(q.server.conn->path().remote == QuicPair::kClientAddress);
  for (auto* peer : {&q.client, &q.server}) {
    auto cids = peer->conn->source_cids();
    CHECK_FALSE(cids.empty());
    for (auto& cid : cids)
      CHECK(cid.size() == quic::kScidLength);
  }

  // The link's round trip is 20 ms of simulated time.
  auto stats = q.client.conn->stats();
  CHECK(stats.min_rtt_ms >= 20.0);
  CHECK(stats.min_rtt_ms < 60.0);
  CHECK(stats.open_streams == 0);

  // Nothing goes wrong while the connection sits there for a while.
  q.run_for(5 * kSecond);
  CHECK_FALSE(q.client.finished());
  CHECK_FALSE(q.server.finished());
}

TEST_CASE("QUIC handshake survives lost handshake packets", "[quic][handshake]") {
  QuicPair q;
  // Lose the client's first Initial and the server's first two flights.
  q.drop = [](bool to_server, uint64_t i) { return to_server ? i == 0 : i < 2; };
  REQUIRE(q.handshake());
  CHECK(q.dropped == 3);
  CHECK(q.client.conn->peer_name() == TestPki::kServerName);
  CHECK(q.server.conn->peer_name() == TestPki::kClientName);
}

TEST_CASE("QUIC server refuses a client certificate from another CA", "[quic][handshake][tls]") {
  QuicPair q;
  bool impostor = GENERATE(false, true);
  q.client_config.tls = impostor ? pki().impostor_client.get() : pki().rogue_client.get();
  // In TLS 1.3 the client's side of the handshake completes before the server has checked its
  // certificate. A client that starts sending at once must still get nothing through.
  q.client.on_handshake = [&] {
    if (auto id = q.client.conn->open_bidi_stream()) {
      q.client.conn->send(*id, bytes("GET /secret"));
      q.client.conn->finish(*id);
    }
  };
  q.start();
  REQUIRE(q.run_until([&] { return both_finished(q); }));
  REQUIRE(q.server.conn);
  INFO("server: " << q.server.error() << "; client: " << q.client.error());
  CHECK_FALSE(q.server.conn->handshake_completed());
  CHECK(q.server.handshakes == 0);
  CHECK(q.server.conn->peer_name().empty());
  // A foreign certificate is not even sent (GnuTLS picks one from a CA the server asks for);
  // the impostor's certificate is sent and fails verification.
  CHECK(contains(q.server.error(), impostor
                                       ? "TLS handshake failed: GNUTLS_A_BAD_CERTIFICATE"
                                       : "TLS handshake failed: GNUTLS_A_CERTIFICATE_REQUIRED"));
  // The client learns why from the server's CONNECTION_CLOSE.
  CHECK(contains(q.client.error(), "peer closed the connection"));
  CHECK(contains(q.client.error(), "TLS alert GNUTLS_A_"));
  CHECK(q.server.opened.empty());
  CHECK(q.server.received.empty());
  CHECK(q.server.conn->stats().stream_bytes_received == 0);
}

TEST_CASE("QUIC client refuses a server certificate from another CA", "[quic][handshake][tls]") {
  QuicPair q;
  q.server_config.tls = pki().rogue_server.get();
  q.start();
  REQUIRE(q.run_until([&] { return both_finished(q); }));
  INFO("server: " << q.server.error() << "; client: " << q.client.error());
  CHECK(q.client.handshakes == 0);
  CHECK(q.server.handshakes == 0);
  CHECK(contains(q.client.error(), "TLS handshake failed: GNUTLS_A_BAD_CERTIFICATE"));
  CHECK(contains(q.server.error(), "TLS alert GNUTLS_A_BAD_CERTIFICATE"));
}

TEST_CASE("QUIC client refuses a server certificate for another name", "[quic][handshake][tls]") {
  QuicPair q;
  q.client_config.server_name = "connector-2.ztna.test"; // the server is connector-1
  q.start();
  REQUIRE(q.run_until([&] { return both_finished(q); }));
  INFO("server: " << q.server.error() << "; client: " << q.client.error());
  CHECK_FALSE(q.client.conn->handshake_completed());
  CHECK(q.client.handshakes == 0);
  CHECK(q.server.handshakes == 0);
  CHECK(contains(q.client.error(), "TLS handshake failed: GNUTLS_A_BAD_CERTIFICATE"));
  CHECK(contains(q.server.error(), "TLS alert GNUTLS_A_BAD_CERTIFICATE"));
}

TEST_CASE("QUIC handshake fails on an ALPN mismatch", "[quic][handshake][tls]") {
  QuicPair q;
  q.server_config.alpn = "ztna-other/1";
  q.start();
  REQUIRE(q.run_until([&] { return both_finished(q); }));
  INFO("server: " << q.server.error() << "; client: " << q.client.error());
  CHECK(q.client.handshakes == 0);
  CHECK(q.server.handshakes == 0);
  CHECK(contains(q.server.error(), "TLS handshake failed: GNUTLS_A_NO_APPLICATION_PROTOCOL"));
  CHECK(contains(q.client.error(), "TLS alert GNUTLS_A_NO_APPLICATION_PROTOCOL"));
}

TEST_CASE("QUIC client gives up when the server never answers", "[quic][handshake]") {
  QuicPair q;
  q.drop = [](bool to_server, uint64_t) { return to_server; };
  q.start();
  auto start = q.now;
  REQUIRE(q.run_until([&] { return q.client.finished(); }, 120 * kSecond));
  CHECK(q.client.error() == "handshake timed out");
  CHECK(q.now - start >= 10 * kSecond); // the handshake timeout
  CHECK(q.now - start <= 31 * kSecond); // and at the latest the idle timeout
  CHECK_FALSE(q.server.conn);
}

TEST_CASE("QUIC idle timeout closes both sides when no packets flow", "[quic][idle]") {
  QuicPair q;
  q.client_config.idle_timeout = std::chrono::seconds(5);
  q.server_config.idle_timeout = std::chrono::seconds(5);
  REQUIRE(q.handshake());
  auto idle_since = q.now;
  REQUIRE(q.run_until([&] { return both_finished(q); }, 60 * kSecond));
  CHECK(q.client.error() == "idle timeout");
  CHECK(q.server.error() == "idle timeout");
  CHECK(q.now - idle_since >= 5 * kSecond);
  CHECK(q.now - idle_since < 10 * kSecond);
  // An idle close is silent: nothing was in flight when it happened.
  CHECK(q.in_flight() == 0);
}

TEST_CASE("QUIC keepalive holds an idle connection open", "[quic][idle]") {
  QuicPair q;
  q.client_config.idle_timeout = std::chrono::seconds(5);
  q.server_config.idle_timeout = std::chrono::seconds(5);
  q.client_config.keepalive = std::chrono::seconds(2);
  REQUIRE(q.handshake());
  auto before = q.sent_to_server;
  q.run_for(60 * kSecond);
  CHECK_FALSE(q.client.finished());
  CHECK_FALSE(q.server.finished());
  CHECK(q.sent_to_server - before >= 60 / 2 - 2); // a PING about every 2 s
}

TEST_CASE("QUIC close() with an application error reaches the peer", "[quic][close]") {
  QuicPair q;
  REQUIRE(q.handshake());
  bool by_client = GENERATE(true, false);
  auto& closer = by_client ? q.client : q.server;
  auto& peer = by_client ? q.server : q.client;

  auto sent = [&] { return by_client ? q.sent_to_server : q.sent_to_client; };
  auto before = sent();
  closer.conn->close(0x1234, "shutting down", q.now, q.sink(by_client));
  CHECK(closer.finished());
  CHECK(closer.error() == "closed locally: shutting down");
  CHECK(closer.conn->expiry() == quic::kNever);
  CHECK(sent() == before + 1); // exactly one CONNECTION_CLOSE

  REQUIRE(q.run_until([&] { return peer.finished(); }, 5 * kSecond));
  INFO(peer.error());
  CHECK(contains(peer.error(), std::to_string(0x1234)));
  CHECK(contains(peer.error(), "shutting down"));

  // Closing again, or using a closed connection, does nothing.
  closer.conn->close(1, "again", q.now, q.sink(by_client));
  CHECK(closer.error() == "closed locally: shutting down");
  CHECK_FALSE(closer.conn->open_bidi_stream());
  CHECK_FALSE(closer.conn->send_datagram(bytes("x")));
  q.run_for(kSecond);
  CHECK(sent() == before + 1);
}

TEST_CASE("QUIC peer's close reason is kept to one printable line", "[quic][close]") {
  QuicPair q;
  REQUIRE(q.handshake());
  q.server.conn->close(7, "line one\nline two\x1b[0m", q.now, q.sink(false));
  REQUIRE(q.run_until([&] { return q.client.finished(); }, 5 * kSecond));
  CHECK(q.client.error() == "peer closed the connection (code 7, \"line one?line two?[0m\")");
}

TEST_CASE("QUIC connection refuses streams before the handshake", "[quic][handshake]") {
  QuicPair q;
  q.start();
  CHECK_FALSE(q.client.conn->handshake_completed());
  CHECK_FALSE(q.client.conn->open_bidi_stream());
  CHECK(q.client.conn->peer_name().empty());
  REQUIRE(q.handshake()); // continues with the client already started
  CHECK(q.client.conn->open_bidi_stream());
}
