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
  // Each side knows the other by its verified certificate's role URI.
  CHECK(q.client.conn->peer_name() == TestPki::kServerName);
  CHECK(q.server.conn->peer_name() == TestPki::kClientName);
  REQUIRE(q.server.conn->peer_identity());
  const auto& agent = *q.server.conn->peer_identity();
  CHECK(agent.role == Role::Agent);
  CHECK(agent.groups == std::vector<std::string>{"eng", "ops"}); // sorted
  CHECK(agent.client_auth);
  CHECK_FALSE(agent.server_auth);
  CHECK(agent.serial.size() == 32);
  CHECK(q.client.conn->peer_identity()->role == Role::Connector);
  CHECK(q.client.conn->peer_identity()->server_auth);
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
  q.client_config.tls = impostor ? pki().impostor_client : pki().rogue_client;
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
  REQUIRE(q.server.conn->refusal());
  CHECK(q.server.conn->refusal()->reason ==
        (impostor ? quic::Refusal::UntrustedIssuer : quic::Refusal::NoCertificate));
  CHECK(contains(q.server.error(), "TLS handshake failed: "));
  // The client learns why from the server's CONNECTION_CLOSE.
  CHECK(contains(q.client.error(), "peer closed the connection"));
  CHECK(contains(q.client.error(), "TLS alert GNUTLS_A_"));
  CHECK(q.server.opened.empty());
  CHECK(q.server.received.empty());
  CHECK(q.server.conn->stats().stream_bytes_received == 0);
}

TEST_CASE("QUIC client refuses a server certificate from another CA", "[quic][handshake][tls]") {
  QuicPair q;
  q.server_config.tls = pki().rogue_server;
  q.start();
  REQUIRE(q.run_until([&] { return both_finished(q); }));
  INFO("server: " << q.server.error() << "; client: " << q.client.error());
  CHECK(q.client.handshakes == 0);
  CHECK(q.server.handshakes == 0);
  REQUIRE(q.client.conn->refusal());
  CHECK(q.client.conn->refusal()->reason == quic::Refusal::UntrustedIssuer);
  CHECK(contains(q.client.error(), "TLS handshake failed: certificate not issued by the "
                                   "deployment CA"));
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
  REQUIRE(q.client.conn->refusal());
  CHECK(q.client.conn->refusal()->reason == quic::Refusal::WrongName);
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
  REQUIRE(q.server.conn->refusal());
  CHECK(q.server.conn->refusal()->reason == quic::Refusal::NoApplicationProtocol);
  CHECK(contains(q.server.error(), "no common application protocol (ALPN)"));
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

namespace {

// Runs a handshake with one side's identity replaced; returns the refusal of the side that
// checked it.
std::optional<quic::PeerRefusal> refused(QuicPair& q, bool check_on_server) {
  q.start();
  REQUIRE(q.run_until([&] { return both_finished(q); }));
  INFO("server: " << q.server.error() << "; client: " << q.client.error());
  CHECK(q.server.handshakes == 0);
  auto& checker = check_on_server ? q.server : q.client;
  REQUIRE(checker.conn);
  CHECK_FALSE(checker.conn->peer_identity());
  return checker.conn->refusal();
}

} // namespace

TEST_CASE("An agent certificate never serves a session", "[quic][handshake][tls][identity]") {
  QuicPair q;
  q.server_config.tls = pki().agent_as_server; // clientAuth only, role agent
  auto r = refused(q, false);
  REQUIRE(r);
  CHECK(r->reason == quic::Refusal::WrongRole);
  CHECK(contains(r->detail, "agent 'agent-2'"));
}

TEST_CASE("A connector certificate is refused where an agent belongs",
          "[quic][handshake][tls][identity]") {
  QuicPair q;
  q.client_config.tls = pki().connector_as_agent;
  auto r = refused(q, true);
  REQUIRE(r);
  CHECK(r->reason == quic::Refusal::WrongRole);
  CHECK(contains(r->detail, "connector 'conn-as-agent'"));
}

TEST_CASE("A role without the key usage for its side is refused",
          "[quic][handshake][tls][identity]") {
  QuicPair q;
  q.client_config.tls = pki().wrong_usage_client; // role agent, serverAuth only
  auto r = refused(q, true);
  REQUIRE(r);
  CHECK(r->reason == quic::Refusal::WrongUsage);
  SECTION("and a server without serverAuth") {
    QuicPair q2;
    q2.server_config.tls = pki().server;
    q2.client_config.peer.roles = {Role::Connector};
    q2.client_config.peer.name = "someone-else";
    auto r2 = refused(q2, false);
    REQUIRE(r2);
    CHECK(r2->reason == quic::Refusal::WrongName);
  }
}

TEST_CASE("Expired and revoked certificates are refused", "[quic][handshake][tls][identity]") {
  SECTION("expired") {
    QuicPair q;
    q.client_config.tls = pki().expired_client;
    auto r = refused(q, true);
    REQUIRE(r);
    CHECK(r->reason == quic::Refusal::Expired);
  }
  SECTION("revoked, with the CRL loaded") {
    QuicPair q;
    q.server_config.tls = pki().server_with_crl;
    q.client_config.tls = pki().revoked_client;
    auto r = refused(q, true);
    REQUIRE(r);
    CHECK(r->reason == quic::Refusal::Revoked);
  }
  SECTION("the same certificate passes without the CRL, and others pass with it") {
    QuicPair q;
    q.client_config.tls = pki().revoked_client;
    REQUIRE(q.handshake());
    QuicPair q2;
    q2.server_config.tls = pki().server_with_crl;
    REQUIRE(q2.handshake());
    CHECK(pki().server_with_crl->revoked_count() == 1);
    CHECK(pki().server_with_crl->is_revoked(*q.server.conn->peer_identity()));
    CHECK_FALSE(pki().server_with_crl->is_revoked(*q2.server.conn->peer_identity()));
  }
}

TEST_CASE("An exception in an event handler ends the connection, not the process",
          "[quic][callbacks]") {
  QuicPair q;
  q.server.on_data = [](int64_t, bool) { throw std::runtime_error("handler bug"); };
  REQUIRE(q.handshake());
  auto id = q.client.conn->open_bidi_stream();
  REQUIRE(id);
  q.client.conn->send(*id, bytes("hello"));
  REQUIRE(q.run_until([&] { return both_finished(q); }));
  CHECK(contains(q.server.error(), "internal error: handler bug"));
  CHECK(contains(q.client.error(), "peer closed the connection"));
}

TEST_CASE("A connection closed inside a callback processes nothing more of that packet",
          "[quic][callbacks]") {
  QuicPair q;
  REQUIRE(q.handshake());
  // Two streams' data in one packet: the server closes on the first and must not see the
  // second.
  q.server.on_data = [&](int64_t, bool) {
    q.server.conn->close(7, "enough", q.now, q.sink(false));
  };
  auto a = q.client.conn->open_bidi_stream();
  auto b = q.client.conn->open_bidi_stream();
  REQUIRE(a);
  REQUIRE(b);
  q.client.conn->send(*a, bytes("first"));
  q.client.conn->send(*b, bytes("second"));
  REQUIRE(q.run_until([&] { return both_finished(q); }));
  CHECK(q.server.received.size() == 1);
  CHECK(contains(q.client.error(), "code 7"));
  CHECK(contains(q.client.error(), "enough"));
}
