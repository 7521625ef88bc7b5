#include "quic/connection.hpp"

#include "wire/text.hpp"

#include <arpa/inet.h>
#include <gnutls/crypto.h>
#include <ngtcp2/ngtcp2_crypto_gnutls.h>

#include <algorithm>
#include <array>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>

namespace ztna::quic {

namespace {

// TLS 1.3 only, AEADs QUIC supports (RFC 9001 §5.3); no middlebox compat mode (RFC 9001 §8.4).
constexpr const char* kPriority = "NORMAL:-VERS-ALL:+VERS-TLS1.3:-CIPHER-ALL:+AES-128-GCM:"
                                  "+AES-256-GCM:+CHACHA20-POLY1305:%DISABLE_TLS13_COMPAT_MODE";

Connection* self(void* user_data) { return static_cast<Connection*>(user_data); }

// Connection IDs and the like: guessable ones would let an off-path attacker inject or reset. A
// failing system random source leaves nothing safe to do, and these run inside ngtcp2's
// callbacks, where no exception may cross: end the process with a clear message.
void random_bytes(uint8_t* out, size_t len) {
  if (gnutls_rnd(GNUTLS_RND_RANDOM, out, len) != 0) {
    std::fputs("fatal: the system's random source failed (gnutls_rnd)\n", stderr);
    std::abort();
  }
}

ngtcp2_path to_ngtcp2(const Path& p) {
  return ngtcp2_path{{const_cast<sockaddr*>(p.local.sa()), p.local.len()},
                     {const_cast<sockaddr*>(p.remote.sa()), p.remote.len()},
                     nullptr};
}

Path from_ngtcp2(const ngtcp2_path& p) {
  return Path{Address::from_sockaddr(p.local.addr, p.local.addrlen),
              Address::from_sockaddr(p.remote.addr, p.remote.addrlen)};
}

} // namespace

// ngtcp2 callbacks; each forwards to the Connection named by user_data. Every one runs its body
// through guarded(): no exception crosses into ngtcp2's C code, and a connection our side closed
// from inside a callback makes ngtcp2 stop processing the packet at hand.
struct ConnectionCallbacks {
  template <typename F> static int guarded(void* user_data, F&& body) noexcept {
    auto* c = self(user_data);
    ++c->callback_depth_;
    int rv = 0;
    try {
      rv = body(c);
    } catch (const std::exception& e) {
      rv = c->callback_failed(e.what());
    } catch (...) {
      rv = c->callback_failed("unknown exception");
    }
    --c->callback_depth_;
    return c->closed_in_callback_ ? NGTCP2_ERR_CALLBACK_FAILURE : rv;
  }

  static int handshake_completed(ngtcp2_conn*, void* user_data) {
    return guarded(user_data, [](Connection* c) {
      // verify_peer() ran inside the handshake and refused anything it did not accept.
      if (!c->peer_identity_) return NGTCP2_ERR_CALLBACK_FAILURE;
      c->handshake_completed_ = true;
      c->tune_keepalive();
      c->events_.on_handshake_completed();
      return 0;
    });
  }

  static int recv_stream_data(ngtcp2_conn*, uint32_t flags, int64_t stream_id, uint64_t,
                              const uint8_t* data, size_t len, void* user_data, void*) {
    return guarded(user_data, [&](Connection* c) {
      c->counters_.stream_bytes_received += len;
      c->events_.on_stream_data(stream_id, {data, len}, flags & NGTCP2_STREAM_DATA_FLAG_FIN);
      return 0;
    });
  }

  static int acked_stream_data_offset(ngtcp2_conn*, int64_t stream_id, uint64_t offset,
                                      uint64_t len, void* user_data, void*) {
    return guarded(user_data, [&](Connection* c) {
      auto* s = c->find(stream_id);
      if (!s) return 0;
      size_t before = s->buffer.outstanding();
      s->buffer.acknowledge_to(offset + len);
      if (before > Connection::kStreamLowWater &&
          s->buffer.outstanding() <= Connection::kStreamLowWater)
        c->events_.on_stream_writable(stream_id);
      return 0;
    });
  }

  static int stream_open(ngtcp2_conn*, int64_t stream_id, void* user_data) {
    return guarded(user_data, [&](Connection* c) {
      c->streams_.try_emplace(stream_id);
      c->events_.on_stream_open(stream_id);
      return 0;
    });
  }

  static int stream_close(ngtcp2_conn* conn, uint32_t, int64_t stream_id, uint64_t,
                          void* user_data, void*) {
    return guarded(user_data, [&](Connection* c) {
      if (c->streams_.erase(stream_id) == 0) return 0;
      // Let the peer open a new stream in place of this one (RFC 9000 §4.6).
      if (!ngtcp2_conn_is_local_stream(conn, stream_id) && ngtcp2_is_bidi_stream(stream_id))
        ngtcp2_conn_extend_max_streams_bidi(conn, 1);
      c->events_.on_stream_closed(stream_id);
      return 0;
    });
  }

  static int stream_reset(ngtcp2_conn*, int64_t stream_id, uint64_t, uint64_t app_error,
                          void* user_data, void*) {
    return guarded(user_data, [&](Connection* c) {
      c->events_.on_stream_reset(stream_id, app_error);
      return 0;
    });
  }

  static int stream_stop_sending(ngtcp2_conn*, int64_t stream_id, uint64_t app_error,
                                 void* user_data, void*) {
    return guarded(user_data, [&](Connection* c) {
      c->events_.on_stream_reset(stream_id, app_error);
      return 0;
    });
  }

  static int extend_max_stream_data(ngtcp2_conn*, int64_t stream_id, uint64_t, void* user_data,
                                    void*) {
    return guarded(user_data, [&](Connection* c) {
      if (auto* s = c->find(stream_id); s && s->blocked) {
        s->blocked = false;
        c->ready_.push_back(stream_id);
      }
      return 0;
    });
  }

  static int extend_max_local_streams_bidi(ngtcp2_conn*, uint64_t, void* user_data) {
    return guarded(user_data, [](Connection* c) {
      c->events_.on_streams_available();
      return 0;
    });
  }

  static int recv_datagram(ngtcp2_conn*, uint32_t, const uint8_t* data, size_t len,
                           void* user_data) {
    return guarded(user_data, [&](Connection* c) {
      c->counters_.datagrams_received++;
      c->events_.on_datagram({data, len});
      return 0;
    });
  }

  static int handshake_confirmed(ngtcp2_conn*, void* user_data) {
    return guarded(user_data, [](Connection* c) {
      c->handshake_confirmed_ = true;
      c->events_.on_handshake_confirmed();
      return 0;
    });
  }

  // The server's Initial keys exist from here on. ngtcp2 0.12.1 asserts (aborts) if asked to
  // write anything, a CONNECTION_CLOSE included, before: write() checks this flag.
  static int recv_client_initial(ngtcp2_conn* conn, const ngtcp2_cid* dcid, void* user_data) {
    const int rv = ngtcp2_crypto_recv_client_initial_cb(conn, dcid, user_data);
    if (rv == 0) self(user_data)->initial_keys_ = true;
    return rv;
  }

  static int recv_stateless_reset(ngtcp2_conn*, const ngtcp2_pkt_stateless_reset*,
                                  void* user_data) {
    self(user_data)->stateless_reset_ = true;
    return 0;
  }

  static int path_validation(ngtcp2_conn*, uint32_t, const ngtcp2_path* path,
                             ngtcp2_path_validation_result res, void* user_data) {
    return guarded(user_data, [&](Connection* c) {
      c->events_.on_path_validated(from_ngtcp2(*path),
                                   res == NGTCP2_PATH_VALIDATION_RESULT_SUCCESS);
      return 0;
    });
  }

  // ngtcp2 0.12.1 always advertises grease_quic_bit and, while constructing a connection,
  // draws one random byte to decide whether to clear the fixed bit on everything it sends
  // (RFC 9287). Our one-socket demultiplexer needs that bit (RFC 9443 §5), so during
  // construction the answer to that one-byte draw is even: never grease. (With CUBIC, the
  // congestion controller we use, ngtcp2 makes no other one-byte draws.)
  static void rand(uint8_t* dest, size_t len, const ngtcp2_rand_ctx* ctx) {
    random_bytes(dest, len);
    if (len == 1 && ctx && ctx->native_handle == &kConstructing) dest[0] &= 0xfe;
  }
  static inline const int kConstructing = 0;

  static int get_new_connection_id(ngtcp2_conn*, ngtcp2_cid* cid, uint8_t* token, size_t cidlen,
                                   void* user_data) {
    auto* c = self(user_data);
    random_bytes(cid->data, cidlen);
    cid->datalen = cidlen;
    auto& secret = c->config_.reset_secret;
    if (ngtcp2_crypto_generate_stateless_reset_token(token, secret.data(), secret.size(), cid) != 0)
      return NGTCP2_ERR_CALLBACK_FAILURE;
    return 0;
  }
};

const ngtcp2_callbacks& Connection::callbacks() {
  static const ngtcp2_callbacks cb = [] {
    ngtcp2_callbacks c{};
    c.client_initial = ngtcp2_crypto_client_initial_cb;
    c.recv_client_initial = ConnectionCallbacks::recv_client_initial;
    c.recv_crypto_data = ngtcp2_crypto_recv_crypto_data_cb;
    c.handshake_completed = ConnectionCallbacks::handshake_completed;
    c.handshake_confirmed = ConnectionCallbacks::handshake_confirmed;
    c.encrypt = ngtcp2_crypto_encrypt_cb;
    c.decrypt = ngtcp2_crypto_decrypt_cb;
    c.hp_mask = ngtcp2_crypto_hp_mask_cb;
    c.recv_stream_data = ConnectionCallbacks::recv_stream_data;
    c.acked_stream_data_offset = ConnectionCallbacks::acked_stream_data_offset;
    c.stream_open = ConnectionCallbacks::stream_open;
    c.stream_close = ConnectionCallbacks::stream_close;
    c.recv_retry = ngtcp2_crypto_recv_retry_cb;
    c.recv_stateless_reset = ConnectionCallbacks::recv_stateless_reset;
    c.extend_max_local_streams_bidi = ConnectionCallbacks::extend_max_local_streams_bidi;
    c.rand = ConnectionCallbacks::rand;
    c.get_new_connection_id = ConnectionCallbacks::get_new_connection_id;
    c.update_key = ngtcp2_crypto_update_key_cb;
    c.path_validation = ConnectionCallbacks::path_validation;
    c.stream_reset = ConnectionCallbacks::stream_reset;
    c.extend_max_stream_data = ConnectionCallbacks::extend_max_stream_data;
    c.delete_crypto_aead_ctx = ngtcp2_crypto_delete_crypto_aead_ctx_cb;
    c.delete_crypto_cipher_ctx = ngtcp2_crypto_delete_crypto_cipher_ctx_cb;
    c.recv_datagram = ConnectionCallbacks::recv_datagram;
    c.get_path_challenge_data = ngtcp2_crypto_get_path_challenge_data_cb;
    c.stream_stop_sending = ConnectionCallbacks::stream_stop_sending;
    c.version_negotiation = ngtcp2_crypto_version_negotiation_cb;
    return c;
  }();
  return cb;
}

Connection::Connection(const ConnectionConfig& config, ConnectionEvents& events)
    : config_(config), events_(events) {
  conn_ref_.get_conn = conn_from_ref;
  conn_ref_.user_data = this;
}

Connection::~Connection() {
  if (conn_) ngtcp2_conn_del(conn_);
  if (tls_) gnutls_deinit(tls_);
}

ngtcp2_conn* Connection::conn_from_ref(ngtcp2_crypto_conn_ref* ref) {
  return static_cast<Connection*>(ref->user_data)->conn_;
}

namespace {

void log_printf(void*, const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
}

void fill_settings(ngtcp2_settings& s, const ConnectionConfig& config, Timestamp now) {
  ngtcp2_settings_default(&s);
  // ngtcp2's own packet-level trace, for debugging interop: ZTNA_QUIC_TRACE=1.
  if (getenv("ZTNA_QUIC_TRACE")) s.log_printf = log_printf;
  s.initial_ts = now;
  s.max_tx_udp_payload_size = config.max_udp_payload;
  s.no_tx_udp_payload_size_shaping = 1;
  s.no_pmtud = 1; // relay frames must never exceed the path MTU
  s.handshake_timeout = static_cast<uint64_t>(config.handshake_timeout.count()) * NGTCP2_MILLISECONDS;
  s.max_window = config.connection_window * 2;
  s.max_stream_window = config.stream_window * 2;
  s.rand_ctx.native_handle = const_cast<int*>(&ConnectionCallbacks::kConstructing);
}

bool fill_params(ngtcp2_transport_params& p, const ConnectionConfig& config) {
  ngtcp2_transport_params_default(&p);
  p.initial_max_stream_data_bidi_local = config.stream_window;
  p.initial_max_stream_data_bidi_remote = config.stream_window;
  p.initial_max_stream_data_uni = config.stream_window;
  p.initial_max_data = config.connection_window;
  p.initial_max_streams_bidi = config.max_bidi_streams;
  p.initial_max_streams_uni = 0;
  p.max_idle_timeout = static_cast<uint64_t>(config.idle_timeout.count()) * NGTCP2_MILLISECONDS;
  p.active_connection_id_limit = 4;
  if (config.datagrams) p.max_datagram_frame_size = 65535;
  return true;
}

} // namespace

std::unique_ptr<Connection> Connection::client(const ConnectionConfig& config, const Path& path,
                                               ConnectionEvents& events, Timestamp now,
                                               std::string& error) {
  std::unique_ptr<Connection> c(new Connection(config, events));
  ngtcp2_cid dcid, scid;
  dcid.datalen = 18;
  random_bytes(dcid.data, dcid.datalen);
  scid.datalen = kScidLength;
  random_bytes(scid.data, scid.datalen);
  ngtcp2_settings settings;
  fill_settings(settings, config, now);
  ngtcp2_transport_params params;
  fill_params(params, config);
  auto np = to_ngtcp2(path);
  int rv = ngtcp2_conn_client_new(&c->conn_, &dcid, &scid, &np, NGTCP2_PROTO_VER_V1, &callbacks(),
                                  &settings, &params, nullptr, c.get());
  if (rv != 0) {
    error = std::string("ngtcp2_conn_client_new: ") + ngtcp2_strerror(rv);
    return nullptr;
  }
  if (!c->init_tls(error)) return nullptr;
  if (config.keepalive.count() > 0)
    ngtcp2_conn_set_keep_alive_timeout(
        c->conn_, static_cast<uint64_t>(config.keepalive.count()) * NGTCP2_MILLISECONDS);
  return c;
}

std::unique_ptr<Connection> Connection::server(const ConnectionConfig& config, const Path& path,
                                               const ngtcp2_pkt_hd& initial,
                                               ConnectionEvents& events, Timestamp now,
                                               std::string& error,
                                               const ngtcp2_cid* retry_odcid) {
  std::unique_ptr<Connection> c(new Connection(config, events));
  ngtcp2_cid scid;
  scid.datalen = kScidLength;
  random_bytes(scid.data, scid.datalen);
  ngtcp2_settings settings;
  fill_settings(settings, config, now);
  ngtcp2_transport_params params;
  fill_params(params, config);
  if (retry_odcid) {
    // RFC 9000 §7.3: after a Retry the client's first DCID and the one the Retry gave it.
    params.original_dcid = *retry_odcid;
    params.retry_scid = initial.dcid;
    params.retry_scid_present = 1;
    settings.token = ngtcp2_vec{initial.token.base, initial.token.len};
  } else {
    params.original_dcid = initial.dcid;
  }
  params.stateless_reset_token_present = 1;
  if (ngtcp2_crypto_generate_stateless_reset_token(params.stateless_reset_token,
                                                   config.reset_secret.data(),
                                                   config.reset_secret.size(), &scid) != 0) {
    error = "cannot derive stateless reset token";
    return nullptr;
  }
  auto np = to_ngtcp2(path);
  int rv = ngtcp2_conn_server_new(&c->conn_, &initial.scid, &scid, &np, initial.version,
                                  &callbacks(), &settings, &params, nullptr, c.get());
  if (rv != 0) {
    error = std::string("ngtcp2_conn_server_new: ") + ngtcp2_strerror(rv);
    return nullptr;
  }
  if (!c->init_tls(error)) return nullptr;
  return c;
}

bool Connection::init_tls(std::string& error) {
  unsigned flags = (config_.server ? GNUTLS_SERVER : GNUTLS_CLIENT) | GNUTLS_NO_END_OF_EARLY_DATA;
  int rv = gnutls_init(&tls_, flags);
  if (rv == 0)
    rv = config_.server ? ngtcp2_crypto_gnutls_configure_server_session(tls_)
                        : ngtcp2_crypto_gnutls_configure_client_session(tls_);
  if (rv == 0) rv = gnutls_priority_set_direct(tls_, kPriority, nullptr);
  if (rv == 0)
    rv = gnutls_credentials_set(tls_, GNUTLS_CRD_CERTIFICATE, config_.tls->credentials());
  if (rv != 0) {
    error = std::string("TLS setup: ") + gnutls_strerror(rv);
    return false;
  }
  gnutls_datum_t alpn{reinterpret_cast<unsigned char*>(config_.alpn.data()),
                      static_cast<unsigned>(config_.alpn.size())};
  gnutls_alpn_set_protocols(tls_, &alpn, 1,
                            GNUTLS_ALPN_MANDATORY |
                                (config_.server ? GNUTLS_ALPN_SERVER_PRECEDENCE : 0));
  if (config_.server) {
    // mTLS: the client must present a certificate chaining to our deployment CA.
    gnutls_certificate_server_set_request(tls_, GNUTLS_CERT_REQUIRE);
  } else if (!config_.server_name.empty()) {
    // SNI carries host names only, never IP literals (RFC 6066 §3); verify_peer() matches
    // either against the certificate's SAN.
    in6_addr ip;
    bool literal = inet_pton(AF_INET, config_.server_name.c_str(), &ip) == 1 ||
                   inet_pton(AF_INET6, config_.server_name.c_str(), &ip) == 1;
    if (!literal)
      gnutls_server_name_set(tls_, GNUTLS_NAME_DNS, config_.server_name.data(),
                             config_.server_name.size());
  }
  // Both sides: chain, revocation, validity, then role, key usage and name (peer_check.hpp).
  gnutls_session_set_verify_function(tls_, &Connection::verify_peer);
  gnutls_session_set_ptr(tls_, &conn_ref_);
  ngtcp2_conn_set_tls_native_handle(conn_, tls_);
  return true;
}

int Connection::verify_peer(gnutls_session_t session) {
  auto* ref = static_cast<ngtcp2_crypto_conn_ref*>(gnutls_session_get_ptr(session));
  auto* c = static_cast<Connection*>(ref->user_data);
  try {
    PeerRequirement req = c->config_.peer;
    if (!c->config_.server) req.hostname = c->config_.server_name;
    Identity id;
    if (auto refusal = check_peer(session, req, id)) {
      c->refusal_ = std::move(refusal);
      return GNUTLS_E_CERTIFICATE_ERROR;
    }
    c->peer_identity_ = std::move(id);
    return 0;
  } catch (...) {
    c->refusal_ = PeerRefusal{Refusal::Other, "internal error while checking the certificate"};
    return GNUTLS_E_CERTIFICATE_ERROR;
  }
}

// The handshake failed on our side (we send `alert`): say why in terms of the peer, unless
// verify_peer() already did.
bool Connection::handshake_failed(int alert) {
  const char* name = gnutls_alert_get_strname(static_cast<gnutls_alert_description_t>(alert));
  if (!refusal_) {
    if (alert == GNUTLS_A_NO_APPLICATION_PROTOCOL)
      refusal_ = PeerRefusal{Refusal::NoApplicationProtocol,
                             "no common application protocol (ALPN): we speak " + config_.alpn};
    else if (config_.server && alert == GNUTLS_A_CERTIFICATE_REQUIRED)
      refusal_ = PeerRefusal{Refusal::NoCertificate, "no certificate presented"};
    else
      refusal_ =
          PeerRefusal{Refusal::Other, std::string("TLS alert ") + (name ? name : "unknown")};
  }
  return fail("TLS handshake failed: " + refusal_->detail);
}

int Connection::callback_failed(const std::string& what) {
  // An internal error (RFC 9000 §20.1), never a crash: the connection ends, the daemon goes on.
  ngtcp2_connection_close_error_set_transport_error_liberr(
      &last_error_, NGTCP2_ERR_CALLBACK_FAILURE, nullptr, 0);
  pending_close_ = true;
  closed_in_callback_ = true;
  fail("internal error: " + what);
  return NGTCP2_ERR_CALLBACK_FAILURE;
}

const std::string& Connection::peer_name() const {
  static const std::string none;
  return peer_identity_ ? peer_identity_->name : none;
}

// The idle timeout in force is the smaller of the two sides' (RFC 9000 §10.1). Keepalives must
// come well inside it, or a peer with a shorter timeout drops us between two of them.
void Connection::set_keepalive(std::chrono::milliseconds keepalive) {
  if (keepalive == config_.keepalive) return;
  config_.keepalive = keepalive;
  if (keepalive.count() <= 0) {
    ngtcp2_conn_set_keep_alive_timeout(conn_, 0);
    return;
  }
  if (handshake_completed_) tune_keepalive();
}

void Connection::tune_keepalive() {
  if (config_.keepalive.count() <= 0) return;
  uint64_t keepalive = static_cast<uint64_t>(config_.keepalive.count()) * NGTCP2_MILLISECONDS;
  uint64_t idle = static_cast<uint64_t>(config_.idle_timeout.count()) * NGTCP2_MILLISECONDS;
  if (auto* remote = ngtcp2_conn_get_remote_transport_params(conn_);
      remote && remote->max_idle_timeout && remote->max_idle_timeout < idle)
    idle = remote->max_idle_timeout;
  ngtcp2_conn_set_keep_alive_timeout(conn_, std::min(keepalive, idle / 3));
}

bool Connection::fail(std::string reason) {
  if (!finished_) {
    error_ = std::move(reason);
    finished_ = true;
  }
  return false;
}

Connection::Stream* Connection::find(int64_t id) {
  auto it = streams_.find(id);
  return it == streams_.end() ? nullptr : &it->second;
}

bool Connection::read_packet(const Path& path, std::span<const uint8_t> packet, Timestamp now) {
  if (finished_) return false;
  auto np = to_ngtcp2(path);
  ngtcp2_pkt_info pi{};
  int rv = ngtcp2_conn_read_pkt(conn_, &np, &pi, packet.data(), packet.size(), now);
  if (rv == 0) return true;
  if (rv == NGTCP2_ERR_DRAINING && stateless_reset_)
    return fail("stateless reset from the peer: it restarted or lost the connection");
  if (rv == NGTCP2_ERR_DRAINING) {
    ngtcp2_connection_close_error cc;
    ngtcp2_conn_get_connection_close_error(conn_, &cc);
    if (cc.type == NGTCP2_CONNECTION_CLOSE_ERROR_CODE_TYPE_APPLICATION)
      peer_close_code_ = cc.error_code;
    std::string why = "peer closed the connection (code " + std::to_string(cc.error_code);
    if (cc.type == NGTCP2_CONNECTION_CLOSE_ERROR_CODE_TYPE_TRANSPORT &&
        (cc.error_code & ~uint64_t{0xff}) == NGTCP2_CRYPTO_ERROR) {
      // The peer's TLS stack refused the handshake: say which alert it sent.
      const char* name = gnutls_alert_get_strname(
          static_cast<gnutls_alert_description_t>(cc.error_code & 0xff));
      why += std::string(", TLS alert ") + (name ? name : "unknown");
    }
    if (cc.reasonlen) {
      // The reason may come from an unauthenticated Initial: one printable line of valid UTF-8,
      // at most 255 bytes, before it goes near a log, a status document or JSON.
      why += ", \"" +
             wire::sanitize_reason({reinterpret_cast<const char*>(cc.reason), cc.reasonlen}) +
             "\"";
    }
    return fail(why + ")");
  }
  if (rv == NGTCP2_ERR_CRYPTO) {
    uint8_t alert = ngtcp2_conn_get_tls_alert(conn_);
    ngtcp2_connection_close_error_set_transport_error_tls_alert(&last_error_, alert, nullptr, 0);
    pending_close_ = true;
    return handshake_failed(alert);
  }
  // We closed (or failed) from inside a callback: the close we queued stands.
  if (rv == NGTCP2_ERR_CALLBACK_FAILURE && closed_in_callback_) return false;
  if (rv == NGTCP2_ERR_DROP_CONN) return fail("connection dropped");
  ngtcp2_connection_close_error_set_transport_error_liberr(&last_error_, rv, nullptr, 0);
  pending_close_ = true;
  return fail(std::string("QUIC error: ") + ngtcp2_strerror(rv));
}

ngtcp2_ssize Connection::write_one(ngtcp2_path* path, uint8_t* buf, size_t len, Timestamp now) {
  ngtcp2_pkt_info pi{};
  for (;;) {
    if (!datagrams_.empty() && handshake_completed_) {
      auto& d = datagrams_.front();
      ngtcp2_vec v{d.data(), d.size()};
      int accepted = 0;
      auto n = ngtcp2_conn_writev_datagram(conn_, path, &pi, buf, len, &accepted,
                                           NGTCP2_WRITE_DATAGRAM_FLAG_MORE, 0, &v, 1, now);
      if (accepted) {
        counters_.datagrams_sent++;
        datagrams_.pop_front();
      }
      if (n == NGTCP2_ERR_WRITE_MORE) continue;
      // Larger than the peer accepts, or (INVALID_STATE) the peer takes no DATAGRAM frames at
      // all: drop this datagram rather than fail the whole connection.
      if (n == NGTCP2_ERR_INVALID_ARGUMENT || n == NGTCP2_ERR_INVALID_STATE) {
        if (!accepted) datagrams_.pop_front();
        counters_.datagrams_dropped++;
        continue;
      }
      return n;
    }
    Stream* s = nullptr;
    int64_t id = -1;
    while (!ready_.empty()) {
      id = ready_.front();
      s = find(id);
      if (s && !s->blocked && (s->buffer.has_unsent() || (s->fin_queued && !s->fin_sent))) break;
      ready_.pop_front();
      s = nullptr;
    }
    if (!s) {
      return ngtcp2_conn_writev_stream(conn_, path, &pi, buf, len, nullptr,
                                       NGTCP2_WRITE_STREAM_FLAG_NONE, -1, nullptr, 0, now);
    }
    ngtcp2_vec v = s->buffer.unsent();
    bool last = s->buffer.sent_offset() + v.len == s->buffer.end_offset();
    uint32_t flags = NGTCP2_WRITE_STREAM_FLAG_MORE;
    if (s->fin_queued && last) flags |= NGTCP2_WRITE_STREAM_FLAG_FIN;
    ngtcp2_ssize taken = -1;
    auto n = ngtcp2_conn_writev_stream(conn_, path, &pi, buf, len, &taken, flags, id, &v,
                                       v.len ? 1 : 0, now);
    if (taken >= 0) {
      s->buffer.mark_sent(static_cast<size_t>(taken));
      counters_.stream_bytes_sent += static_cast<size_t>(taken);
      if ((flags & NGTCP2_WRITE_STREAM_FLAG_FIN) && static_cast<size_t>(taken) == v.len)
        s->fin_sent = true;
      // Round robin: the stream goes to the back if it still has something to send.
      ready_.pop_front();
      if (s->buffer.has_unsent() || (s->fin_queued && !s->fin_sent)) ready_.push_back(id);
    }
    if (n == NGTCP2_ERR_WRITE_MORE) continue;
    if (n == NGTCP2_ERR_STREAM_DATA_BLOCKED) {
      s->blocked = true;
      ready_.pop_front();
      continue;
    }
    if (n == NGTCP2_ERR_STREAM_SHUT_WR || n == NGTCP2_ERR_STREAM_NOT_FOUND) {
      ready_.pop_front();
      continue;
    }
    return n;
  }
}

bool Connection::write(Timestamp now, const PacketSink& sink) {
  // A server connection whose first Initial was never processed (dropped, reordered, a bad
  // token) has nothing to say and no keys to say it with: ngtcp2 would abort.
  if (config_.server && !initial_keys_) return !finished_;
  std::array<uint8_t, 1500> buf;
  size_t limit = std::min(config_.max_udp_payload, buf.size());
  if (finished_) {
    if (pending_close_) {
      pending_close_ = false;
      ngtcp2_path_storage ps;
      ngtcp2_path_storage_zero(&ps);
      ngtcp2_pkt_info pi{};
      auto n = ngtcp2_conn_write_connection_close(conn_, &ps.path, &pi, buf.data(), limit,
                                                  &last_error_, now);
      if (n > 0) sink(from_ngtcp2(ps.path), {buf.data(), static_cast<size_t>(n)});
    }
    return false;
  }
  size_t max_packets = std::max<size_t>(1, ngtcp2_conn_get_send_quantum(conn_) / limit);
  for (size_t i = 0; i < max_packets; ++i) {
    ngtcp2_path_storage ps;
    ngtcp2_path_storage_zero(&ps);
    auto n = write_one(&ps.path, buf.data(), limit, now);
    if (n < 0 && closed_in_callback_) return write(now, sink);
    if (n < 0) {
      ngtcp2_connection_close_error_set_transport_error_liberr(&last_error_, static_cast<int>(n),
                                                               nullptr, 0);
      pending_close_ = true;
      fail(std::string("QUIC write error: ") + ngtcp2_strerror(static_cast<int>(n)));
      return write(now, sink);
    }
    if (n == 0) break;
    sink(from_ngtcp2(ps.path), {buf.data(), static_cast<size_t>(n)});
  }
  ngtcp2_conn_update_pkt_tx_time(conn_, now);
  return true;
}

Timestamp Connection::expiry() const {
  return finished_ ? kNever : ngtcp2_conn_get_expiry(conn_);
}

bool Connection::handle_expiry(Timestamp now) {
  if (finished_) return false;
  int rv = ngtcp2_conn_handle_expiry(conn_, now);
  if (rv == 0) return true;
  if (rv == NGTCP2_ERR_IDLE_CLOSE)
    return fail(handshake_completed_ ? "idle timeout" : "handshake timed out");
  if (rv == NGTCP2_ERR_CALLBACK_FAILURE && closed_in_callback_) return false;
  ngtcp2_connection_close_error_set_transport_error_liberr(&last_error_, rv, nullptr, 0);
  pending_close_ = true;
  // settings.handshake_timeout (10 s) usually fires before the idle timeout does.
  if (rv == NGTCP2_ERR_HANDSHAKE_TIMEOUT) return fail("handshake timed out");
  return fail(std::string("QUIC timer error: ") + ngtcp2_strerror(rv));
}

void Connection::close(uint64_t app_error, std::string_view reason, Timestamp now,
                       const PacketSink& sink) {
  if (finished_) return;
  // ngtcp2 keeps a pointer to the reason: it must live as long as the close may be written
  // (later, when called inside a callback), so the connection holds its own copy.
  close_reason_.assign(reason.data(), std::min<size_t>(reason.size(), 255));
  ngtcp2_connection_close_error_set_application_error(
      &last_error_, app_error, reinterpret_cast<const uint8_t*>(close_reason_.data()),
      close_reason_.size());
  pending_close_ = true;
  fail("closed locally: " + std::string(reason));
  // Inside ngtcp2 (one of our events): writing now would re-enter it. guarded() makes ngtcp2
  // drop the rest of the packet, and the owner's next write() sends the CONNECTION_CLOSE.
  if (callback_depth_ > 0) {
    closed_in_callback_ = true;
    return;
  }
  write(now, sink);
}

Path Connection::path() const { return from_ngtcp2(*ngtcp2_conn_get_path(conn_)); }

bool Connection::migrate(const Path& path, bool after_validation, Timestamp now,
                         std::string& error) {
  if (finished_) {
    error = "connection finished";
    return false;
  }
  auto np = to_ngtcp2(path);
  const int rv = after_validation ? ngtcp2_conn_initiate_migration(conn_, &np, now)
                                  : ngtcp2_conn_initiate_immediate_migration(conn_, &np, now);
  if (rv != 0) {
    error = ngtcp2_strerror(rv);
    return false;
  }
  return true;
}

std::vector<std::string> Connection::source_cids() const {
  std::vector<ngtcp2_cid> cids(ngtcp2_conn_get_num_scid(conn_));
  ngtcp2_conn_get_scid(conn_, cids.data());
  std::vector<std::string> out;
  for (auto& c : cids) out.emplace_back(reinterpret_cast<const char*>(c.data), c.datalen);
  return out;
}

ConnectionStats Connection::stats() const {
  ConnectionStats s = counters_;
  ngtcp2_conn_stat cs;
  ngtcp2_conn_get_conn_stat(conn_, &cs);
  s.smoothed_rtt_ms = static_cast<double>(cs.smoothed_rtt) / NGTCP2_MILLISECONDS;
  s.min_rtt_ms = cs.min_rtt == UINT64_MAX ? 0 : static_cast<double>(cs.min_rtt) / NGTCP2_MILLISECONDS;
  s.open_streams = streams_.size();
  return s;
}

std::optional<int64_t> Connection::open_bidi_stream() {
  if (finished_ || !handshake_completed_) return std::nullopt;
  int64_t id;
  if (ngtcp2_conn_open_bidi_stream(conn_, &id, nullptr) != 0) return std::nullopt;
  streams_.try_emplace(id);
  return id;
}

void Connection::send(int64_t stream_id, std::span<const uint8_t> bytes) {
  auto* s = find(stream_id);
  if (!s || s->fin_queued || bytes.empty()) return;
  bool was_idle = !s->buffer.has_unsent();
  s->buffer.append(bytes);
  if (was_idle && !s->blocked) ready_.push_back(stream_id);
}

void Connection::finish(int64_t stream_id) {
  auto* s = find(stream_id);
  if (!s || s->fin_queued) return;
  s->fin_queued = true;
  if (!s->blocked) ready_.push_back(stream_id);
}

void Connection::reset(int64_t stream_id, uint64_t app_error) {
  if (!find(stream_id) || finished_) return;
  ngtcp2_conn_shutdown_stream(conn_, stream_id, app_error);
}

void Connection::consume(int64_t stream_id, size_t n) {
  if (finished_ || n == 0) return;
  ngtcp2_conn_extend_max_stream_offset(conn_, stream_id, n);
  ngtcp2_conn_extend_max_offset(conn_, n);
}

size_t Connection::unacknowledged(int64_t stream_id) const {
  auto it = streams_.find(stream_id);
  return it == streams_.end() ? 0 : it->second.buffer.outstanding();
}

bool Connection::send_datagram(std::span<const uint8_t> payload) {
  if (finished_ || datagrams_.size() >= kMaxQueuedDatagrams ||
      payload.size() > config_.max_datagram()) {
    counters_.datagrams_dropped++;
    return false;
  }
  datagrams_.emplace_back(payload.begin(), payload.end());
  return true;
}

} // namespace ztna::quic
