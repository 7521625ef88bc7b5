// ztna-connector: `run` starts the daemon, `status` asks a running one.
#include "connector.hpp"

#include "io/daemon_cli.hpp"
#include "io/status_command.hpp"
#include "wire/control_message.hpp"

#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

#include <iostream>

namespace {

void print_human(const nlohmann::json& j) {
  auto& c = j["control"];
  std::cout << "connector " << j.value("name", "?") << " on udp " << j.value("listen", "?") << "\n"
            << "control: " << c.value("state", "?") << " to " << c.value("intermediate", "?")
            << ", seen as " << c.value("observed_address", "-") << ", rtt "
            << ztna::io::human_ms(c.value("rtt_ms", 0.0)) << "\n";
  if (!c.value("last_error", "").empty())
    std::cout << "  last error: " << c.value("last_error", "") << "\n";
  std::cout << "\nservices:\n";
  for (auto& s : j["services"])
    std::cout << "  " << s.value("name", "?") << " -> " << s.value("proto", "?") << "://"
              << s.value("backend", "?") << ", allowed: " << s.value("allow", "?") << "\n";
  std::cout << "\nsessions (" << j["sessions"].size() << "):\n";
  for (auto& s : j["sessions"]) {
    std::cout << "  agent " << s.value("agent", "?") << " [" << s.value("service", "?") << "]"
              << (s.value("authorized", false) ? "" : " (not authorized yet)") << " via "
              << s.value("path", "?") << ", " << s.value("state", "?") << ", rtt "
              << ztna::io::human_ms(s.value("rtt_ms", 0.0)) << ", sent "
              << ztna::io::human_bytes(s.value("bytes_sent", 0ull)) << ", received "
              << ztna::io::human_bytes(s.value("bytes_received", 0ull)) << ", "
              << s.value("open_streams", 0) << " streams, " << s.value("udp_flows", 0)
              << " udp flows\n";
  }
  std::cout << "\ncounters:\n";
  for (auto& [k, v] : j["counters"].items())
    std::cout << "  " << k << " " << v << "\n";
}

} // namespace

int main(int argc, char** argv) {
  CLI::App app{"ztna-connector: publishes private services through the overlay"};
  app.require_subcommand(1);
  std::string status_socket = "/run/ztna/connector.sock", log_level = "info";

  auto* run = app.add_subcommand("run", "run the daemon");
  ztna::io::add_config_option(run);
  ztna::io::IntermediateTarget target;
  ztna::quic::TlsFiles tls;
  std::vector<std::string> services;
  ztna::io::add_intermediate_options(run, target);
  ztna::io::add_identity_options(run, tls, status_socket, log_level, "connector");
  run->add_option("--service", services,
                  "publish NAME=tcp://HOST:PORT or NAME=udp://HOST:PORT (repeatable)")
      ->required();
  std::vector<std::string> allow;
  run->add_option("--allow", allow,
                  "who may reach a service, checked here whatever the intermediate says: "
                  "SERVICE=AGENT[,group:GROUP][,...], or SERVICE='*' for every agent the "
                  "intermediate authorizes (repeatable; every service needs one)");
  std::string authorization_pub;
  run->add_option("--authorization-pub", authorization_pub,
                  "the intermediate's public key(s) for session authorizations (PEM; "
                  "certs/make-certs writes authorization.pub)")
      ->required()
      ->check(CLI::ExistingFile);
  size_t sockets_per_session = 256;
  run->add_option("--max-backend-sockets", sockets_per_session,
                  "backend connections and UDP flows one session may hold")
      ->capture_default_str()
      ->check(CLI::Range(1, 65536));
  bool json = false;
  auto* status = ztna::io::add_status_subcommand(app, status_socket, json, "connector");

  if (auto rc = ztna::io::parse_command_line(app, argc, argv)) return *rc;
  if (*status) return ztna::io::run_status_command(status_socket, json, print_human);

  return ztna::io::run_daemon(
      "connector", log_level, status_socket, [&](boost::asio::io_context& io) {
        auto t = ztna::io::resolve(target);
        ztna::ConnectorOptions opts;
        opts.listen = t.listen;
        opts.intermediates = t.intermediates;
        opts.tls = tls;
        opts.authorization_pub = authorization_pub;
        opts.sockets_per_session = sockets_per_session;
        for (auto& a : allow) {
          std::string error;
          if (!opts.allow.add(a, error)) throw std::runtime_error("--allow " + error);
        }
        for (auto& text : services) {
          std::string error;
          auto spec = ztna::parse_service_spec(text, error);
          if (!spec) throw std::runtime_error("--service " + error);
          for (auto& s : opts.services)
            if (s.name == spec->name)
              throw std::runtime_error("--service: '" + s.name + "' given twice");
          opts.services.push_back(*spec);
        }
        if (opts.services.size() > ztna::wire::kMaxServices)
          throw std::runtime_error("--service: at most " +
                                   std::to_string(ztna::wire::kMaxServices) +
                                   " services per connector");
        return std::make_unique<ztna::Connector>(io, opts);
      });
}
