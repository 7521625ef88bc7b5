// ztna-agent: `run` starts the daemon, `status` asks a running one.
#include "agent.hpp"

#include "io/daemon_cli.hpp"
#include "io/netcheck_command.hpp"
#include "io/status_command.hpp"

#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

#include <chrono>
#include <cstdio>
#include <iostream>
#include <thread>

namespace {

void print_human(const nlohmann::json& j) {
  auto& c = j["control"];
  std::cout << "agent " << j.value("name", "?") << " on udp " << j.value("listen", "?") << "\n"
            << "control: " << c.value("state", "?") << " to " << c.value("intermediate", "?")
            << ", seen as " << c.value("observed_address", "-") << ", rtt "
            << ztna::io::human_ms(c.value("rtt_ms", 0.0)) << "\n";
  if (!c.value("last_error", "").empty())
    std::cout << "  last error: " << c.value("last_error", "") << "\n";
  std::cout << "\nexposed services:\n";
  for (auto& e : j["exposes"]) {
    std::cout << "  " << e.value("name", "?") << " on " << e.value("proto", "?") << "://"
              << e.value("listen", "?");
    if (e.contains("max_datagram"))
      std::cout << " (datagrams up to " << e["max_datagram"].get<uint64_t>() << " bytes)";
    std::cout << "\n";
  }
  std::cout << "\nsessions (" << j["sessions"].size() << "):\n";
  for (auto& s : j["sessions"]) {
    std::cout << "  connector " << s.value("connector", "?") << " [";
    bool first = true;
    for (auto& svc : s["services"])
      std::cout << (first ? "" : ",") << svc.get<std::string>(), first = false;
    std::cout << "] path " << s.value("path", "?") << ", " << s.value("state", "?") << ", rtt "
              << ztna::io::human_ms(s.value("rtt_ms", 0.0)) << ", sent "
              << ztna::io::human_bytes(s.value("bytes_sent", 0ull)) << ", received "
              << ztna::io::human_bytes(s.value("bytes_received", 0ull)) << ", "
              << s.value("open_streams", 0) << " open streams\n";
    if (!s.contains("paths")) continue;
    auto& p = s["paths"];
    std::cout << "    paths: " << p.value("phase", "?") << ", round " << p.value("round", 0)
              << ", upgrades " << p.value("upgrades", 0) << ", fallbacks "
              << p.value("fallbacks", 0);
    if (p.contains("time_to_direct_ms"))
      std::cout << ", first direct after "
                << ztna::io::human_ms(p["time_to_direct_ms"].get<double>());
    std::cout << "\n";
    if (p.contains("selected_pair"))
      std::cout << "    selected pair: " << p.value("selected_pair", "") << "\n";
    if (s.contains("rtt_ms_by_path"))
      for (auto& [k, v] : s["rtt_ms_by_path"].items())
        std::cout << "    rtt " << k << ": " << ztna::io::human_ms(v.get<double>()) << "\n";
    if (p.contains("candidates")) {
      for (const char* side : {"local", "remote"})
        for (auto& c : p["candidates"][side])
          std::cout << "    " << side << " " << c.value("type", "?") << " "
                    << c.value("address", "?") << " (" << c.value("state", "?") << ")\n";
    }
  }
  std::cout << "\ncounters:\n";
  for (auto& [k, v] : j["counters"].items())
    std::cout << "  " << k << " " << v << "\n";
}

// `ztna-agent ping SERVICE`: each ping is one request to the running agent, which sends a
// DATAGRAM through the session and reports the path the echo came back on.
int run_ping(const std::string& socket, const std::string& service, int count) {
  int answered = 0;
  for (int i = 0; i < count; ++i) {
    if (i > 0) std::this_thread::sleep_for(std::chrono::milliseconds(200)); // pacing, not sync
    std::string error;
    auto text = ztna::io::query_daemon(socket, "ping " + service, error);
    if (!text) {
      std::cerr << "error: " << error << "\n";
      return 1;
    }
    auto j = nlohmann::json::parse(*text, nullptr, false);
    if (j.is_discarded() || j.contains("error")) {
      std::cout << "ping " << service << ": "
                << (j.is_discarded() ? "malformed answer" : j.value("error", "?")) << "\n";
      continue;
    }
    answered++;
    std::cout << "pong from " << j.value("connector", "?") << " (" << service << ") via "
              << j.value("path", "?") << " " << j.value("remote", "?") << " in "
              << ztna::io::human_ms(j.value("rtt_ms", 0.0)) << "\n";
  }
  return answered == count ? 0 : 1;
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
  run->add_option(
         "--expose", exposes,
         "serve NAME locally: NAME=tcp://127.0.0.1:PORT or NAME=udp://127.0.0.1:PORT (repeatable)")
      ->required();
  bool relay_only = false;
  run->add_flag("--relay-only", relay_only,
                "never look for direct paths: every session stays on the relay");
  bool json = false;
  auto* status = ztna::io::add_status_subcommand(app, status_socket, json, "agent");

  auto* ping = app.add_subcommand(
      "ping", "send pings through the session to SERVICE's connector; print the path and RTT");
  std::string ping_service;
  int ping_count = 3;
  ping->add_option("SERVICE", ping_service, "an exposed service")->required();
  ping->add_option("-c,--count", ping_count, "how many pings")->check(CLI::Range(1, 1000));
  ping->add_option("--status-socket", status_socket, "Unix socket of the agent")
      ->capture_default_str();

  ztna::io::NetcheckOptions netcheck_options;
  auto* netcheck = ztna::io::add_netcheck_subcommand(app, netcheck_options);

  if (auto rc = ztna::io::parse_command_line(app, argc, argv)) return *rc;
  if (*status) return ztna::io::run_status_command(status_socket, json, print_human);
  if (*ping) return run_ping(status_socket, ping_service, ping_count);
  if (*netcheck) return ztna::io::run_netcheck(netcheck_options);

  return ztna::io::run_daemon("agent", log_level, status_socket, [&](boost::asio::io_context& io) {
    auto t = ztna::io::resolve(target);
    ztna::AgentOptions opts{t.listen, t.intermediates, tls, {}, relay_only};
    for (auto& text : exposes) {
      std::string error;
      auto spec = ztna::parse_service_spec(text, error);
      if (!spec) throw std::runtime_error("--expose " + error);
      opts.exposes.push_back(*spec);
    }
    return std::make_unique<ztna::Agent>(io, opts);
  });
}
