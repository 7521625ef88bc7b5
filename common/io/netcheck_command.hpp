// `ztna-agent netcheck`: what the network in front of this machine lets through, without the
// daemon: the RTT to each intermediate, whether IPv4 and IPv6 work, and the NAT's behaviour
// (RFC 5780 discovery against the intermediates' STUN service), like `tailscale netcheck`.
#pragma once

#include "io/daemon_cli.hpp"

#include <CLI/CLI.hpp>

namespace ztna::io {

struct NetcheckOptions {
  std::vector<std::string> intermediates; // HOST:PORT, repeatable
  std::string listen = "[::]:0";
  bool json = false;
};

CLI::App* add_netcheck_subcommand(CLI::App& app, NetcheckOptions& options);
// Prints the report. Exit code 0 if an intermediate answered, 1 if none did (the network
// blocks UDP to it, or it does not answer STUN), 2 on a usage error (an unresolvable name).
int run_netcheck(const NetcheckOptions& options);

} // namespace ztna::io
