#include "io/netcheck_command.hpp"

#include "io/interfaces.hpp"
#include "io/nat_check.hpp"
#include "io/status_command.hpp"

#include <spdlog/spdlog.h>

#include <iomanip>
#include <iostream>

namespace ztna::io {

namespace {

// Stops the loop when the report is in.
struct StopOnReport : NatCheck::Listener {
  boost::asio::io_context& io;
  explicit StopOnReport(boost::asio::io_context& i) : io(i) {}
  void on_nat_report(const nat::NatReport&) override { io.stop(); }
};

std::string family_line(const nat::NatReport& r, bool v6, bool asked) {
  if (!asked) return "not checked (no intermediate address of this family)";
  for (const auto& s : r.servers)
    if (s.server.is_v6() == v6 && s.mapped) return "yes, seen as " + s.mapped->to_string();
  return "no answer";
}

} // namespace

CLI::App* add_netcheck_subcommand(CLI::App& app, NetcheckOptions& options) {
  auto* cmd = app.add_subcommand(
      "netcheck", "check the network: RTT to each intermediate, IPv4 and IPv6, the NAT's kind");
  cmd->add_option("--intermediate", options.intermediates,
                  "intermediate HOST:PORT (repeatable; every address of a name is checked)")
      ->required();
  cmd->add_option("--listen", options.listen, "local UDP address to check from")
      ->capture_default_str();
  cmd->add_flag("--json", options.json, "machine-readable output");
  return cmd;
}

int run_netcheck(const NetcheckOptions& options) {
  // The report is the output: the daemons' log line about it would only repeat it (on stdout).
  spdlog::set_level(spdlog::level::off);
  auto bind = Address::parse(options.listen);
  if (!bind) {
    std::cerr << "error: --listen: not an IP:port: " << options.listen << "\n";
    return 2;
  }
  std::vector<Address> v4, v6;
  for (const auto& text : options.intermediates) {
    auto all = Address::resolve_all(text);
    if (all.empty()) {
      std::cerr << "error: --intermediate: cannot resolve " << text << "\n";
      return 2;
    }
    for (auto& a : all)
      (a.is_v6() ? v6 : v4).push_back(a);
  }
  // IPv4 first: the NAT whose behaviour matters is an IPv4 one; an IPv4 socket skips IPv6.
  std::vector<Address> servers = v4;
  if (bind->is_v6()) servers.insert(servers.end(), v6.begin(), v6.end());
  if (servers.empty()) {
    std::cerr << "error: no intermediate address this socket can reach (an IPv4 --listen and "
                 "only IPv6 intermediates)\n";
    return 2;
  }
  boost::asio::io_context io;
  UdpSocket socket(io, *bind);
  StopOnReport stop(io);
  NatCheck check(socket, &stop);
  socket.start([&](const Address& from, std::span<const uint8_t> d) { check.on_stun(from, d); });
  check.start(servers, interface_addresses());
  io.run();
  const auto& r = *check.last();
  const bool any = std::any_of(r.servers.begin(), r.servers.end(),
                               [](const nat::ServerResult& s) { return s.mapped.has_value(); });
  if (options.json) {
    auto j = nat_report_json(r);
    j["local"] = socket.local().to_string();
    j["ipv4"] = std::any_of(r.servers.begin(), r.servers.end(), [](const auto& s) {
      return !s.server.is_v6() && s.mapped.has_value();
    });
    if (bind->is_v6() && !v6.empty())
      j["ipv6"] = std::any_of(r.servers.begin(), r.servers.end(), [](const auto& s) {
        return s.server.is_v6() && s.mapped.has_value();
      });
    else
      j["ipv6"] = nullptr;
    std::cout << j.dump(2) << "\n";
    return any ? 0 : 1;
  }
  std::cout << "netcheck from udp " << socket.local().to_string() << ", " << r.servers.size()
            << " intermediate address(es)\n";
  std::cout << "  IPv4:         " << family_line(r, false, !v4.empty()) << "\n";
  std::cout << "  IPv6:         " << family_line(r, true, bind->is_v6() && !v6.empty()) << "\n";
  std::cout << "  NAT:          " << r.summary() << "\n";
  std::cout << "  mapping:      " << nat::to_string(r.mapping);
  if (r.port_preserved != nat::Tristate::Unknown && r.mapping != nat::Mapping::None)
    std::cout << (r.port_preserved == nat::Tristate::Yes ? ", port preserved" : ", port changed");
  std::cout << "\n  ports:        " << nat::to_string(r.allocation);
  if (r.allocation == nat::Allocation::Sequential) std::cout << " (step " << r.port_step << ")";
  std::cout << "\n  filtering:    " << nat::to_string(r.filtering)
            << (r.rfc5780 ? "" : " (the intermediate has no alternate address: not testable)")
            << "\n  hairpinning:  " << nat::to_string(r.hairpin) << "\n";
  if (any)
    std::cout << "  direct paths: "
              << (r.hard() ? "hard: the mapping changes per destination with unpredictable "
                             "ports; a peer behind an easy NAT needs birthday probing, and two "
                             "such NATs meet only on the relay"
                           : "easy: peers can reach this socket at its reflexive address")
              << "\n";
  std::cout << "  intermediates:\n";
  for (const auto& s : r.servers) {
    std::cout << "    " << std::left << std::setw(44) << s.server.to_string();
    if (s.mapped)
      std::cout << human_ms(static_cast<double>(s.rtt->count()) / 1000.0) << ", sees us as "
                << s.mapped->to_string() << "\n";
    else
      std::cout << "no answer\n";
  }
  if (!any)
    std::cout << "no intermediate answered: check the addresses, that UDP to them is open, and "
                 "that they run a version that answers STUN (protocol version 4)\n";
  return any ? 0 : 1;
}

} // namespace ztna::io
