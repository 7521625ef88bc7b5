// ztna-session-probe: a misbehaving agent for the integration tests. It registers with the
// intermediate like ztna-agent (io::ControlClient), asks for a session with OpenSession, takes
// the SessionReady (session id, connector, authorization) and runs the end-to-end QUIC session
// to the connector over the relay exactly as the agent does. Then it does what --mode says to
// the connector's checks (common/session/session_gate.hpp), and reports one JSON line on stdout:
//
//   {"mode":..., "session":"<hex>", "result":"closed"|"stream_reset"|"served"|"rejected"|
//    "timeout"|"error", "code":N, "reason":"...", "bytes":N, ...}
//
// Exit status 0 when the run went as the mode expects (see `expected`), 1 when it did not, 2 on
// a usage or set-up error. Every wait is bounded by --timeout.
//
//   ztna-session-probe --intermediate 127.0.0.1:4433 --name NAME --ca ca.pem --cert a.pem
//                      --key a.key --service web --mode MODE [--other-service S]
//                      [--other-cert b.pem --other-key b.key] [--forge signature|body]
//                      [--garbage framing|token] [--expect served|closed|rejected]
//   MODE:
//     honest                 the real authorization on stream 0, then one stream for --service
//                            with a small HTTP request; prints what comes back (the control case)
//     forged                 the authorization altered (--forge signature: one bit of the
//                            signature flipped; body: expires_at an hour later, the original
//                            signature kept), then a stream for --service
//     expired                waits (wall clock) until the authorization has expired, then does
//                            the handshake and presents it, then a stream for --service
//     other-session          two sessions; session 1's authorization presented on session 2
//     other-agent            an authorization obtained as --other-cert, presented on a session
//                            opened with --cert
//     wrong-service-stream   the real authorization, then a stream naming --other-service
//                            (must be reset with NotAuthorized), then one for --service (served)
//     wrong-service-datagram the real authorization, one stream for --service (served), then
//                            DATAGRAM frames naming --other-service, then a ping (answered)
//     none                   no authorization at all (stream 0 stays empty), only a stream for
//                            --service: the connector closes the session after its timeout
//     garbage-stream0        malformed bytes on stream 0 (--garbage framing: a bad stream 0
//                            frame; token: a well-framed token of random bytes)
#include "auth/authorization.hpp"
#include "io/clock.hpp"
#include "io/control_client.hpp"
#include "io/endpoint.hpp"
#include "io/path_layer.hpp"
#include "io/quic_peer.hpp"
#include "wire/control_message.hpp"
#include "wire/datagram_frame.hpp"
#include "wire/relay_frame.hpp"
#include "wire/stream_header.hpp"

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <cstdio>
#include <iostream>
#include <random>

using namespace ztna;

namespace {

constexpr std::string_view kRequest = "GET / HTTP/1.0\r\n\r\n";
constexpr uint64_t kExpiryMarginMs = 1000; // past expires_at before the token is presented
constexpr size_t kWrongDatagrams = 5;
constexpr uint64_t kPingId = 0x70726f6265; // "probe"
constexpr uint64_t kNotAuthorized = static_cast<uint64_t>(wire::ErrorCode::NotAuthorized);
constexpr uint64_t kStreamNotAuthorized = static_cast<uint64_t>(wire::StreamError::NotAuthorized);

struct Options {
  std::string intermediate, name, service, other_service, mode, forge = "signature",
                                                                garbage = "framing", expect;
  quic::TlsFiles tls, other_tls;
  int timeout_s = 30;
};

std::string hex16(uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

std::vector<uint8_t> concat(std::vector<uint8_t> a, std::span<const uint8_t> b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

std::span<const uint8_t> bytes_of(std::string_view s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

class Probe;

// One end-to-end session, the QUIC client side (as agent/tunnel_session.cpp, without splices).
class Session : public quic::ConnectionEvents {
public:
  struct Stream {
    std::vector<uint8_t> data;
    bool fin = false;
    std::optional<uint64_t> reset;
  };

  Session(Probe& probe, const wire::SessionReady& ready)
      : id(ready.session_id), connector(ready.connector),
        connector_address(ready.connector_address), token(ready.authorization), probe_(probe) {}

  void on_handshake_completed() override;
  void on_stream_data(int64_t stream_id, std::span<const uint8_t> data, bool fin) override;
  void on_stream_reset(int64_t stream_id, uint64_t app_error) override;
  void on_datagram(std::span<const uint8_t> data) override;

  uint64_t id;
  std::string connector;
  Address connector_address;
  std::vector<uint8_t> token;
  std::unique_ptr<io::PathLayer> paths; // before peer, which sends through it
  std::unique_ptr<io::QuicPeer> peer;
  bool established = false;
  bool finished = false;
  std::string why;
  std::optional<uint64_t> close_code;
  bool pong = false;
  std::map<int64_t, Stream> streams;

private:
  Probe& probe_;
};

// One agent identity: its socket and its control connection to the intermediate.
struct AgentSide {
  std::shared_ptr<quic::TlsIdentity> tls;
  std::unique_ptr<io::Endpoint> endpoint;
  std::unique_ptr<io::ControlClient> control;
  bool connected = false;
};

class Probe : private io::PathSignaling {
public:
  Probe(boost::asio::io_context& io, Options o)
      : io_(io), o_(std::move(o)), deadline_(io), wait_(io),
        intermediate_(parse_address(o_.intermediate)) {}

  void start() {
    primary_ = make_side(o_.tls);
    if (o_.mode == "other-agent") other_ = make_side(o_.other_tls);
    deadline_.expires_after(std::chrono::seconds(o_.timeout_s));
    deadline_.async_wait([this](boost::system::error_code ec) {
      if (!ec)
        finish("timeout", std::nullopt,
               "no outcome within --timeout " + std::to_string(o_.timeout_s) + " s");
    });
  }

  // Something happened: look at the state on a fresh loop turn (never inside ngtcp2).
  void poke() {
    if (poke_posted_ || done_) return;
    poke_posted_ = true;
    boost::asio::post(io_, [this] {
      poke_posted_ = false;
      if (!done_) step();
    });
  }

  int exit_code() const { return exit_code_; }

  void on_session_finished(Session& s, const std::string& why) {
    s.finished = true;
    s.why = why;
    if (s.peer && s.peer->attached()) s.close_code = s.peer->conn().peer_close_code();
    poke();
  }

private:
  // io::PathSignaling: no checks run, so nothing is ever signalled.
  bool signal(uint64_t, const wire::ControlMessage&) override { return false; }
  std::optional<Address> fallback_relay(uint64_t) override { return std::nullopt; }
  io::PathSignaling& signaling() { return *this; }

  static Address parse_address(const std::string& text) {
    auto a = Address::parse(text);
    if (!a) throw std::runtime_error("bad --intermediate " + text);
    return *a;
  }

  std::unique_ptr<AgentSide> make_side(const quic::TlsFiles& files) {
    auto side = std::make_unique<AgentSide>();
    side->tls = std::make_shared<quic::TlsIdentity>(files, Role::Agent);
    side->endpoint = std::make_unique<io::Endpoint>(io_, *Address::parse("127.0.0.1:0"),
                                                    io::derive_reset_secret(files.key));
    auto* raw = side.get();
    side->endpoint->start([this](const Address& from, std::span<const uint8_t> d) {
      auto frame = wire::parse_relay_frame(d);
      if (!frame || !(from == intermediate_)) return;
      auto it = sessions_.find(frame->session_id);
      if (it == sessions_.end() || !it->second->paths) return;
      it->second->paths->receive_relayed(intermediate_, frame->payload);
    });
    side->control = std::make_unique<io::ControlClient>(
        io_, *side->endpoint,
        io::ControlClient::Options{
            intermediate_, o_.name, side->tls, wire::Role::Agent, {}, nullptr},
        io::ControlClient::Listener{[this, raw] {
                                      raw->connected = true;
                                      poke();
                                    },
                                    [this](const wire::ControlMessage& m) { on_control(m); },
                                    [this](const std::string& why) {
                                      if (!done_)
                                        finish("error", std::nullopt,
                                               "control connection lost: " + why);
                                    }});
    side->control->start();
    return side;
  }

  void on_control(const wire::ControlMessage& m) {
    if (auto* ready = std::get_if<wire::SessionReady>(&m)) {
      auto it = requests_.find(ready->request_id);
      if (it == requests_.end()) return;
      auto s = std::make_unique<Session>(*this, *ready);
      ready_[it->second] = s.get();
      sessions_.emplace(ready->session_id, std::move(s));
      poke();
      return;
    }
    if (auto* reject = std::get_if<wire::SessionReject>(&m)) {
      if (!requests_.count(reject->request_id)) return;
      return finish("rejected", static_cast<uint64_t>(reject->code),
                    std::string(wire::to_string(reject->code)) + ": " + reject->reason);
    }
    if (auto* closed = std::get_if<wire::SessionClosed>(&m)) {
      // The connector told the intermediate; its CONNECTION_CLOSE comes over the relay (it left
      // before this message did). Noted for the report.
      control_closed_[closed->session_id] = static_cast<uint64_t>(closed->code);
      poke();
    }
  }

  // The sessions the mode needs, each asked for by one identity: "target" is the one the probe
  // runs; "first" (other-session) and "donor" (other-agent) only give their authorization.
  struct Want {
    std::string key;
    AgentSide* side;
  };
  std::vector<Want> wants() {
    if (o_.mode == "other-session") return {{"first", primary_.get()}, {"target", primary_.get()}};
    if (o_.mode == "other-agent") return {{"donor", other_.get()}, {"target", primary_.get()}};
    return {{"target", primary_.get()}};
  }

  void step() {
    if (!requested_) {
      for (auto& w : wants())
        if (!w.side->connected) return;
      for (auto& w : wants()) {
        uint32_t req = next_request_++;
        requests_[req] = w.key;
        if (!w.side->control->send(wire::OpenSession{req, o_.service}))
          return finish("error", std::nullopt, "cannot send OpenSession");
      }
      requested_ = true;
      return;
    }
    for (auto& w : wants())
      if (!ready_.count(w.key)) return;
    Session& t = *ready_.at("target");
    if (!t.peer) {
      if (o_.mode == "expired" && !expired_waited_) return wait_for_expiry(t);
      return start_handshake(t);
    }
    if (t.finished) return on_target_finished(t);
    if (!t.established) return;
    if (!sent_authorization_) {
      sent_authorization_ = true;
      send_stream0(t);
      return open_request(t, first_service());
    }
    progress(t);
  }

  std::string first_service() const {
    return o_.mode == "wrong-service-stream" ? o_.other_service : o_.service;
  }

  // Waits until the wall clock is past the token's expiry: time itself is what this case tests.
  void wait_for_expiry(Session& t) {
    std::string error;
    auto a = auth::parse_token(t.token, error);
    if (!a) return finish("error", std::nullopt, "cannot parse the authorization: " + error);
    const uint64_t until = a->expires_at_ms + kExpiryMarginMs;
    const uint64_t now = io::unix_ms();
    if (now >= until) {
      expired_waited_ = true;
      return step();
    }
    wait_.expires_after(std::chrono::milliseconds(until - now));
    wait_.async_wait([this](boost::system::error_code ec) {
      if (!ec) poke();
    });
  }

  void start_handshake(Session& t) {
    quic::ConnectionConfig cfg;
    cfg.tls = primary_->tls;
    cfg.alpn = std::string(wire::kSessionAlpn);
    cfg.server_name = t.connector;
    cfg.peer.roles = {Role::Connector};
    cfg.peer.server_auth = true;
    cfg.peer.name = t.connector;
    cfg.datagrams = true;
    cfg.max_bidi_streams = 0;
    cfg.reset_secret = primary_->endpoint->reset_secret();
    // The relay only: this probe never looks for a direct path.
    t.paths = std::make_unique<io::PathLayer>(*primary_->endpoint, t.id, path::Role::Client,
                                              intermediate_, signaling());
    const quic::Path path = t.paths->paths().relay_path();
    t.peer =
        std::make_unique<io::QuicPeer>(io_, &primary_->endpoint->router(), t.paths->transmit());
    t.peer->set_path_mapper(t.paths->inbound());
    t.paths->attach(*t.peer);
    t.peer->on_finished([this, s = &t](const std::string& why) { on_session_finished(*s, why); });
    std::string error;
    auto conn = quic::Connection::client(cfg, path, t, io::now(), error);
    if (!conn) return finish("error", std::nullopt, "cannot start the session: " + error);
    spdlog::info("session {:016x}: connector '{}' at {}; handshake over the relay", t.id,
                 t.connector, t.connector_address.to_string());
    t.peer->attach(std::move(conn));
  }

  std::vector<uint8_t> stream0_bytes(Session& t) {
    if (o_.mode == "garbage-stream0") {
      if (o_.garbage == "token") {
        std::vector<uint8_t> junk(auth::kMinAuthorizationSize + 16);
        std::mt19937 rng(std::random_device{}());
        for (auto& b : junk)
          b = static_cast<uint8_t>(rng());
        junk[0] = 0xee; // never a valid version
        return wire::encode_authorization_stream(junk);
      }
      return {0x7b, 0x22, 0x68, 0x69, 0x22, 0x3a, 0x31, 0x7d, 0xff, 0x00};
    }
    std::vector<uint8_t> token = t.token;
    if (o_.mode == "other-session") token = ready_.at("first")->token;
    if (o_.mode == "other-agent") token = ready_.at("donor")->token;
    if (o_.mode == "forged") {
      if (o_.forge == "body") {
        // The forger gives the token another hour: the same body with a later expires_at (still
        // well formed), followed by the intermediate's original signature.
        std::string error;
        auto a = auth::parse_token(token, error);
        if (!a) throw std::runtime_error("cannot parse the authorization: " + error);
        a->expires_at_ms += 3'600'000;
        token = concat(auth::encode_body(*a),
                       std::span<const uint8_t>(token).last(auth::kSignatureSize));
      } else {
        token.back() ^= 0x01;
      }
    }
    return wire::encode_authorization_stream(token);
  }

  void send_stream0(Session& t) {
    auto& conn = t.peer->conn();
    auto sid = conn.open_bidi_stream();
    if (!sid || *sid != wire::kAuthorizationStreamId)
      return finish("error", std::nullopt, "cannot open stream 0");
    if (o_.mode != "none") {
      conn.send(*sid, stream0_bytes(t));
      conn.finish(*sid);
    }
    // "none": stream 0 is opened here but carries nothing; the connector sees the next stream
    // and waits for an authorization that never comes.
    t.peer->schedule_flush();
  }

  void open_request(Session& t, const std::string& service) {
    auto& conn = t.peer->conn();
    auto sid = conn.open_bidi_stream();
    if (!sid) return finish("error", std::nullopt, "no stream credit for a request");
    conn.send(*sid, concat(wire::encode_stream_header(service), bytes_of(kRequest)));
    conn.finish(*sid);
    request_streams_.push_back(*sid);
    t.streams[*sid];
    t.peer->schedule_flush();
  }

  size_t response_bytes(const Session& t) const {
    size_t n = 0;
    for (auto& [id, s] : t.streams)
      n += s.data.size();
    return n;
  }

  void progress(Session& t) {
    if (request_streams_.empty()) return;
    auto& first = t.streams[request_streams_.front()];
    if (o_.mode == "wrong-service-stream") {
      if (!first.reset && !first.fin) return;
      if (request_streams_.size() == 1) {
        first_reset_ = first.reset;
        if (!first.reset)
          return finish("served", std::nullopt, "the wrong-service stream was served");
        return open_request(t, o_.service);
      }
      auto& second = t.streams[request_streams_.back()];
      if (second.reset)
        return finish("stream_reset", *first_reset_, "the honest stream was reset too");
      if (!second.fin) return;
      return finish("stream_reset", *first_reset_, "", "served");
    }
    if (first.reset)
      return finish("stream_reset", *first.reset,
                    wire::stream_error_from_code(*first.reset)
                        ? wire::to_string(*wire::stream_error_from_code(*first.reset))
                        : "");
    if (!first.fin) return;
    if (o_.mode == "wrong-service-datagram") {
      if (!datagrams_sent_) {
        datagrams_sent_ = true;
        std::vector<uint8_t> payload(32, 0x42);
        for (size_t i = 0; i < kWrongDatagrams; i++)
          if (!t.peer->conn().send_datagram(
                  wire::encode_datagram(static_cast<uint32_t>(100 + i), o_.other_service, payload)))
            return finish("error", std::nullopt, "a datagram was refused locally");
        // Sent after them: the answer shows the session is still up.
        t.peer->conn().send_datagram(wire::encode_ping(false, kPingId));
        t.peer->schedule_flush();
        return;
      }
      if (!t.pong) return;
    }
    finish("served", std::nullopt, "");
  }

  void on_target_finished(Session& t) { finish("closed", t.close_code, t.why); }

  std::string expected() const {
    if (!o_.expect.empty()) return o_.expect;
    if (o_.mode == "honest") return "served";
    if (o_.mode == "wrong-service-stream") return "stream_reset_then_served";
    if (o_.mode == "wrong-service-datagram") return "served_with_pong";
    return "closed";
  }

  bool as_expected(const std::string& result, std::optional<uint64_t> code, size_t bytes,
                   const std::string& then) const {
    const auto e = expected();
    if (e == "served") return result == "served" && bytes > 0;
    if (e == "closed") return result == "closed" && code == kNotAuthorized && bytes == 0;
    if (e == "rejected") return result == "rejected";
    if (e == "stream_reset_then_served")
      return result == "stream_reset" && code == kStreamNotAuthorized && then == "served";
    if (e == "served_with_pong")
      return result == "served" && bytes > 0 && ready_.count("target") && ready_.at("target")->pong;
    return false;
  }

  void finish(const std::string& result, std::optional<uint64_t> code, const std::string& reason,
              const std::string& then = "") {
    if (done_) return;
    done_ = true;
    nlohmann::json j;
    j["mode"] = o_.mode;
    if (o_.mode == "forged") j["forge"] = o_.forge;
    if (o_.mode == "garbage-stream0") j["garbage"] = o_.garbage;
    j["service"] = o_.service;
    j["result"] = result;
    j["code"] = code ? nlohmann::json(*code) : nlohmann::json(nullptr);
    j["reason"] = reason;
    size_t bytes = 0;
    Session* t = ready_.count("target") ? ready_.at("target") : nullptr;
    if (t) {
      j["session"] = hex16(t->id);
      j["connector"] = t->connector;
      std::string error;
      if (auto a = auth::parse_token(t->token, error))
        j["authorization"] = {{"session", hex16(a->session_id)},
                              {"agent", a->agent},
                              {"service", a->service},
                              {"connector", a->connector},
                              {"issuer", a->issuer},
                              {"lifetime_ms", a->expires_at_ms - a->issued_at_ms}};
      bytes = response_bytes(*t);
      if (!request_streams_.empty()) {
        auto& last = t->streams[request_streams_.back()];
        std::string text(last.data.begin(), last.data.end());
        j["response"] = text.substr(0, text.find('\r'));
      }
      if (auto c = control_closed_.find(t->id); c != control_closed_.end())
        j["intermediate_closed_code"] = c->second;
      if (o_.mode == "wrong-service-datagram") {
        j["datagrams_sent"] = datagrams_sent_ ? kWrongDatagrams : 0;
        j["pong"] = t->pong;
      }
    }
    for (auto& [key, s] : ready_)
      if (key != "target") j[key + "_session"] = hex16(s->id);
    j["bytes"] = bytes;
    if (!then.empty()) j["then"] = then;
    j["expected"] = expected();
    exit_code_ = as_expected(result, code, bytes, then) ? 0 : 1;
    j["as_expected"] = exit_code_ == 0;
    // A peer's close reason is text from the network: never let it break the JSON.
    std::cout << j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << std::endl;
    // Close what is still open, let the packets leave, then stop.
    deadline_.cancel();
    wait_.cancel();
    for (auto& [id, s] : sessions_)
      if (s->peer && s->peer->attached() && !s->peer->conn().finished())
        s->peer->close(0, "probe done");
    for (auto* side : {primary_.get(), other_.get()})
      if (side) side->control->stop();
    boost::asio::post(io_, [this] { boost::asio::post(io_, [this] { io_.stop(); }); });
  }

  boost::asio::io_context& io_;
  Options o_;
  boost::asio::steady_timer deadline_, wait_;
  Address intermediate_;
  std::unique_ptr<AgentSide> primary_, other_;
  std::map<uint32_t, std::string> requests_; // request id -> which session it is
  std::map<std::string, Session*> ready_;
  std::map<uint64_t, std::unique_ptr<Session>> sessions_;
  std::map<uint64_t, uint64_t> control_closed_; // session -> SessionClosed code
  std::vector<int64_t> request_streams_;
  std::optional<uint64_t> first_reset_;
  uint32_t next_request_ = 1;
  bool requested_ = false;
  bool expired_waited_ = false;
  bool sent_authorization_ = false;
  bool datagrams_sent_ = false;
  bool poke_posted_ = false;
  bool done_ = false;
  int exit_code_ = 1;
};

void Session::on_handshake_completed() {
  established = true;
  probe_.poke();
}

void Session::on_stream_data(int64_t stream_id, std::span<const uint8_t> data, bool fin) {
  auto& s = streams[stream_id];
  s.data.insert(s.data.end(), data.begin(), data.end());
  s.fin = s.fin || fin;
  peer->conn().consume(stream_id, data.size());
  probe_.poke();
}

void Session::on_stream_reset(int64_t stream_id, uint64_t app_error) {
  auto& s = streams[stream_id];
  if (!s.reset) s.reset = app_error;
  probe_.poke();
}

void Session::on_datagram(std::span<const uint8_t> data) {
  if (auto p = wire::parse_ping(data); p && p->pong && p->id == kPingId) pong = true;
  probe_.poke();
}

} // namespace

int main(int argc, char** argv) {
  CLI::App app{"misbehaving agent for the tests of the connector's session checks"};
  Options o;
  app.add_option("--intermediate", o.intermediate, "the intermediate's UDP address")->required();
  app.add_option("--name", o.name, "the intermediate's certificate name")->required();
  app.add_option("--ca", o.tls.ca)->required();
  app.add_option("--cert", o.tls.cert, "the agent's certificate")->required();
  app.add_option("--key", o.tls.key)->required();
  app.add_option("--crl", o.tls.crl);
  app.add_option("--service", o.service, "the service to ask a session for")->required();
  app.add_option("--mode", o.mode)
      ->required()
      ->check(CLI::IsMember({"honest", "forged", "expired", "other-session", "other-agent",
                             "wrong-service-stream", "wrong-service-datagram", "none",
                             "garbage-stream0"}));
  app.add_option("--other-service", o.other_service, "for wrong-service-stream/-datagram");
  app.add_option("--other-cert", o.other_tls.cert, "a second agent identity, for other-agent");
  app.add_option("--other-key", o.other_tls.key);
  app.add_option("--forge", o.forge,
                 "forged: alter the signature (one bit) or the body (a later expiry)")
      ->check(CLI::IsMember({"signature", "body"}));
  app.add_option("--garbage", o.garbage, "garbage-stream0: bad framing, or a framed random token")
      ->check(CLI::IsMember({"framing", "token"}));
  app.add_option("--expect", o.expect, "the outcome that counts as success (default: the mode's)")
      ->check(CLI::IsMember({"served", "closed", "rejected"}));
  app.add_option("--timeout", o.timeout_s, "seconds before giving up")->check(CLI::Range(1, 600));
  std::string log_level = "warn";
  app.add_option("--log-level", log_level, "log level on stderr");
  CLI11_PARSE(app, argc, argv);

  try {
    if ((o.mode == "wrong-service-stream" || o.mode == "wrong-service-datagram") &&
        o.other_service.empty())
      throw std::runtime_error("--mode " + o.mode + " needs --other-service");
    if (o.mode == "other-agent" && (o.other_tls.cert.empty() || o.other_tls.key.empty()))
      throw std::runtime_error("--mode other-agent needs --other-cert and --other-key");
    o.other_tls.ca = o.tls.ca;
    o.other_tls.crl = o.tls.crl;
    // stdout carries the one JSON line; logs go to stderr.
    spdlog::set_default_logger(spdlog::stderr_color_mt("session-probe"));
    spdlog::set_level(spdlog::level::from_str(log_level));
    boost::asio::io_context io;
    Probe probe(io, o);
    probe.start();
    io.run();
    return probe.exit_code();
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 2;
  }
}
