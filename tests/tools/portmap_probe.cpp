// ztna-portmap-probe: maps a UDP socket's port on the local gateway with io::PortMapper, as the
// agent and the connector do for their one socket, and reports in JSON lines on stdout (logs go
// to stderr). tests/integration/test_port_mapping.sh runs it in the NAT lab.
//
//   ztna-portmap-probe [--bind IP:PORT] [--protocol auto|pcp|natpmp|upnp] [--gateway IP]
//                      [--upnp-url URL] [--lifetime S] [--exit-on-failure] [--duration S]
//                      [--log-level LEVEL]
//
//   --bind        the socket to map (default 0.0.0.0:0: any free port)
//   --protocol    auto: PCP, then NAT-PMP, then UPnP-IGD (the default); or only the one named
//   --gateway     PCP/NAT-PMP server (default: the default route's gateway, /proc/net/route)
//   --upnp-url    the IGD's rootDesc.xml: no SSDP discovery
//   --lifetime    seconds asked for (default 7200)
//   --exit-on-failure  stop (and exit 1) when a round of protocols gave no mapping, instead of
//                 retrying after the back-off
//   --duration    stop after S seconds (default 0: on SIGTERM/SIGINT only)
//
// Lines, one JSON object each:
//   {"event":"start","local":"0.0.0.0:40000","protocols":[...],"gateway":"10.1.0.1"}
//   {"event":"mapping","protocol":"pcp","external":"203.0.113.101:40000","internal_port":40000,
//    "lifetime_s":7200,"changed":false,"elapsed_ms":3.1}     obtained, or changed
//   {"event":"lost","external":...,"reason":...,"elapsed_ms":...}
//   {"event":"failure","reason":"no gateway gave a port mapping: ...","elapsed_ms":...}
//   {"event":"received","from":"203.0.113.20:51234","bytes":17,"text":"PING 0a1b2c"}
//   {"event":"stopped","deleted":true,"detail":"deleted","elapsed_ms":...,"status":{...}}
// Every datagram on the socket is reported; natprobe.py's "PING <tok>" is answered with
// "OBS <tok> <source>", so that its obs step from a public host sees whether WAN:port reaches
// this socket. SIGTERM/SIGINT or --duration: the mapping is deleted (PortMapper::stop), then
// the probe exits.
//
// Exit status: 0 stopped, with the mapping deleted or nothing mapped; 1 no mapping and
// --exit-on-failure; 2 bad options; 3 stopped but the gateway did not confirm the deletion.
#include "io/clock.hpp"
#include "io/daemon.hpp"
#include "io/json_text.hpp"
#include "io/port_mapper.hpp"
#include "io/udp_socket.hpp"

#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

#include <iostream>

using namespace ztna;

namespace {

class Probe : public io::PortMapper::Observer {
public:
  Probe(boost::asio::io_context& io, bool exit_on_failure)
      : io_(io), exit_on_failure_(exit_on_failure), t0_(io::now()) {}

  void attach(io::PortMapper& m) { mapper_ = &m; }
  int exit_code() const { return exit_code_; }

  void emit(nlohmann::json j) {
    j["elapsed_ms"] = static_cast<double>(io::now() - t0_) / 1e6;
    std::cout << io::json_text(j) << std::endl;
  }

  void on_port_mapping(const portmap::Mapping& m) override {
    emit({{"event", "mapping"},
          {"protocol", portmap::to_string(m.protocol)},
          {"external", m.external.to_string()},
          {"internal_port", m.internal_port},
          {"lifetime_s", m.lifetime_s},
          {"changed", mapped_}});
    mapped_ = true;
  }
  void on_port_mapping_lost(const portmap::Mapping& m, const std::string& reason) override {
    mapped_ = false;
    emit({{"event", "lost"}, {"external", m.external.to_string()}, {"reason", reason}});
  }
  void on_port_mapping_failed(const std::string& reason) override {
    emit({{"event", "failure"}, {"reason", reason}});
    if (exit_on_failure_) {
      failed_ = true;
      mapper_->stop();
    }
  }
  void on_port_mapper_stopped(bool deleted, const std::string& detail) override {
    emit({{"event", "stopped"},
          {"deleted", deleted},
          {"detail", detail},
          {"status", mapper_->status()}});
    // 3: a mapping was in place and the gateway did not confirm its deletion.
    exit_code_ = failed_ ? 1 : (mapped_ && !deleted) ? 3 : 0;
    io_.stop();
  }

private:
  boost::asio::io_context& io_;
  bool exit_on_failure_;
  uint64_t t0_;
  io::PortMapper* mapper_ = nullptr;
  bool mapped_ = false;
  bool failed_ = false;
  int exit_code_ = 0;
};

std::string printable(std::span<const uint8_t> data) {
  std::string s;
  for (uint8_t c : data.first(std::min<size_t>(data.size(), 200)))
    s += (c >= 0x20 && c < 0x7f) ? static_cast<char>(c) : '.';
  return s;
}

} // namespace

int main(int argc, char** argv) {
  CLI::App app{"Maps a UDP socket's port on the gateway (PCP, NAT-PMP, UPnP-IGD) and reports it"};
  std::string bind = "0.0.0.0:0", protocol = "auto", gateway, upnp_url, log_level = "info";
  int lifetime = 7200, duration = 0;
  bool exit_on_failure = false;
  app.add_option("--bind", bind, "the UDP socket to map");
  app.add_option("--protocol", protocol, "auto, pcp, natpmp or upnp")
      ->check(CLI::IsMember({"auto", "pcp", "natpmp", "upnp"}));
  app.add_option("--gateway", gateway, "PCP/NAT-PMP server (default: the default gateway)");
  app.add_option("--upnp-url", upnp_url, "the IGD's rootDesc.xml URL (no SSDP discovery)");
  app.add_option("--lifetime", lifetime, "seconds")->check(CLI::Range(2, 86400 * 365));
  app.add_flag("--exit-on-failure", exit_on_failure, "stop when no protocol gave a mapping");
  app.add_option("--duration", duration, "stop after this many seconds (0: on a signal)");
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }

  try {
    io::setup_logging(log_level, "ztna-portmap-probe");
    auto local = Address::parse(bind);
    if (!local) throw std::invalid_argument("bad --bind " + bind);
    io::PortMapper::Options options;
    if (protocol != "auto") options.mapping.protocols = {*portmap::parse_protocol(protocol)};
    options.mapping.lifetime = std::chrono::seconds(lifetime);
    if (!gateway.empty()) {
      auto gw = Address::parse(gateway + ":5351");
      if (!gw) throw std::invalid_argument("bad --gateway " + gateway);
      options.gateway = *gw;
    }
    options.upnp_url = upnp_url;

    boost::asio::io_context io;
    io::UdpSocket socket(io, *local);
    options.local = socket.local();
    options.mapping.internal_port = socket.local().port();
    Probe probe(io, exit_on_failure);
    io::PortMapper mapper(io, options, probe);
    probe.attach(mapper);

    socket.start([&](const Address& from, std::span<const uint8_t> data) {
      std::string text = printable(data);
      probe.emit({{"event", "received"},
                  {"from", from.to_string()},
                  {"bytes", data.size()},
                  {"text", text}});
      // natprobe.py's PING <tok> -> OBS <tok> <source as seen here>.
      if (text.rfind("PING ", 0) == 0 && text.size() > 5 &&
          text.find(' ', 5) == std::string::npos) {
        std::string reply = "OBS " + text.substr(5) + " " + from.to_string();
        socket.send(from, {reinterpret_cast<const uint8_t*>(reply.data()), reply.size()});
        socket.flush();
      }
    });
    io::on_termination(io, [&](int) { mapper.stop(); });
    boost::asio::steady_timer stop_timer(io);
    if (duration > 0) {
      stop_timer.expires_after(std::chrono::seconds(duration));
      stop_timer.async_wait([&](boost::system::error_code ec) {
        if (!ec) mapper.stop();
      });
    }
    auto status = mapper.status();
    probe.emit({{"event", "start"},
                {"local", socket.local().to_string()},
                {"protocols", status["protocols"]},
                {"gateway", status["gateway"]}});
    mapper.start();
    io.run();
    socket.stop();
    return probe.exit_code();
  } catch (const std::exception& e) {
    spdlog::error("{}", e.what());
    std::cerr << "ztna-portmap-probe: " << e.what() << "\n";
    return 2;
  }
}
