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
#include "control/control_stream.hpp"
#include "io/endpoint.hpp"
#include "io/quic_peer.hpp"
#include "wire/control_message.hpp"

#include <CLI/CLI.hpp>

#include <iostream>

using namespace ztna;

namespace {

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
  CLI11_PARSE(app, argc, argv);

  try {
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
    auto conn = quic::Connection::client(cfg, {ep.socket().local(), *target}, probe, io::now(), error);
    if (!conn) throw std::runtime_error(error);
    std::string why;
    probe.peer = std::make_unique<io::QuicPeer>(
        io, &ep.router(), [&](const quic::Path& p, std::span<const uint8_t> pkt) { ep.transmit(p, pkt); });
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
