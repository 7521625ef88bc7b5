// ztna-intermediate: `run` starts the daemon, `status` asks a running one.
#include "intermediate.hpp"
#include "policy_check.hpp"

#include "io/control_client.hpp"
#include "io/daemon_cli.hpp"
#include "io/status_command.hpp"

#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>
#include <unistd.h>

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
      for (auto& s : p["services"])
        std::cout << " " << s.get<std::string>();
    }
    std::cout << "\n";
  }
  if (j.contains("policy"))
    std::cout << "\npolicy: " << j["policy"].value("source", "?") << " ("
              << j["policy"].value("access_rules", 0) << " access rules, "
              << j["policy"].value("serve_rules", 0) << " serve rules, fingerprint "
              << j["policy"].value("fingerprint", "?") << ")\n";
  std::cout << "\nsessions (" << j["sessions"].size() << "):\n";
  for (auto& s : j["sessions"])
    std::cout << "  " << s.value("agent", "?") << " -> " << s.value("connector", "?") << " ["
              << s.value("service", "?") << "] " << s.value("state", "?") << ", relayed "
              << ztna::io::human_bytes(s.value("relayed_bytes", 0ull)) << "\n";
  if (j.contains("stun")) {
    const auto& stun = j["stun"];
    std::cout << "\nstun: answered on";
    for (const char* name : {"primary", "alternate_port", "alternate_address", "alternate_both"})
      if (stun["sockets"].contains(name))
        std::cout << " " << stun["sockets"][name].value("local", "?");
    std::cout << (stun.value("rfc5780", false) ? ", RFC 5780 on" : ", RFC 5780 off") << "; "
              << stun["counters"].value("answered", 0ull) << " answered, "
              << stun["counters"].value("dropped_source_limit", 0ull) +
                     stun["counters"].value("dropped_global_limit", 0ull)
              << " over the rate limits\n";
  }
  std::cout << "\nhandshakes refused, by cause:\n";
  for (auto& [k, v] : j["handshake_refusals"].items())
    std::cout << "  " << k << " " << v << "\n";
  std::cout << "\ncounters:\n";
  for (auto& [k, v] : j["counters"].items())
    std::cout << "  " << k << " " << v << "\n";
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
  std::string policy_file, authorization_key;
  run->add_option("--policy", policy_file,
                  "access policy (TOML, docs/policy.md); deny by default, reloaded on SIGHUP")
      ->required()
      ->check(CLI::ExistingFile);
  run->add_option("--authorization-key", authorization_key,
                  "Ed25519 private key that signs session authorizations (certs/make-certs "
                  "writes authorization.key); connectors verify with authorization.pub")
      ->required()
      ->check(CLI::ExistingFile);
  int authorization_lifetime = 60;
  run->add_option("--authorization-lifetime", authorization_lifetime,
                  "seconds a session authorization stays valid for the agent to use it")
      ->capture_default_str()
      ->check(CLI::Range(1, 3600));
  ztna::quic::HandshakeGate::Config gate;
  std::string retry = "auto";
  run->add_option("--retry", retry,
                  "QUIC Retry (address validation) for new handshakes: auto (under load), "
                  "always, never")
      ->capture_default_str()
      ->check(CLI::IsMember({"auto", "always", "never"}));
  run->add_option("--max-half-open", gate.max_half_open,
                  "handshakes in progress at once (a budget apart from registered peers)")
      ->capture_default_str()
      ->check(CLI::Range(1, 1000000));
  run->add_option("--max-half-open-per-source", gate.max_per_source,
                  "handshakes in progress from one IPv4 address or IPv6 /64")
      ->capture_default_str()
      ->check(CLI::Range(1, 100000));
  double relay_session_mbps = 800, relay_identity_mbps = 2000;
  run->add_option("--relay-session-mbps", relay_session_mbps,
                  "relay quota per session in Mbit/s, each direction shared (0 = none)")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1e6));
  run->add_option("--relay-identity-mbps", relay_identity_mbps,
                  "relay quota per agent or connector identity over all its sessions, in "
                  "Mbit/s (0 = none)")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1e6));
  std::vector<std::string> etcd;
  run->add_option("--etcd", etcd,
                  "etcd endpoint HOST:PORT (repeat, or separate with commas) of the cluster that "
                  "intermediates share: homes, policy and CRL (docs/operations.md); none: a lone "
                  "intermediate")
      ->delimiter(',');
  std::string etcd_prefix = "ztna/v1/";
  run->add_option("--etcd-prefix", etcd_prefix,
                  "prefix of every key in etcd (one deployment per prefix)")
      ->capture_default_str();
  std::string etcd_node;
  run->add_option("--etcd-node", etcd_node,
                  "this intermediate's name in etcd, unique in the deployment (default: the host "
                  "name; intermediates may share one certificate)");
  int etcd_lease_ttl = 5;
  run->add_option("--etcd-lease-ttl", etcd_lease_ttl,
                  "seconds the homes of an intermediate that died stay in etcd")
      ->capture_default_str()
      ->check(CLI::Range(2, 300));
  // Plain STUN Binding and NAT behaviour discovery (docs/protocol.md §12, docs/operations.md).
  int stun_alternate_port = 0;
  run->add_option("--stun-alternate-port", stun_alternate_port,
                  "a second UDP port answering STUN only (no QUIC, no relay): peers see their "
                  "mapping from a second destination; with --stun-alternate-address, RFC 5780 "
                  "behaviour discovery")
      ->check(CLI::Range(1, 65535));
  std::string stun_alternate_address;
  run->add_option("--stun-alternate-address", stun_alternate_address,
                  "a second IP of this host answering STUN only, on the --listen port (and the "
                  "alternate port); needs --listen on a concrete IP");
  std::string stun_primary_address;
  run->add_option("--stun-primary-address", stun_primary_address,
                  "the --listen IP as STUN clients reach it, for RESPONSE-ORIGIN and "
                  "OTHER-ADDRESS (default: the --listen IP; with a wildcard --listen, none is "
                  "sent and RFC 5780 is off)");
  double stun_rate = 20, stun_rate_global = 2000;
  run->add_option("--stun-rate-per-source", stun_rate,
                  "STUN requests answered per second from one IPv4 address or IPv6 /64 (twice "
                  "as many at once)")
      ->capture_default_str()
      ->check(CLI::Range(0.1, 1e6));
  run->add_option("--stun-rate-global", stun_rate_global,
                  "STUN requests answered per second in all")
      ->capture_default_str()
      ->check(CLI::Range(1.0, 1e7));
  bool json = false;
  auto* status = ztna::io::add_status_subcommand(app, status_socket, json, "intermediate");
  ztna::PolicyCheckOptions check;
  ztna::add_policy_subcommand(app, check);

  if (auto rc = ztna::io::parse_command_line(app, argc, argv)) {
    // `policy check` promises 2 for every usage error, CLI11's own (a missing value, no
    // subcommand) included: scripts test its exit code.
    if (*rc != 0 && argc > 1 && std::string_view(argv[1]) == "policy")
      return ztna::kPolicyUsageError;
    return *rc;
  }
  if (*status) return ztna::io::run_status_command(status_socket, json, print_human);
  if (app.got_subcommand("policy")) return ztna::run_policy_check(check, std::cout, std::cerr);

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
        ztna::IntermediateOptions opts;
        opts.listen = *addr;
        opts.tls = tls;
        opts.policy_file = policy_file;
        opts.authorization_key = authorization_key;
        opts.idle_timeout = std::chrono::seconds(idle_timeout);
        gate.retry = retry == "always"  ? ztna::quic::HandshakeGate::RetryMode::Always
                     : retry == "never" ? ztna::quic::HandshakeGate::RetryMode::Never
                                        : ztna::quic::HandshakeGate::RetryMode::Auto;
        opts.handshakes = gate;
        for (const auto& e : etcd) {
          try {
            opts.etcd.push_back(ztna::io::EtcdClient::parse_endpoint(e));
          } catch (const std::invalid_argument& err) {
            throw std::runtime_error(std::string("--etcd: ") + err.what());
          }
        }
        if (etcd_prefix.empty() || etcd_prefix.back() != '/')
          throw std::runtime_error("--etcd-prefix: must end with '/': " + etcd_prefix);
        opts.etcd_prefix = etcd_prefix;
        if (etcd_node.empty()) {
          char host[256] = {};
          if (gethostname(host, sizeof host - 1) != 0 || !host[0])
            throw std::runtime_error("--etcd-node: no host name to default to; name this "
                                     "intermediate");
          etcd_node = host;
        }
        if (etcd_node.find('/') != std::string::npos)
          throw std::runtime_error("--etcd-node: no '/' in a node name: " + etcd_node);
        opts.etcd_node = etcd_node;
        opts.etcd_lease_ttl = std::chrono::seconds(etcd_lease_ttl);
        opts.broker.authorization_lifetime = std::chrono::seconds(authorization_lifetime);
        // Mbit/s to bytes per second; a quarter second of traffic may come at once.
        auto quota = [](double mbps) {
          const double bytes = mbps * 1e6 / 8;
          return ztna::RelayQuota{bytes, std::max(bytes / 4, 65536.0)};
        };
        if (relay_session_mbps > 0) opts.broker.relay_per_session = quota(relay_session_mbps);
        if (relay_identity_mbps > 0) opts.broker.relay_per_identity = quota(relay_identity_mbps);
        if (stun_alternate_port)
          opts.stun.alternate_port = static_cast<uint16_t>(stun_alternate_port);
        if (!stun_alternate_address.empty()) opts.stun.alternate_address = stun_alternate_address;
        if (!stun_primary_address.empty()) opts.stun.primary_address = stun_primary_address;
        opts.stun.source_rate = stun_rate;
        opts.stun.global_rate = stun_rate_global;
        return std::make_unique<ztna::Intermediate>(io, opts);
      });
}
