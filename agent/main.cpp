// ztna-agent: `run` starts the daemon, `status` asks a running one.
#include "agent.hpp"

#include "io/daemon_cli.hpp"
#include "io/status_command.hpp"

#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

#include <iostream>

namespace {

void print_human(const nlohmann::json& j) {
  auto& c = j["control"];
  std::cout << "agent " << j.value("name", "?") << " on udp " << j.value("listen", "?") << "\n"
            << "control: " << c.value("state", "?") << " to " << c.value("intermediate", "?")
            << ", seen as " << c.value("observed_address", "-") << ", rtt "
            << c.value("rtt_ms", 0.0) << " ms\n";
  if (!c.value("last_error", "").empty()) std::cout << "  last error: " << c.value("last_error", "") << "\n";
  std::cout << "\nexposed services:\n";
  for (auto& e : j["exposes"])
    std::cout << "  " << e.value("name", "?") << " on " << e.value("proto", "?") << "://"
              << e.value("listen", "?") << "\n";
  std::cout << "\nsessions (" << j["sessions"].size() << "):\n";
  for (auto& s : j["sessions"]) {
    std::cout << "  connector " << s.value("connector", "?") << " [";
    bool first = true;
    for (auto& svc : s["services"]) std::cout << (first ? "" : ",") << svc.get<std::string>(), first = false;
    std::cout << "] path " << s.value("path", "?") << ", " << s.value("state", "?") << ", rtt "
              << s.value("rtt_ms", 0.0) << " ms, sent "
              << ztna::io::human_bytes(s.value("bytes_sent", 0ull)) << ", received "
              << ztna::io::human_bytes(s.value("bytes_received", 0ull)) << ", "
              << s.value("open_streams", 0) << " open streams\n";
  }
  std::cout << "\ncounters:\n";
  for (auto& [k, v] : j["counters"].items()) std::cout << "  " << k << " " << v << "\n";
}

} // namespace

int main(int argc, char** argv) {
  CLI::App app{"ztna-agent: reach the services you are allowed to, from this machine"};
  app.require_subcommand(1);
  std::string status_socket = "/run/ztna/agent.sock", log_level = "info";

  auto* run = app.add_subcommand("run", "run the daemon");
  ztna::io::add_config_option(run);
  ztna::io::IntermediateTarget target;
  ztna::quic::TlsFiles tls;
  std::vector<std::string> exposes;
  ztna::io::add_intermediate_options(run, target);
  ztna::io::add_identity_options(run, tls, status_socket, log_level, "agent");
  run->add_option("--expose", exposes,
                  "serve NAME locally: NAME=tcp://127.0.0.1:PORT or NAME=udp://127.0.0.1:PORT (repeatable)")
      ->required();
  bool json = false;
  auto* status = ztna::io::add_status_subcommand(app, status_socket, json, "agent");

  if (auto rc = ztna::io::parse_command_line(app, argc, argv)) return *rc;
  if (*status) return ztna::io::run_status_command(status_socket, json, print_human);

  return ztna::io::run_daemon("agent", log_level, status_socket, [&](boost::asio::io_context& io) {
    auto t = ztna::io::resolve(target);
    ztna::AgentOptions opts{t.listen, t.intermediate, t.intermediate_name, tls, {}};
    for (auto& text : exposes) {
      std::string error;
      auto spec = ztna::parse_service_spec(text, error);
      if (!spec) throw std::runtime_error("--expose " + error);
      opts.exposes.push_back(*spec);
    }
    return std::make_unique<ztna::Agent>(io, opts);
  });
}
