// ztna-control-probe: a misbehaving control client for the integration tests. It connects to an
// intermediate with a valid identity, sends the bytes it is told to on the control stream, and
// reports how the intermediate ended the connection. Exit 0 if the intermediate closed it.
//
//   ztna-control-probe --intermediate 127.0.0.1:4433 --name NAME --ca ca.pem --cert c.pem
//                      --key c.key --send MODE
//   MODE: garbage (random bytes), bad-version, unknown-type, oversize (length 65535),
//         truncated-hello (a Hello cut short, then FIN),
//         hello-agent / hello-connector (a Hello with that role, whatever the certificate says),
//         silent (no Hello at all),
//         foreign-candidates (Hello as an agent, then Candidates for --session HEX, a session
//         of somebody else's; then a bad-version frame so that the intermediate closes)
//
//   ztna-control-probe ... --send hostile-candidates --service web --candidate A:P
//                      [--candidate A:P ...] [--padding N|auto] [--listen A:P] [--duration S]
//   The hostile end of a real session: registers as an agent (io::ControlClient, like
//   ztna-agent), asks for a session to --service, and once SessionReady arrives sends one
//   Candidates message for round 1 of that session with exactly the --candidate addresses
//   (host candidates, valid credentials; padding "auto" is what ztna-agent would send for that
//   many candidates). It never starts the end-to-end handshake and never answers a check. It
//   prints one line per control message it gets, stays connected until SIGTERM/SIGINT or
//   --duration seconds, and exits 0 if it got SessionReady and sent the candidates.
#include "control/control_stream.hpp"
#include "ice/path_manager.hpp"
#include "io/control_client.hpp"
#include "io/endpoint.hpp"
#include "io/quic_peer.hpp"
#include "wire/control_message.hpp"

#include <CLI/CLI.hpp>

#include <iostream>

using namespace ztna;

namespace {

struct HostileOptions {
  std::string service = "web";
  std::vector<std::string> candidates;
  std::string padding = "auto";
  std::string listen = "0.0.0.0:0";
  int duration_s = 0; // 0: until a signal
};

// See the file comment: the "hostile-candidates" mode.
int run_hostile(const std::string& intermediate, const std::string& name, const quic::TlsFiles& tls,
                const HostileOptions& o) {
  auto target = Address::parse(intermediate);
  auto bind = Address::parse(o.listen);
  if (!target || !bind) throw std::runtime_error("bad --intermediate or --listen");
  std::vector<wire::CandidateEntry> entries;
  for (const auto& text : o.candidates) {
    auto a = Address::parse(text);
    if (!a) throw std::runtime_error("bad --candidate " + text);
    entries.push_back({static_cast<uint8_t>(ice::CandidateType::Host),
                       ice::candidate_priority(ice::CandidateType::Host,
                                               static_cast<uint16_t>(60000 - entries.size())),
                       *a});
  }
  boost::asio::io_context io;
  io::Endpoint ep(io, *bind, io::derive_reset_secret(tls.key));
  ep.on_stun([](const Address& from, std::span<const uint8_t> d) {
    std::cout << "STUN from " << from.to_string() << " (" << d.size() << " bytes), ignored"
              << std::endl;
  });
  ep.start([](const Address&, std::span<const uint8_t>) {});
  std::cout << "listening on " << ep.socket().local().to_string() << std::endl;
  bool sent = false;
  std::unique_ptr<io::ControlClient> control;
  auto stop = [&] {
    if (control) control->stop();
    ep.stop();
    io.stop();
  };
  control = std::make_unique<io::ControlClient>(
      io, ep,
      io::ControlClient::Options{*target,
                                 name,
                                 std::make_shared<quic::TlsIdentity>(tls, Role::Agent),
                                 wire::Role::Agent,
                                 {},
                                 nullptr},
      io::ControlClient::Listener{
          [&] {
            std::cout << "registered as an agent; OpenSession for '" << o.service << "'"
                      << std::endl;
            control->send(wire::OpenSession{1, o.service});
          },
          [&](const wire::ControlMessage& m) {
            std::cout << "got " << wire::message_name(m);
            if (auto* c = std::get_if<wire::Candidates>(&m))
              std::cout << " (round " << c->generation << ", " << c->candidates.size()
                        << " candidates, " << wire::encoded_size(*c) << " bytes)";
            if (auto* c = std::get_if<wire::StartChecks>(&m))
              std::cout << " (round " << c->generation << ")";
            std::cout << std::endl;
            auto* ready = std::get_if<wire::SessionReady>(&m);
            if (!ready || sent) return;
            wire::Candidates cands{ready->session_id, 1, "prob", "probeprobeprobeprobepr", entries};
            if (o.padding == "auto")
              cands.padding = ice::candidate_padding(cands, 6);
            else
              cands.padding = static_cast<uint16_t>(std::stoul(o.padding));
            char id[17];
            std::snprintf(id, sizeof id, "%016llx",
                          static_cast<unsigned long long>(ready->session_id));
            if (!control->send(cands)) {
              std::cout << "could not send Candidates" << std::endl;
              return stop();
            }
            sent = true;
            std::cout << "session " << id << ": sent Candidates for round 1 ("
                      << cands.candidates.size() << " candidates, " << wire::encoded_size(cands)
                      << " bytes with " << cands.padding << " of padding)" << std::endl;
          },
          [&](const std::string& why) {
            std::cout << "control connection lost: " << why << std::endl;
          }});
  boost::asio::signal_set signals(io, SIGTERM, SIGINT);
  signals.async_wait([&](boost::system::error_code ec, int) {
    if (!ec) stop();
  });
  boost::asio::steady_timer deadline(io);
  if (o.duration_s > 0) {
    deadline.expires_after(std::chrono::seconds(o.duration_s));
    deadline.async_wait([&](boost::system::error_code ec) {
      if (!ec) stop();
    });
  }
  control->start();
  io.run();
  std::cout << (sent ? "done: candidates sent" : "done: no session") << std::endl;
  return sent ? 0 : 1;
}

std::vector<uint8_t> payload_for(const std::string& mode, uint64_t session) {
  if (mode == "foreign-candidates") {
    auto out = wire::encode_control(wire::Hello{wire::Role::Agent, {}});
    auto cands = wire::encode_control(wire::Candidates{
        session, 1, "prob", "probeprobeprobeprobepr", {{1, 1, *Address::parse("192.0.2.1:9")}}});
    out.insert(out.end(), cands.begin(), cands.end());
    out.insert(out.end(), {0x09, 0x01, 0x00, 0x00});
    return out;
  }
  if (mode == "garbage") return {0x7b, 0x22, 0x68, 0x69, 0x22, 0x3a, 0x31, 0x7d, 0xff, 0x00};
  if (mode == "bad-version") return {0x09, 0x01, 0x00, 0x00};
  if (mode == "unknown-type") return {wire::kControlVersion, 0xee, 0x00, 0x00};
  if (mode == "oversize") return {wire::kControlVersion, 0x01, 0xff, 0xff, 0x02};
  if (mode == "truncated-hello") return {wire::kControlVersion, 0x01, 0x00, 0x08, 0x01};
  // A Hello whose role is not the certificate's: the intermediate must refuse it.
  if (mode == "hello-agent") return wire::encode_control(wire::Hello{wire::Role::Agent, {}});
  if (mode == "hello-connector")
    return wire::encode_control(wire::Hello{wire::Role::Connector, {"web"}});
  // Authenticates, then says nothing: the intermediate must drop it within seconds.
  if (mode == "silent") return {};
  throw std::runtime_error("unknown --send mode " + mode);
}

class Probe : public quic::ConnectionEvents {
public:
  Probe(boost::asio::io_context& io, io::Endpoint& ep, std::vector<uint8_t> bytes, bool fin)
      : io_(io), ep_(ep), bytes_(std::move(bytes)), fin_(fin) {}
  void on_handshake_completed() override {
    if (bytes_.empty()) return;
    auto id = peer->conn().open_bidi_stream();
    if (!id) return;
    peer->conn().send(*id, bytes_);
    if (fin_) peer->conn().finish(*id);
    peer->schedule_flush();
  }
  void on_stream_data(int64_t, std::span<const uint8_t> data, bool) override {
    received.insert(received.end(), data.begin(), data.end());
  }
  std::unique_ptr<io::QuicPeer> peer;
  std::vector<uint8_t> received;

private:
  boost::asio::io_context& io_;
  io::Endpoint& ep_;
  std::vector<uint8_t> bytes_;
  bool fin_;
};

} // namespace

int main(int argc, char** argv) {
  CLI::App app{"misbehaving control client for tests"};
  std::string intermediate, name, mode;
  quic::TlsFiles tls;
  app.add_option("--intermediate", intermediate)->required();
  app.add_option("--name", name)->required();
  app.add_option("--ca", tls.ca)->required();
  app.add_option("--cert", tls.cert)->required();
  app.add_option("--key", tls.key)->required();
  app.add_option("--send", mode)->required();
  std::string session_hex = "0", role_name = "agent";
  app.add_option("--role", role_name, "the role of the certificate given (agent|connector)");
  app.add_option("--session", session_hex, "session id (hex) for foreign-candidates");
  HostileOptions hostile;
  app.add_option("--service", hostile.service, "hostile-candidates: the service to ask for");
  app.add_option("--candidate", hostile.candidates, "hostile-candidates: an address to signal");
  app.add_option("--padding", hostile.padding, "hostile-candidates: padding bytes, or auto");
  app.add_option("--listen", hostile.listen, "hostile-candidates: our UDP address");
  app.add_option("--duration", hostile.duration_s,
                 "hostile-candidates: seconds, 0 = until SIGTERM");
  CLI11_PARSE(app, argc, argv);

  try {
    if (mode == "hostile-candidates") {
      quic::TlsFiles files = tls;
      return run_hostile(intermediate, name, files, hostile);
    }
    auto role = role_from_string(role_name).value_or(Role::Agent);
    auto target = Address::parse(intermediate);
    if (!target) throw std::runtime_error("bad --intermediate");
    boost::asio::io_context io;
    auto identity = std::make_shared<quic::TlsIdentity>(tls, role);
    io::Endpoint ep(io, *Address::parse("0.0.0.0:0"), io::derive_reset_secret(tls.key));
    ep.start([](const Address&, std::span<const uint8_t>) {});
    Probe probe(io, ep, payload_for(mode, std::stoull(session_hex, nullptr, 16)),
                mode == "truncated-hello");
    quic::ConnectionConfig cfg;
    cfg.tls = identity;
    cfg.peer.roles = {Role::Intermediate};
    cfg.peer.server_auth = true;
    cfg.alpn = std::string(wire::kControlAlpn);
    cfg.server_name = name;
    cfg.reset_secret = ep.reset_secret();
    cfg.idle_timeout = std::chrono::seconds(10);
    std::string error;
    auto conn =
        quic::Connection::client(cfg, {ep.socket().local(), *target}, probe, io::now(), error);
    if (!conn) throw std::runtime_error(error);
    std::string why;
    probe.peer = std::make_unique<io::QuicPeer>(
        io, &ep.router(),
        [&](const quic::Path& p, std::span<const uint8_t> pkt) { ep.transmit(p, pkt); });
    probe.peer->on_finished([&](const std::string& w) {
      why = w;
      io.stop();
    });
    probe.peer->attach(std::move(conn));
    io.run();
    std::vector<wire::ControlMessage> msgs;
    wire::ControlDecoder dec;
    dec.feed(probe.received, msgs);
    for (auto& m : msgs)
      if (auto* e = std::get_if<wire::ErrorMessage>(&m))
        std::cout << "intermediate said: " << wire::to_string(e->code) << ": " << e->reason << "\n";
    std::cout << "connection ended: " << why << "\n";
    return why.find("peer closed the connection") != std::string::npos ? 0 : 1;
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 2;
  }
}
