// Runs a client and a server quic::Connection against each other in memory.
//
// No sockets, threads or sleeps: packets move between the two connections through an in-memory
// link with a fixed one-way delay, and time is a fake clock that jumps to the next event (a
// packet arriving, or the earliest Connection::expiry()). Tests are therefore deterministic in
// simulated time whatever the machine's load.
//
// Certificates are made once per test run, in memory with GnuTLS (see pki()): no key is ever
// committed. TlsIdentity loads PEM files, so they are written to a private mkdtemp() directory,
// loaded, and removed again at once.
#pragma once

#include "bytes.hpp"
#include "net/address.hpp"
#include "quic/connection.hpp"
#include "quic/tls_identity.hpp"

#include <algorithm>
#include <array>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace ztna::test {

// The identities of a test deployment, shaped like those certs/make-certs issues: a role URI
// (ztna://ROLE/NAME), group URIs, and the role's extended key usages.
struct TestPki {
  static constexpr const char* kServerName = "connector-1.ztna.test";
  static constexpr const char* kClientName = "agent-1";
  static constexpr const char* kRogueName = "agent-rogue";
  static constexpr const char* kRevokedName = "agent-revoked";

  // Issued by the deployment CA, which all of these trust.
  quic::TlsIdentityPtr server; // connector kServerName, serverAuth + clientAuth
  quic::TlsIdentityPtr client; // agent kClientName, clientAuth, groups "eng" and "ops"
  // Client identities that trust the deployment CA but must be refused by the server:
  // issued by a foreign CA (a GnuTLS client then sends no certificate at all, since the
  // server asks for one from the deployment CA)...
  quic::TlsIdentityPtr rogue_client; // agent kRogueName
  // ...and issued by an impostor CA that copies the deployment CA's name but not its key, for
  // the name of a legitimate client: this certificate is sent and must fail verification.
  quic::TlsIdentityPtr impostor_client; // agent kClientName
  // Issued by a foreign CA under the real server's name: must be refused by clients.
  quic::TlsIdentityPtr rogue_server; // connector kServerName
  // Deployment CA, but each wrong in one way:
  quic::TlsIdentityPtr agent_as_server;    // an agent (clientAuth only) where a connector serves
  quic::TlsIdentityPtr connector_as_agent; // connector "conn-as-agent" where an agent belongs
  quic::TlsIdentityPtr wrong_usage_client; // role agent, but serverAuth only
  quic::TlsIdentityPtr expired_client;     // agent "agent-expired", expired an hour ago
  quic::TlsIdentityPtr revoked_client;     // agent kRevokedName, listed in the CRL below
  // The server identity again, with the deployment's CRL loaded (it lists revoked_client).
  quic::TlsIdentityPtr server_with_crl;
};
// Generated on first use, once per test run.
const TestPki& pki();

inline constexpr quic::Timestamp kMillisecond = NGTCP2_MILLISECONDS;
inline constexpr quic::Timestamp kSecond = NGTCP2_SECONDS;

// "" if `a` and `b` are equal, else where they first differ. For CHECK(same(a, b).empty()):
// it keeps Catch from printing megabytes of bytes.
std::string same(const Bytes& a, const Bytes& b);

// One side's application: records every event its connection reports.
class TestPeer : public quic::ConnectionEvents {
public:
  struct Received {
    Bytes data;
    bool fin = false;
    size_t fins = 0; // how many times FIN was reported (must be 1 at most)
  };

  std::unique_ptr<quic::Connection> conn;

  int handshakes = 0;
  std::map<int64_t, Received> received;
  std::vector<int64_t> opened;
  std::vector<int64_t> closed;
  std::vector<std::pair<int64_t, uint64_t>> resets;
  std::vector<int64_t> writable;
  std::vector<Bytes> datagrams;
  int streams_available = 0;
  bool confirmed = false;
  std::vector<std::pair<quic::Path, bool>> validations; // on_path_validated: path, success

  // When true (the default) received stream data is consumed at once, as a fast reader would.
  bool auto_consume = true;
  // Bytes received but not consumed yet, per stream (when auto_consume is false).
  std::map<int64_t, size_t> unconsumed;
  void consume_all();

  // Optional hooks a test can set to act like an application.
  std::function<void()> on_handshake;
  std::function<void(int64_t)> on_open;
  std::function<void(int64_t, bool fin)> on_data;
  std::function<void(int64_t)> on_writable;
  std::function<void(int64_t)> on_closed;
  std::function<void()> on_available;

  bool finished() const { return conn && conn->finished(); }
  std::string error() const { return conn ? conn->error() : std::string(); }

  void on_handshake_completed() override {
    handshakes++;
    if (on_handshake) on_handshake();
  }
  void on_stream_open(int64_t id) override;
  void on_stream_data(int64_t id, std::span<const uint8_t> data, bool fin) override;
  void on_stream_reset(int64_t id, uint64_t app_error) override {
    resets.emplace_back(id, app_error);
  }
  void on_stream_closed(int64_t id) override;
  void on_stream_writable(int64_t id) override;
  void on_datagram(std::span<const uint8_t> data) override {
    datagrams.emplace_back(data.begin(), data.end());
  }
  void on_streams_available() override;
  void on_handshake_confirmed() override { confirmed = true; }
  void on_path_validated(const quic::Path& path, bool success) override {
    validations.emplace_back(path, success);
  }
};

// Bytes whose values depend on their offset and a seed: reordering, loss and duplication all
// show as a mismatch.
inline Bytes pattern(size_t n, uint32_t seed) {
  Bytes out(n);
  uint32_t x = seed * 2654435761u + 1;
  for (size_t i = 0; i < n; ++i) {
    x = x * 1103515245u + 12345u;
    out[i] = static_cast<uint8_t>(x >> 16);
  }
  return out;
}

// Writes `data` to a stream the way an application should: no more than kStreamHighWater
// unacknowledged, resuming on on_stream_writable; FIN after the last byte.
struct Writer {
  quic::Connection* conn = nullptr;
  int64_t id = -1;
  Bytes data;
  size_t pos = 0;
  bool finished = false;
  size_t max_outstanding = 0;

  void pump() {
    while (pos < data.size() && conn->unacknowledged(id) < quic::Connection::kStreamHighWater) {
      size_t n = std::min<size_t>(64 * 1024, data.size() - pos);
      conn->send(id, {data.data() + pos, n});
      pos += n;
      max_outstanding = std::max(max_outstanding, conn->unacknowledged(id));
    }
    if (pos == data.size() && !finished) {
      conn->finish(id);
      finished = true;
    }
  }
};

// A client and a server over an in-memory link.
class QuicPair {
public:
  static inline const Address kClientAddress = *Address::parse("127.0.0.1:1");
  static inline const Address kServerAddress = *Address::parse("127.0.0.1:2");
  static constexpr const char* kAlpn = "ztna-test/1";

  QuicPair();
  QuicPair(const QuicPair&) = delete;
  QuicPair& operator=(const QuicPair&) = delete;

  // Defaults: the deployment's client and server identities, kAlpn, server_name kServerName,
  // reset secrets owned by this pair. Change them before start().
  quic::ConnectionConfig client_config;
  quic::ConnectionConfig server_config;

  TestPeer client;
  TestPeer server;

  quic::Timestamp now = 3600 * kSecond; // any start; nothing depends on it
  quic::Timestamp one_way_delay = 10 * kMillisecond;
  // Return true to lose the packet. `index` counts the packets sent in that direction.
  std::function<bool(bool to_server, uint64_t index)> drop;
  // Return true to lose every packet sent on this path (as the sender sees it): a dead path.
  std::function<bool(const quic::Path& sent_on)> blackhole;

  uint64_t sent_to_server = 0;
  uint64_t sent_to_client = 0;
  uint64_t dropped = 0;
  std::string server_create_error;

  // Creates the client connection (the server is created by the client's first Initial).
  void start();
  // start() unless started, then runs until both handshakes completed or one side finished.
  // True if both completed.
  bool handshake();
  // Steps the simulation until done() holds. Returns false if `limit` of simulated time
  // passes first or nothing is left that could make progress (both idle or finished).
  bool run_until(const std::function<bool()>& done, quic::Timestamp limit = 60 * kSecond);
  // Advances simulated time by `duration`, processing everything that happens meanwhile.
  void run_for(quic::Timestamp duration);

  // A sink that puts `side`'s packets on the link (for Connection::close()).
  quic::PacketSink sink(bool from_client);
  // Lets both sides write whatever is ready.
  void flush();
  size_t in_flight() const { return link_.size(); }

private:
  struct Packet {
    bool to_server;
    quic::Path path; // as the receiver sees it
    Bytes data;
  };

  void deliver(Packet& p);
  void expire();
  quic::Timestamp next_event() const;

  std::array<uint8_t, 32> client_secret_{};
  std::array<uint8_t, 32> server_secret_{};
  std::multimap<quic::Timestamp, Packet> link_; // by arrival time; equal times keep their order
};

} // namespace ztna::test
