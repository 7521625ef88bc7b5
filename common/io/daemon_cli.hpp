// The command line the three daemons share: identity and status options, the agent's and
// connector's way to reach the intermediate, and the run loop around a daemon object.
#pragma once

#include "io/control_plane.hpp"
#include "io/daemon.hpp"
#include "io/json_text.hpp"
#include "io/status_server.hpp"
#include "net/address.hpp"
#include "quic/tls_identity.hpp"

#include <CLI/CLI.hpp>
#include <boost/asio.hpp>
#include <spdlog/spdlog.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace ztna::io {

// `run --config FILE`: the file's `key = value` lines (TOML style, arrays for repeatable options)
// become `--key value` arguments; flags given on the command line win over the file. Done by
// hand because CLI11 2.1.2 (Debian 12) never reads a config file declared on a subcommand.
// Throws std::runtime_error if the file cannot be read.
std::vector<std::string> expand_config_file(int argc, char** argv);
// Parses the command line (after expand_config_file). Returns the exit code when the program
// must stop now (--help, a usage error, an unreadable config file), nullopt to go on.
std::optional<int> parse_command_line(CLI::App& app, int argc, char** argv);

// Declares --config on `run` so that --help lists it (expand_config_file has consumed it).
void add_config_option(CLI::App* run);

// --ca/--cert/--key (required), --crl, --status-socket and --log-level on a `run` subcommand.
void add_identity_options(CLI::App* run, quic::TlsFiles& tls, std::string& status_socket,
                          std::string& log_level, const std::string& who);

// `status [--status-socket PATH] [--json]`.
CLI::App* add_status_subcommand(CLI::App& app, std::string& status_socket, bool& json,
                                const std::string& who);

// How an agent or a connector reaches the intermediate.
struct IntermediateTarget {
  std::string listen = "[::]:0";
  std::vector<std::string> intermediates; // --intermediate, repeatable
  std::string intermediate_name;
};
void add_intermediate_options(CLI::App* run, IntermediateTarget& target);

struct ResolvedTarget {
  Address listen;
  // Every address of every --intermediate, each once; the expected certificate name defaults to
  // the host of its --intermediate, without [brackets].
  std::vector<IntermediateEndpoint> intermediates;
};
// Throws std::runtime_error naming the bad option.
ResolvedTarget resolve(const IntermediateTarget& target);

// Runs `make(io)`'s daemon until SIGTERM/SIGINT: logging, status socket, clean shutdown, and
// SIGHUP for the daemon's reload() (certificates, CRL, policy). Returns the process exit code;
// configuration errors are logged and give 1.
template <typename Make>
int run_daemon(const std::string& name, const std::string& log_level,
               const std::string& status_socket, Make make) {
  try {
    setup_logging(log_level, name);
    boost::asio::io_context io;
    auto daemon = make(io);
    StatusServer status_server(io, status_socket,
                               [&](const std::string& request, StatusServer::Reply reply) {
                                 if (request == "status") return reply(json_text(daemon->status()));
                                 if constexpr (requires { daemon->request(request, reply); })
                                   daemon->request(request, std::move(reply));
                                 else
                                   reply(R"({"error":"unknown request"})");
                               });
    daemon->start();
    on_termination(io, [&](int sig) {
      spdlog::info("received signal {}, stopping", sig);
      daemon->shutdown();
      io.stop();
    });
    on_reload(io, [&] {
      spdlog::info("received SIGHUP, reloading");
      daemon->reload();
    });
    io.run();
    spdlog::info("stopped");
    return 0;
  } catch (const std::exception& e) {
    spdlog::error("{}", e.what());
    return 1;
  }
}

} // namespace ztna::io
