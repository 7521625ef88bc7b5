// One QUIC connection (client or server role) over ngtcp2 + GnuTLS, without I/O.
//
// The owner feeds received packets with read_packet(), asks for packets to send with
// write(), and calls handle_expiry() when expiry() is reached. Time is always passed in.
#pragma once

#include "net/address.hpp"
#include "quic/peer_check.hpp"
#include "quic/stream_send_buffer.hpp"
#include "quic/tls_identity.hpp"

#include <ngtcp2/ngtcp2.h>
#include <ngtcp2/ngtcp2_crypto.h>

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace ztna::quic {

using Timestamp = ngtcp2_tstamp; // nanoseconds on a monotonic clock
constexpr Timestamp kNever = UINT64_MAX;
constexpr size_t kScidLength = 16; // all our connection IDs have this length (routing needs it)

struct Path {
  Address local;
  Address remote;
};

// Events a connection reports to its owner.
class ConnectionEvents {
public:
  virtual ~ConnectionEvents() = default;
  virtual void on_handshake_completed() {}
  // Client: HANDSHAKE_DONE arrived (RFC 9001 §4.1.2); from now on it may migrate.
  virtual void on_handshake_confirmed() {}
  virtual void on_stream_open(int64_t /*stream_id*/) {}
  // Data must be copied: it is only valid during the call. Call consume() once it is handled.
  virtual void on_stream_data(int64_t stream_id, std::span<const uint8_t> data, bool fin) = 0;
  // The peer reset the stream or asked us to stop sending.
  virtual void on_stream_reset(int64_t /*stream_id*/, uint64_t /*app_error*/) {}
  virtual void on_stream_closed(int64_t /*stream_id*/) {}
  // The stream's unacknowledged bytes fell to or below the low-water mark again.
  virtual void on_stream_writable(int64_t /*stream_id*/) {}
  virtual void on_datagram(std::span<const uint8_t> /*data*/) {}
  // QUIC path validation (RFC 9000 §8.2) finished for `path`; on success it is now in use.
  virtual void on_path_validated(const Path& /*path*/, bool /*success*/) {}
  // New local bidirectional streams may be opened again.
  virtual void on_streams_available() {}
};

// Room for the short header, DATAGRAM frame header and AEAD tag around a DATAGRAM payload.
inline constexpr size_t kDatagramOverhead = 64;
// Our QUIC packets' size: leaves room for the relay header under a 1500-byte MTU.
inline constexpr size_t kMaxUdpPayload = 1400;

struct ConnectionConfig {
  bool server = false;
  TlsIdentityPtr tls;
  std::string alpn;
  // Client: the name the server's certificate must carry (checked against its SAN).
  std::string server_name;
  // What the peer's certificate must say (role, key usage, name), checked in the handshake.
  PeerRequirement peer;
  std::chrono::milliseconds idle_timeout{30000};
  // A handshake not complete by then ends the connection (RFC 9000 §10.1 does not bound it).
  std::chrono::milliseconds handshake_timeout{10000};
  std::chrono::milliseconds keepalive{0}; // 0 = none
  bool datagrams = false;
  uint64_t stream_window = 1 << 20;     // per-stream receive window
  uint64_t connection_window = 8 << 20; // connection receive window
  uint64_t max_bidi_streams = 256;      // concurrent peer-opened bidirectional streams
  size_t max_udp_payload = kMaxUdpPayload;
  // The largest DATAGRAM payload we send: a DATAGRAM frame cannot span packets (RFC 9221 §5).
  size_t max_datagram() const { return max_udp_payload - kDatagramOverhead; }
  // Secret from which stateless reset tokens are derived (RFC 9000 §10.3.2).
  std::span<const uint8_t> reset_secret;
};

struct ConnectionStats {
  double smoothed_rtt_ms = 0;
  double min_rtt_ms = 0;
  uint64_t stream_bytes_sent = 0;
  uint64_t stream_bytes_received = 0;
  uint64_t datagrams_sent = 0;
  uint64_t datagrams_received = 0;
  uint64_t datagrams_dropped = 0;
  size_t open_streams = 0;
};

using PacketSink = std::function<void(const Path& path, std::span<const uint8_t> packet)>;

class Connection {
public:
  // Unacknowledged bytes per stream above which the writer should pause (backpressure).
  static constexpr size_t kStreamHighWater = 1 << 20;
  static constexpr size_t kStreamLowWater = 256 << 10;
  static constexpr size_t kMaxQueuedDatagrams = 512;

  // Returns nullptr and sets `error` on failure.
  static std::unique_ptr<Connection> client(const ConnectionConfig& config, const Path& path,
                                            ConnectionEvents& events, Timestamp now,
                                            std::string& error);
  // `initial` is the header of the client's first Initial packet (from ngtcp2_accept). After a
  // Retry (RFC 9000 §8.1.2), `retry_odcid` is the connection ID the client first chose, as the
  // validated token carried it back.
  static std::unique_ptr<Connection> server(const ConnectionConfig& config, const Path& path,
                                            const ngtcp2_pkt_hd& initial,
                                            ConnectionEvents& events, Timestamp now,
                                            std::string& error,
                                            const ngtcp2_cid* retry_odcid = nullptr);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // Returns false once the connection is finished (closed, draining, or failed); error() says why.
  bool read_packet(const Path& path, std::span<const uint8_t> packet, Timestamp now);
  // Emits every packet that is ready now. Returns false once the connection is finished.
  bool write(Timestamp now, const PacketSink& sink);
  Timestamp expiry() const;
  bool handle_expiry(Timestamp now);
  // Emits one CONNECTION_CLOSE with an application error; the connection is finished afterwards.
  // Called from inside one of our ConnectionEvents (that is, inside ngtcp2), the close is
  // queued: ngtcp2 stops processing the packet at hand, and the next write() sends it.
  void close(uint64_t app_error, std::string_view reason, Timestamp now, const PacketSink& sink);

  bool finished() const { return finished_; }
  bool handshake_completed() const { return handshake_completed_; }
  bool handshake_confirmed() const { return handshake_confirmed_; }
  const std::string& error() const { return error_; }
  // The application error code of the peer's CONNECTION_CLOSE, if it closed us that way.
  std::optional<uint64_t> peer_close_code() const { return peer_close_code_; }
  // The peer's verified identity (after the handshake), or nullopt.
  const std::optional<Identity>& peer_identity() const { return peer_identity_; }
  // Its name, or "" before the handshake.
  const std::string& peer_name() const;
  // Why the handshake failed, if it did: our refusal of the peer's certificate or ALPN.
  const std::optional<PeerRefusal>& refusal() const { return refusal_; }
  // The current network path (the one packets are sent on).
  Path path() const;
  std::vector<std::string> source_cids() const;
  // Client only: moves the connection onto `path` (RFC 9000 §9), which must have a local
  // address of its own. With `after_validation` the current path carries everything until the
  // new one is validated (an upgrade); otherwise packets switch at once and validation runs
  // behind them (leaving a dead path). Either way on_path_validated() reports the outcome; RTT
  // and congestion state start fresh on the new path (§9.4) and nothing in flight is lost.
  // False with `error` set if ngtcp2 refuses (handshake not confirmed, no spare connection ID).
  bool migrate(const Path& path, bool after_validation, Timestamp now, std::string& error);
  // A new keepalive interval (0: none), in force at once once the handshake is done.
  void set_keepalive(std::chrono::milliseconds keepalive);
  std::chrono::milliseconds keepalive() const { return config_.keepalive; }
  ConnectionStats stats() const;

  // nullopt when the peer's stream limit is reached; wait for on_streams_available().
  std::optional<int64_t> open_bidi_stream();
  void send(int64_t stream_id, std::span<const uint8_t> bytes);
  // Sends FIN after everything already queued.
  void finish(int64_t stream_id);
  // Abandons the stream in both directions with an application error code.
  void reset(int64_t stream_id, uint64_t app_error);
  // The application handled `n` received bytes of this stream: let the peer send more.
  void consume(int64_t stream_id, size_t n);
  size_t unacknowledged(int64_t stream_id) const;
  // Queues a DATAGRAM (RFC 9221); false if it was dropped (queue full or too large).
  bool send_datagram(std::span<const uint8_t> payload);

private:
  struct Stream {
    StreamSendBuffer buffer;
    bool fin_queued = false;
    bool fin_sent = false;
    bool blocked = false; // peer's flow control: wait for extend_max_stream_data
  };

  Connection(const ConnectionConfig& config, ConnectionEvents& events);
  bool init_tls(std::string& error);
  bool fail(std::string reason);
  void tune_keepalive();
  Stream* find(int64_t id);
  ngtcp2_ssize write_one(ngtcp2_path* path, uint8_t* buf, size_t len, Timestamp now);

  static ngtcp2_conn* conn_from_ref(ngtcp2_crypto_conn_ref* ref);
  static const ngtcp2_callbacks& callbacks();
  static int verify_peer(gnutls_session_t session);
  bool handshake_failed(int alert);
  int callback_failed(const std::string& what);

  ConnectionConfig config_;
  ConnectionEvents& events_;
  ngtcp2_conn* conn_ = nullptr;
  gnutls_session_t tls_ = nullptr;
  ngtcp2_crypto_conn_ref conn_ref_{};
  std::map<int64_t, Stream> streams_;
  std::deque<int64_t> ready_; // streams with unsent data, in round-robin order
  std::deque<std::vector<uint8_t>> datagrams_;
  ConnectionStats counters_;
  ngtcp2_connection_close_error last_error_{};
  std::string error_;
  std::optional<Identity> peer_identity_;
  std::optional<PeerRefusal> refusal_;
  std::string close_reason_;    // the reason last_error_ points at
  bool initial_keys_ = false;   // server: the client's first Initial was processed
  int callback_depth_ = 0;      // > 0 while ngtcp2 runs one of our callbacks
  bool closed_in_callback_ = false;
  bool handshake_completed_ = false;
  bool handshake_confirmed_ = false;
  bool finished_ = false;
  bool pending_close_ = false;  // a CONNECTION_CLOSE still has to go out
  bool stateless_reset_ = false; // the peer reset us (RFC 9000 §10.3)
  std::optional<uint64_t> peer_close_code_;

  friend struct ConnectionCallbacks;
};

} // namespace ztna::quic
