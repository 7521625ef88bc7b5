// ztna-connector: `run` starts the daemon, `status` asks a running one.
#include "connector.hpp"

#include "io/daemon.hpp"
#include "wire/control_message.hpp"
#include "io/status_command.hpp"
#include "io/status_server.hpp"

#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

#include <iostream>

namespace {

void print_human(const nlohmann::json& j) {
  auto& c = j["control"];
  std::cout << "connector " << j.value("name", "?") << " on udp " << j.value("listen", "?") << "\n"
            << "control: " << c.value("state", "?") << " to " << c.value("intermediate", "?")
            << ", seen as " << c.value("observed_address", "-") << ", rtt "
            << c.value("rtt_ms", 0.0) << " ms\n";
  if (!c.value("last_error", "").empty()) std::cout << "  last error: " << c.value("last_error", "") << "\n";
  std::cout << "\nservices:\n";
  for (auto& s : j["services"])
    std::cout << "  " << s.value("name", "?") << " -> " << s.value("proto", "?") << "://"
              << s.value("backend", "?") << "\n";
  std::cout << "\nsessions (" << j["sessions"].size() << "):\n";
  for (auto& s : j["sessions"]) {
    std::cout << "  agent " << s.value("agent", "?") << " via " << s.value("path", "?") << ", "
              << s.value("state", "?") << ", rtt " << s.value("rtt_ms", 0.0) << " ms, sent "
              << ztna::io::human_bytes(s.value("bytes_sent", 0ull)) << ", received "
              << ztna::io::human_bytes(s.value("bytes_received", 0ull)) << ", "
              << s.value("open_streams", 0) << " streams, " << s.value("udp_flows", 0)
              << " udp flows\n";
  }
  std::cout << "\ncounters:\n";
  for (auto& [k, v] : j["counters"].items()) std::cout << "  " << k << " " << v << "\n";
}

} // namespace

int main(int argc, char** argv) {
  CLI::App app{"ztna-connector: publishes private services through the overlay"};
  app.require_subcommand(1);
  std::string status_socket = "/run/ztna/connector.sock";

  auto* run = app.add_subcommand("run", "run the daemon");
  run->set_config("--config", "", "read options from this file (same names as the flags)");
  std::string listen = "[::]:0", intermediate, intermediate_name, log_level = "info";
  std::vector<std::string> services;
  ztna::quic::TlsFiles tls;
  run->add_option("--intermediate", intermediate, "intermediate HOST:PORT")->required();
  run->add_option("--intermediate-name", intermediate_name,
                  "name in the intermediate's certificate (default: its host)");
  run->add_option("--listen", listen, "local UDP address")->capture_default_str();
  run->add_option("--ca", tls.ca, "deployment CA certificate (PEM)")->required()->check(CLI::ExistingFile);
  run->add_option("--cert", tls.cert, "this connector's certificate (PEM)")->required()->check(CLI::ExistingFile);
  run->add_option("--key", tls.key, "this connector's private key (PEM)")->required()->check(CLI::ExistingFile);
  run->add_option("--service", services, "publish NAME=tcp://HOST:PORT or NAME=udp://HOST:PORT (repeatable)")
      ->required();
  run->add_option("--status-socket", status_socket, "Unix socket serving status")->capture_default_str();
  run->add_option("--log-level", log_level, "trace|debug|info|warn|error")->capture_default_str();

  auto* status = app.add_subcommand("status", "print the state of a running connector");
  bool json = false;
  status->add_option("--status-socket", status_socket, "Unix socket of the daemon")->capture_default_str();
  status->add_flag("--json", json, "machine-readable output");

  CLI11_PARSE(app, argc, argv);
  if (*status) return ztna::io::run_status_command(status_socket, json, print_human);

  try {
    ztna::io::setup_logging(log_level, "connector");
    ztna::ConnectorOptions opts;
    auto bind = ztna::Address::parse(listen);
    if (!bind) throw std::runtime_error("--listen: not an IP:port: " + listen);
    opts.listen = *bind;
    auto inter = ztna::Address::resolve(intermediate);
    if (!inter) throw std::runtime_error("--intermediate: cannot resolve " + intermediate);
    opts.intermediate = *inter;
    if (intermediate_name.empty()) { // the host part of --intermediate, without [brackets]
      intermediate_name = intermediate.substr(0, intermediate.rfind(':'));
      if (intermediate_name.size() > 2 && intermediate_name.front() == '[')
        intermediate_name = intermediate_name.substr(1, intermediate_name.size() - 2);
    }
    opts.intermediate_name = intermediate_name;
    opts.tls = tls;
    for (auto& text : services) {
      std::string error;
      auto spec = ztna::parse_service_spec(text, error);
      if (!spec) throw std::runtime_error("--service " + error);
      for (auto& s : opts.services)
        if (s.name == spec->name) throw std::runtime_error("--service: '" + s.name + "' given twice");
      opts.services.push_back(*spec);
    }
    if (opts.services.size() > ztna::wire::kMaxServices)
      throw std::runtime_error("--service: at most " + std::to_string(ztna::wire::kMaxServices) +
                               " services per connector");
    boost::asio::io_context io;
    ztna::Connector connector(io, opts);
    ztna::io::StatusServer status_server(io, status_socket, [&] { return connector.status().dump(); });
    connector.start();
    ztna::io::on_termination(io, [&](int sig) {
      spdlog::info("received signal {}, stopping", sig);
      connector.shutdown();
      io.stop();
    });
    io.run();
    spdlog::info("stopped");
    return 0;
  } catch (const std::exception& e) {
    spdlog::error("{}", e.what());
    return 1;
  }
}
