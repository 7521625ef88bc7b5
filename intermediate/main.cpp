// ztna-intermediate: `run` starts the daemon, `status` asks a running one.
#include "intermediate.hpp"

#include "io/control_client.hpp"
#include "io/daemon_cli.hpp"
#include "io/status_command.hpp"

#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

#include <iostream>

namespace {

void print_human(const nlohmann::json& j) {
  std::cout << "intermediate " << j.value("name", "?") << " listening on udp "
            << j.value("listen", "?") << "\n\npeers (" << j["peers"].size() << "):\n";
  for (auto& p : j["peers"]) {
    std::cout << "  " << p.value("role", "?") << " " << p.value("name", "?") << " at "
              << p.value("address", "?") << "  rtt " << ztna::io::human_ms(p.value("rtt_ms", 0.0));
    if (!p["services"].empty()) {
      std::cout << "  serves";
      for (auto& s : p["services"]) std::cout << " " << s.get<std::string>();
    }
    std::cout << "\n";
  }
  std::cout << "\nsessions (" << j["sessions"].size() << "):\n";
  for (auto& s : j["sessions"])
    std::cout << "  " << s.value("agent", "?") << " -> " << s.value("connector", "?") << " ["
              << s.value("service", "?") << "] " << s.value("state", "?") << ", relayed "
              << ztna::io::human_bytes(s.value("relayed_bytes", 0ull)) << "\n";
  std::cout << "\ncounters:\n";
  for (auto& [k, v] : j["counters"].items()) std::cout << "  " << k << " " << v << "\n";
}

} // namespace

int main(int argc, char** argv) {
  CLI::App app{"ztna-intermediate: relay, address discovery and signaling for the overlay"};
  app.require_subcommand(1);
  std::string status_socket = "/run/ztna/intermediate.sock", log_level = "info";

  auto* run = app.add_subcommand("run", "run the daemon");
  ztna::io::add_config_option(run);
  std::string listen = "0.0.0.0:4433";
  ztna::quic::TlsFiles tls;
  int idle_timeout = 30;
  run->add_option("--listen", listen, "UDP address to listen on ([::]:4433 for dual stack)")
      ->capture_default_str();
  ztna::io::add_identity_options(run, tls, status_socket, log_level, "intermediate");
  run->add_option("--idle-timeout", idle_timeout, "seconds of silence before a peer is dropped")
      ->capture_default_str()
      ->check(CLI::Range(2, 3600));
  bool json = false;
  auto* status = ztna::io::add_status_subcommand(app, status_socket, json, "intermediate");

  if (auto rc = ztna::io::parse_command_line(app, argc, argv)) return *rc;
  if (*status) return ztna::io::run_status_command(status_socket, json, print_human);

  return ztna::io::run_daemon(
      "intermediate", log_level, status_socket, [&](boost::asio::io_context& io) {
        auto addr = ztna::Address::parse(listen);
        if (!addr) throw std::runtime_error("--listen: not an IP:port: " + listen);
        // QUIC takes the smaller of the two sides' max_idle_timeout (RFC 9000 §10.1).
        const auto peers_idle = ztna::io::ControlClient::kIdleTimeout;
        if (idle_timeout > peers_idle.count())
          spdlog::warn("--idle-timeout {}: agents and connectors offer {} s, and QUIC uses the "
                       "smaller value, so peers are dropped after {} s of silence",
                       idle_timeout, peers_idle.count(), peers_idle.count());
        ztna::IntermediateOptions opts{*addr, tls, std::chrono::seconds(idle_timeout)};
        return std::make_unique<ztna::Intermediate>(io, opts);
      });
}
